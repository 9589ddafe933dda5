"""The container engine through the docker SDK: Docker, or Podman's Docker-compatible API.

One container is started per (image, purpose) and reused for many commands
(`run` blocks and streams output, through `docker exec`; `spawn` starts a background
process such as a QEMU and returns a handle). A container that spawns runs
patchcheck/engine/launcher.py as its main process and starts each process on request over a
unix socket, ~1 ms instead of ~55 ms for an exec; closing the handle's connection ends
the process. Every container carries the project label and the run id, so `cleanup`
and `invoke clean` remove exactly what patchcheck created, by id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcheck.engine.launched import LaunchedProcess
from patchcheck.engine.lifeline import Lifeline
from patchcheck.engine.runtime import (
    LABEL,
    LABEL_PID,
    LABEL_ROLE,
    LABEL_RUN,
    LAUNCHER,
    LAUNCHER_IN_CONTAINER,
    ContainerSpec,
    OwnContainer,
    device_groups,
    hand_over,
    opened_dirs,
    skeleton,
)
from patchcheck.errors import InfraError

if TYPE_CHECKING:
    from docker.types import Mount as SdkMount


# A hardened container's only writable place besides its mounts: private, no devices, no
# setuid, bounded (it counts against the container's memory).
TMPFS = {"/tmp": "rw,nosuid,nodev,size=256m"}


class DockerContainer:
    def __init__(self, runtime: DockerRuntime, container_id: str, launcher: str | None = None,
                 user: str | None = None) -> None:
        self._runtime = runtime
        self.id = container_id
        self.user = user  # who its processes run as: the spec's user
        self.api = runtime.client.api
        self._launcher = launcher  # the launcher's socket, when the spec asked to spawn

    def run(
        self,
        argv: Sequence[str],
        *,
        output: Callable[[str], None] | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> tuple[int, str]:
        """Run argv to completion; stream lines to `output`; return (exit code, output).

        When `output` is given, it receives every line and only the last 200 are returned.
        The engine failing under it (stopped, restarted) is an InfraError.
        """
        kwargs: dict[str, Any] = {"workdir": workdir, "environment": dict(env or {})}
        if user is not None:
            kwargs["user"] = user
        self._runtime.held(self.id)
        with engine_calls(f"running {argv[0]} in container {self.id[:12]}"):
            return self._exec(argv, output, kwargs)

    def _exec(self, argv: Sequence[str], output: Callable[[str], None] | None,
              kwargs: dict[str, Any]) -> tuple[int, str]:
        exec_id = self.api.exec_create(self.id, list(argv), **kwargs)["Id"]
        tail: list[str] = []
        pending = ""
        for chunk in self.api.exec_start(exec_id, stream=True):
            pending += chunk.decode("utf-8", "replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                tail.append(line)
                if output:
                    output(line)
            if output:
                del tail[:-200]
        if pending:
            tail.append(pending)
            if output:
                output(pending)
        code = self.api.exec_inspect(exec_id).get("ExitCode")
        return (int(code) if code is not None else -1), "\n".join(tail)

    def spawn(self, argv: Sequence[str], *, log: str, pidfile: str) -> LaunchedProcess:
        if self._launcher is None:
            raise InfraError(f"container {self.id[:12]} was not started to spawn processes")
        self._runtime.held(self.id)
        try:
            return LaunchedProcess.start(self._launcher, argv, log, pidfile, self.alive)
        except InfraError as exc:
            if self._runtime.gone(self.id):  # e.g. a restarted engine killed and removed it
                raise InfraError(f"container {self.id[:12]} is gone: the container engine "
                                 "ended it (stopped or restarted?)") from None
            try:
                said = self.api.logs(self.id, tail=3).decode("utf-8", "replace").strip()
            except Exception:  # noqa: BLE001 - the engine may be gone as well
                said = ""
            raise InfraError(f"{exc}; the container said: {said or 'nothing'} (its image needs "
                             "python3 for patchcheck/engine/launcher.py)") from None

    def alive(self) -> bool:
        try:
            return bool(self.api.inspect_container(self.id)["State"]["Running"])
        except Exception:  # noqa: BLE001 - gone, or the engine with it
            return False

    def remove(self) -> None:
        self._runtime.remove(self.id)


@contextlib.contextmanager
def engine_calls(doing: str) -> Iterator[None]:
    """The engine's own failures (its socket closed, refused, an API error) inside, as one
    InfraError that says what patchcheck was doing; nothing else is touched."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise InfraError(f"the container engine failed while {doing}: "
                         f"{engine_reason(exc)}") from None


