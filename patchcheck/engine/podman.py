"""Podman through its Docker-compatible API (`podman system service`), with the same docker
SDK as Docker: DockerRuntime with what Podman does differently (docs/reliability.md,
"Podman").

- Where: the service's socket, patchcheck.runtime_host, else CONTAINER_HOST (unix://),
  else /run/podman/podman.sock (root) or $XDG_RUNTIME_DIR/podman/podman.sock (rootless);
  API version 1.41, pinned. The engine that answers must be Podman (its /_ping names the
  libpod API version).
- Resource limits: Podman asks the OCI runtime for higher limits than the service itself
  has (nofile 1048576), which fails where those are capped ("error setting rlimit type 7").
  Every container gets explicit `nofile` and `nproc` limits equal to the service's own hard
  limits (/proc/PID/limits of the process behind the socket), or SAFE_LIMITS when they
  cannot be read.
- Rootless Podman maps the container's users into the invoking user's subordinate ids: a
  container started as the invoking uid:gid gets `--userns=keep-id`, so what a build writes
  into the cache belongs to the invoking user on the host, as with Docker.
- Image import: the compat API drops the `tag` of an import (the image became
  `REPOSITORY:latest`); the reference is given as `REPOSITORY:TAG`.

The hardening is DockerRuntime's, unchanged: network none (host only for package installs),
the invoking user, read-only source mounts, no privileges, labels, removal by id.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchcheck.engine.docker import DockerRuntime, engine_reason, is_podman
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.errors import InfraError

API_VERSION = "1.41"
ROOT_SOCKET = "/run/podman/podman.sock"


@dataclass(frozen=True)
class Limits:
    nofile: int
    nproc: int

    def items(self) -> list[tuple[str, int]]:
        return [("nofile", self.nofile), ("nproc", self.nproc)]


# When the service's own limits cannot be read (its process is not visible from here):
# enough for a ninja -j N build and a QEMU, low enough for any sandbox seen so far.
SAFE_LIMITS = Limits(nofile=4096, nproc=4096)

_LIMIT_NAMES = {"nofile": "Max open files", "nproc": "Max processes"}


def default_socket(env: Mapping[str, str], uid: int) -> str:
    """Podman's own choice: CONTAINER_HOST when it is a local socket, else the root or the
    rootless service's socket."""
    host = env.get("CONTAINER_HOST", "")
    if host.startswith("unix://"):
        return host
    if uid == 0:
        return f"unix://{ROOT_SOCKET}"
    runtime_dir = env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    return f"unix://{runtime_dir}/podman/podman.sock"


def parse_limits(text: str) -> Limits | None:
    """The hard limits of a /proc/PID/limits text; None when one is missing. "unlimited"
    is not passed on as such: a container asks for a number."""
    found: dict[str, int] = {}
    for key, title in _LIMIT_NAMES.items():
        match = re.search(rf"^{title}\s+(\S+)\s+(\S+)", text, re.M)
        if not match:
            return None
        hard = match.group(2)
        found[key] = 1 << 20 if hard == "unlimited" else int(hard)
    return Limits(**found)


def socket_owner_pid(path: str) -> int | None:
    """The pid of the process that accepted a connection on the unix socket `path`
    (SO_PEERCRED): the Podman service."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    finally:
        sock.close()
    pid = struct.unpack("3i", creds)[0]
    return pid or None


def service_limits(host: str, proc: Path = Path("/proc")) -> Limits:
    """The Podman service's own hard limits (what it can hand to a container), capped by
    nothing else; SAFE_LIMITS when its process cannot be found or read."""
    pid = socket_owner_pid(host.removeprefix("unix://")) if host.startswith("unix://") \
        else None
    if pid is None:
        return SAFE_LIMITS
    try:
        text = (proc / str(pid) / "limits").read_text()
    except OSError:
        return SAFE_LIMITS
    return parse_limits(text) or SAFE_LIMITS


def is_rootless(info: Mapping[str, Any]) -> bool:
    """Whether the service runs rootless (its /info lists `name=rootless`)."""
    return any("name=rootless" in str(o) for o in info.get("SecurityOptions") or [])


class PodmanRuntime(DockerRuntime):
    """Podman's Docker-compatible API through the docker SDK."""

    cli = "podman"
    engine = "Podman"

    def __init__(self, run_id: str, client: Any = None, *, host: str = "",
                 limits: Limits | None = None) -> None:
        super().__init__(run_id, client, host=host)
        self.limits = limits or service_limits(self.host)
        try:
            info = self.client.info()
        except Exception as exc:  # noqa: BLE001 - it answered /_ping, then went away
            raise InfraError(f"Podman engine at {self.host}: no /info: "
                             f"{engine_reason(exc)}") from None
        self.rootless = is_rootless(info)

    def default_host(self) -> str:
        return default_socket(os.environ, os.getuid())

    def client_for(self, host: str) -> Any:
        import docker

        return docker.DockerClient(base_url=host or self.host, version=API_VERSION,
                                   timeout=600)

    def check_engine(self, ping: Mapping[str, str]) -> None:
        if not is_podman(ping):
            raise InfraError(f"the engine at {self.host} is not Podman: set "
                             "patchcheck.runtime to docker, or patchcheck.runtime_host to "
                             "Podman's socket")

    def hint(self) -> str:
        return (f"start one: podman system service --time=0 {self.host} &, or "
                "scripts/setup-host --podman")

    def host_config(self, spec: ContainerSpec) -> dict[str, Any]:
        fields: dict[str, Any] = {"Ulimits": [
            {"Name": name, "Soft": value, "Hard": value} for name, value in self.limits.items()
        ]}
        if self.rootless and spec.user:
            fields["UsernsMode"] = "keep-id"
        return fields

    def build_stream(self, context: Path, dockerfile: str, tag: str,
                     labels: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The compat API's /build with the limits of every RUN step (`ulimits`, which the
        SDK's build does not pass; Podman reads it as a JSON list of NAME=SOFT:HARD)."""
        from docker.utils import tar

        api = self.client.api
        params = {"t": tag, "dockerfile": dockerfile, "rm": "1", "forcerm": "1",
                  "networkmode": "host", "labels": json.dumps(dict(labels)),
                  "ulimits": json.dumps([f"{name}={value}:{value}"
                                         for name, value in self.limits.items()])}
        archive = tar(context, dockerfile=(dockerfile, None))
        try:
            response = api.post(f"{api.base_url}/v{API_VERSION}/build", params=params,
                                data=archive, headers={"Content-Type": "application/x-tar"},
                                stream=True, timeout=None)
            if response.status_code != 200:
                raise InfraError(f"image {tag}: {response.status_code} "
                                 f"{response.text.strip()[:300]}")
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
        finally:
            archive.close()

    def import_image(self, tarball: Path, repository: str, tag: str,
                     changes: Sequence[str]) -> None:
        self.client.api.import_image_from_file(str(tarball), repository=f"{repository}:{tag}",
                                               changes=list(changes))


RUNTIME = PodmanRuntime
