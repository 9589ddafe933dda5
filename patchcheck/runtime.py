"""The container seam: a small protocol and its Docker implementation.

One container is started per (image, purpose) and reused for many commands
(`run` blocks and streams output; `spawn` starts a background process such as a
QEMU and returns a handle). Every container carries the project label and the
run id, so `cleanup` and `invoke clean` remove exactly what patchcheck created,
by id.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import InfraError

LABEL = "org.patchcheck"
LABEL_RUN = "org.patchcheck.run"
LABEL_ROLE = "org.patchcheck.role"
LABEL_PID = "org.patchcheck.pid"  # the run's process: `invoke clean` removes containers of dead runs

# A fixed script: user input only ever travels as its positional arguments.
_SPAWN_SCRIPT = 'pidfile=$1 log=$2; shift 2; echo $$ > "$pidfile"; exec "$@" > "$log" 2>&1'


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    role: str
    network: str = "none"  # "none" for builds and QEMU runs, "host" only for package installs
    mounts: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # e.g. "/dev/kvm", only when KVM is used
    user: str | None = None  # "uid:gid"; None = the image's default (root)
    workdir: str | None = None


class Process(Protocol):
    def poll(self) -> int | None: ...
    def kill(self) -> None: ...


class Container(Protocol):
    id: str

    def run(
        self,
        argv: Sequence[str],
        *,
        output: Callable[[str], None] | None = None,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> tuple[int, str]: ...

    def spawn(self, argv: Sequence[str], *, log: str, pidfile: str) -> Process: ...

    def remove(self) -> None: ...


class Runtime(Protocol):
    run_id: str

    def image_labels(self, ref: str) -> dict[str, str] | None: ...
    def image_id(self, ref: str) -> str | None: ...
    def start(self, spec: ContainerSpec) -> Container: ...
    def close(self) -> None: ...


def invoking_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


class DockerProcess:
    """A process started by `docker exec` inside a long-lived container."""

    def __init__(self, container: DockerContainer, exec_id: str, pidfile: str) -> None:
        self._container = container
        self._exec_id = exec_id
        self._pidfile = pidfile

    def poll(self) -> int | None:
        info = self._container.api.exec_inspect(self._exec_id)
        if info.get("Running"):
            return None
        code = info.get("ExitCode")
        return int(code) if code is not None else -1

    def kill(self) -> None:
        if self.poll() is not None:
            return
        for _ in range(50):  # the pid file is written by the wrapper right after exec starts
            try:
                with open(self._pidfile) as f:
                    pid = f.read().strip()
                if pid:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        else:
            return
        # `kill` is a shell builtin: minimal images have no /bin/kill (procps).
        self._container.run(["sh", "-c", 'kill -KILL "$1"', "patchcheck-kill", pid])


class DockerContainer:
    def __init__(self, runtime: DockerRuntime, container: Any) -> None:
        self._runtime = runtime
        self._container = container
        self.id: str = container.id
        self.api = runtime.client.api

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
        """
        kwargs: dict[str, Any] = {"workdir": workdir, "environment": dict(env or {})}
        if user is not None:
            kwargs["user"] = user
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

    def spawn(self, argv: Sequence[str], *, log: str, pidfile: str) -> DockerProcess:
        cmd = ["sh", "-c", _SPAWN_SCRIPT, "patchcheck-spawn", pidfile, log, *argv]
        exec_id = self.api.exec_create(self.id, cmd)["Id"]
        self.api.exec_start(exec_id, detach=True)
        return DockerProcess(self, exec_id, pidfile)

    def remove(self) -> None:
        self._runtime.remove(self.id)


class DockerRuntime:
    """Docker engine through the docker SDK; every container labelled with the run id."""

    def __init__(self, run_id: str, client: Any = None) -> None:
        import docker  # imported here so unit tests with a fake runtime need no engine

        self.run_id = run_id
        try:
            self.client = client or docker.from_env(timeout=600)
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            raise InfraError(
                "Docker engine not reachable (start one: dockerd --bridge=none --iptables=false &): "
                f"{type(exc).__name__}"
            ) from None
        self._lock = threading.Lock()
        self._started: set[str] = set()

    def image_labels(self, ref: str) -> dict[str, str] | None:
        import docker.errors

        try:
            image = self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None
        return dict(image.labels or {})

    def image_id(self, ref: str) -> str | None:
        import docker.errors

        try:
            return str(self.client.images.get(ref).id)
        except docker.errors.ImageNotFound:
            return None

    def start(self, spec: ContainerSpec) -> DockerContainer:
        from docker.types import Mount as DockerMount

        labels = {LABEL: "1", LABEL_RUN: self.run_id, LABEL_ROLE: spec.role,
                  LABEL_PID: str(os.getpid())}
        mounts = [
            DockerMount(m.target, m.source, type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        try:
            container = self.client.containers.run(
                spec.image,
                ["sleep", "infinity"],
                detach=True,
                network_mode=spec.network,
                labels=labels,
                mounts=mounts,
                environment=dict(spec.env),
                devices=[f"{d}:{d}:rwm" for d in spec.devices],
                user=spec.user or "",
                working_dir=spec.workdir,
                privileged=False,
                cap_drop=["NET_RAW"],
                security_opt=["no-new-privileges"],
                stop_signal="SIGKILL",
            )
        except Exception as exc:  # noqa: BLE001
            raise InfraError(f"cannot start a {spec.role} container from {spec.image}: {exc}") from None
        with self._lock:
            self._started.add(str(container.id))
        return DockerContainer(self, container)

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

    def close(self) -> None:
        """Remove every container this runtime started, by id."""
        with self._lock:
            ids = list(self._started)
        for cid in ids:
            self.remove(cid)