def engine_reason(exc: BaseException) -> str:
    """Why the engine did not answer, in words: the innermost cause of the SDK's error (No
    such file or directory, Connection refused, Permission denied), its first line."""
    cause, inner = exc, exc.__cause__ or exc.__context__
    while inner is not None:
        cause, inner = inner, inner.__cause__ or inner.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def ping_headers(client: Any) -> Mapping[str, str]:
    """The headers of the engine's /_ping answer: Podman's name its libpod API version."""
    api = client.api
    response = api.get(f"{api.base_url}/_ping", timeout=30)
    response.raise_for_status()
    return dict(response.headers)


def is_podman(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "libpod-api-version" for k in headers)


class DockerRuntime:
    """Docker engine through the docker SDK; every container labelled with the run id.

    What another engine behind the same API does differently is in these hooks
    (podman_runtime.py): `default_host`, `client_for`, `check_engine`, `hint`,
    `host_config`, `build_stream`, `import_image`.
    """

    cli = "docker"  # the engine's command line tool, for the reproducers
    engine = "Docker"

    def __init__(self, run_id: str, client: Any = None, *, host: str = "") -> None:
        self.run_id = run_id
        self.host = host or self.default_host()
        try:
            self.client = client or self.client_for(host)
            self.check_engine(ping_headers(self.client))
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            raise InfraError(f"{self.engine} engine not reachable at {self.host}: "
                             f"{engine_reason(exc)} ({self.hint()})") from None
        self._lock = threading.Lock()
        self._started: set[str] = set()
        self._lifelines: dict[str, Lifeline] = {}  # container id -> its dead man's switch
        self._sockets: str | None = None
        self._closed = False  # no container starts after close (e.g. from a probe thread)

    def default_host(self) -> str:
        """Where the engine is when patchcheck.runtime_host is empty."""
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def client_for(self, host: str) -> Any:
        """The SDK's client: `host` (a setting) or the environment's engine."""
        import docker  # imported here so unit tests with a fake runtime need no engine

        if host:
            return docker.DockerClient(base_url=host, timeout=600)
        return docker.from_env(timeout=600)

    def check_engine(self, ping: Mapping[str, str]) -> None:
        """The engine that answered is the one configured (its /_ping headers)."""
        if is_podman(ping):
            raise InfraError(f"the engine at {self.host} is Podman: set patchcheck.runtime "
                             "to podman (INVOKE_PATCHCHECK_RUNTIME=podman)")

    def hint(self) -> str:
        """How to start the engine, for the one line that says it does not answer."""
        return "start one: dockerd --bridge=none --iptables=false &"

    def host_config(self, spec: ContainerSpec) -> dict[str, Any]:
        """Engine-specific HostConfig fields of a new container, in the API's own words,
        beside the common hardening (a field of that wins over the engine's)."""
        return {}

    def image_labels(self, ref: str) -> dict[str, str] | None:
        import docker.errors

        with engine_calls(f"looking up image {ref}"):
            try:
                image = self.client.images.get(ref)
            except docker.errors.ImageNotFound:
                return None
            return dict(image.labels or {})

    def remove_image(self, ref: str) -> bool:
        import docker.errors

        try:
            self.client.images.remove(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    def image_id(self, ref: str) -> str | None:
        import docker.errors

        with engine_calls(f"looking up image {ref}"):
            try:
                return str(self.client.images.get(ref).id)
            except docker.errors.ImageNotFound:
                return None

    def start(self, spec: ContainerSpec) -> DockerContainer:
        if self._closed:
            raise InfraError(f"no {spec.role} container: the run is ending")
        mounts, command, launcher, lifeline = self._main_process(spec)
        try:
            container_id = self._create(spec, mounts, command)
        except InfraError:
            lifeline.close()
            raise
        with self._lock:
            self._lifelines[container_id] = lifeline
        self._own(container_id, spec)
        try:
            self.client.api.start(container_id)
        except Exception as exc:  # noqa: BLE001 - e.g. its command is not in the image
            self.remove(container_id)  # created, never started: still ours to remove
            raise InfraError(f"cannot start a {spec.role} container from {spec.image}: "
                             f"{exc}") from None
        return DockerContainer(self, container_id, launcher, spec.user)

    def _main_process(self, spec: ContainerSpec) -> tuple[list[SdkMount], list[str], str | None,
                                                          Lifeline]:
        """The container's mounts, its command, its launcher's socket (when it spawns) and
        its lifeline: the launcher is every container's main process, holding the lifeline
        (patchcheck/engine/lifeline.py), and serving the socket when the spec spawns."""
        from docker.types import Mount as DockerMount

        mounts = [
            DockerMount(m.target, m.source, type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        for opened in opened_dirs(spec):  # the user cannot enter the image's: a skeleton
            laid = skeleton(Path(tempfile.mkdtemp(prefix="o-", dir=self._socket_dir())),
                            opened, [m.target for m in spec.mounts])
            mounts.append(DockerMount(opened, str(laid), type="bind", read_only=True))
        sockets = Path(tempfile.mkdtemp(prefix="c-", dir=self._socket_dir()))
        lifeline = Lifeline(str(sockets / "life.sock"))
        hand_over(sockets, spec.user)  # a sandbox user must reach its lifeline
        launcher = str(sockets / "launcher.sock") if spec.spawns else None
        # read-only unless the launcher makes its own socket there: connecting to the
        # lifeline needs no write access to the directory
        mounts += [DockerMount(str(sockets), str(sockets), type="bind",
                               read_only=not spec.spawns),
                   DockerMount(LAUNCHER_IN_CONTAINER, str(LAUNCHER), type="bind",
                               read_only=True)]
        command = ["python3", "-I", LAUNCHER_IN_CONTAINER, "--lifeline", lifeline.path,
                   *([launcher] if launcher else [])]
        return mounts, command, launcher, lifeline

    def _create(self, spec: ContainerSpec, mounts: list[SdkMount], command: list[str]
                ) -> str:
        """Create the container, hardened and labelled with the run; its id."""
        labels = {LABEL: "1", LABEL_RUN: self.run_id, LABEL_ROLE: spec.role,
                  LABEL_PID: str(os.getpid())}
        api = self.client.api
        try:
            hardened = api.create_host_config(
                network_mode=spec.network,
                mounts=mounts,
                devices=[f"{d}:{d}:rwm" for d in spec.devices],
                privileged=False,
                cap_drop=["ALL"] if spec.hardened else ["NET_RAW"],
                security_opt=["no-new-privileges"],
                read_only=spec.hardened,
                tmpfs=dict(TMPFS) if spec.hardened else None,
                group_add=list(device_groups(spec)) or None,
            )
            hardened["Privileged"] = False  # the SDK writes it only when true
            hardened["AutoRemove"] = True  # ended (its lifeline cut): the engine removes it
            if spec.memory_mib:  # memory and swap alike: no swap (docs/reliability.md, "Memory")
                hardened.update(Memory=spec.memory_mib << 20, MemorySwap=spec.memory_mib << 20)
            host_config = {**self.host_config(spec), **hardened}  # the engine's never win
            created = api.create_container(
                spec.image,
                command,
                detach=True,
                labels=labels,
                environment=dict(spec.env),
                user=spec.user or "",
                working_dir=spec.workdir,
                stop_signal="SIGKILL",
                host_config=host_config,
            )
            return str(created["Id"])
        except Exception as exc:  # noqa: BLE001
            raise InfraError(f"cannot create a {spec.role} container from {spec.image}: "
                             f"{exc}") from None

    def _own(self, container_id: str, spec: ContainerSpec) -> None:
        """Count the container among those `close` removes; if close ran while it was
        created (it missed this one), remove it and say the run is ending."""
        with self._lock:
            closing = self._closed
            if not closing:
                self._started.add(container_id)
        if closing:
            self.remove(container_id)
            raise InfraError(f"no {spec.role} container: the run is ending")

    def gone(self, container_id: str) -> bool:
        """Whether the engine no longer has the container (removed, or the engine is away)."""
        try:
            self.client.api.inspect_container(container_id)
        except Exception:  # noqa: BLE001 - NotFound, or no engine to ask: gone with it
            return True
        return False

    def held(self, container_id: str, timeout: float = 30.0) -> None:
        """Return once the container's launcher holds its lifeline; InfraError if it does not
        within `timeout` s (a command started before could outlive a killed run)."""
        with self._lock:
            lifeline = self._lifelines.get(container_id)
        if lifeline is not None and not lifeline.wait_taken(timeout):
            raise InfraError(f"container {container_id[:12]}: its launcher did not connect "
                             f"within {timeout:.0f} s (the image needs python3 for "
                             "patchcheck/engine/launcher.py)")

    def _socket_dir(self) -> str:
        """The runtime's private (0700) directory for launcher sockets; short, because unix
        socket paths are limited to 107 bytes."""
        with self._lock:
            if self._sockets is None:
                self._sockets = tempfile.mkdtemp(prefix="patchcheck-rt-", dir="/tmp")
            return self._sockets

    def build_image(self, context: Path, dockerfile: str, tag: str,
                    labels: Mapping[str, str], log: Callable[[str], None]) -> str:
        """Build (network host: package installs) and return the image id."""
        try:
            for chunk in self.build_stream(context, dockerfile, tag, labels):
                if "stream" in chunk and chunk["stream"].strip():
                    log(chunk["stream"].rstrip())
                if "error" in chunk:
                    raise InfraError(f"image {tag}: {chunk['error'].strip()}")
        except InfraError:
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's words, in one line
            raise InfraError(f"image {tag}: {exc}") from None
        image_id = self.image_id(tag)
        if image_id is None:
            raise InfraError(f"image {tag} was not created")
        return image_id

    def build_stream(self, context: Path, dockerfile: str, tag: str,
                     labels: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The engine's build, its progress as decoded JSON objects (network host)."""
        stream: Iterator[dict[str, Any]] = self.client.api.build(
            path=str(context), dockerfile=dockerfile, tag=tag, rm=True, forcerm=True,
            decode=True, network_mode="host", labels=dict(labels))
        return stream

    def pull_image(self, repository: str, tag: str) -> bool:
        """Whether a registry gave the image (False: none reachable, or none has it)."""
        try:
            self.client.images.pull(repository, tag=tag)
        except Exception:  # noqa: BLE001 - no registry reachable: the caller makes it
            return False
        return True

    def import_image(self, tarball: Path, repository: str, tag: str,
                     changes: Sequence[str]) -> None:
        self.client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                               changes=list(changes))

    def own_containers(self) -> list[OwnContainer]:
        """Every container labelled by patchcheck (any run, running or not)."""
        return [OwnContainer(str(c.id), dict(c.labels))
                for c in self.client.containers.list(all=True, filters={"label": LABEL})]

    def remove(self, container_id: str) -> None:
        import docker.errors

        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except Exception:  # noqa: BLE001 - engine gone: nothing left to remove through it
            pass
        with self._lock:
            self._started.discard(container_id)
            lifeline = self._lifelines.pop(container_id, None)
        if lifeline is not None:  # the container ends by itself, also if the engine did not answer
            lifeline.close()

    def close(self) -> None:
        """Remove every container this runtime started, by id; start no more."""
        with self._lock:
            self._closed = True
            ids = list(self._started)
        for cid in ids:
            self.remove(cid)
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None


RUNTIME = DockerRuntime
