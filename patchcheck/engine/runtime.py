"""The container seam: the protocol every engine implements (docker_runtime.py: Docker, and
Podman through its Docker-compatible API), the container specification, the labels.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

LABEL = "org.patchcheck"
LABEL_RUN = "org.patchcheck.run.matrix"
LABEL_ROLE = "org.patchcheck.role"
LABEL_PID = "org.patchcheck.pid"  # the run's process: `invoke clean` removes containers of dead runs

LAUNCHER = Path(__file__).with_name("launcher.py")
LAUNCHER_IN_CONTAINER = "/opt/patchcheck/engine/launcher.py"


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
    spawns: bool = False  # runs background processes (QEMUs): its main process is the launcher
    memory_mib: int = 0  # the container's memory limit, swap none; 0: no limit
    # runs code patchcheck does not vouch for (QEMU binaries, untrusted builds): a read-only
    # root file system, a small private tmpfs at /tmp, every capability dropped
    hardened: bool = False


class Process(Protocol):
    reason: str  # "" or why it ended from outside: "killed by the kernel: out of memory (...)"

    def poll(self) -> int | None: ...
    def wait(self, timeout: float) -> int | None: ...
    def kill(self) -> None: ...


class Container(Protocol):
    id: str
    user: str | None  # the uid:gid its processes run as (ContainerSpec.user)

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


@dataclass(frozen=True)
class OwnContainer:
    """A container patchcheck labelled, as the engine lists it."""

    id: str
    labels: Mapping[str, str]

    @property
    def short_id(self) -> str:
        return self.id[:12]


class Runtime(Protocol):
    run_id: str
    cli: str  # the engine's command line tool, for the reproducers: "docker"

    def image_labels(self, ref: str) -> dict[str, str] | None: ...
    def image_id(self, ref: str) -> str | None: ...
    def build_image(self, context: Path, dockerfile: str, tag: str,
                    labels: Mapping[str, str], log: Callable[[str], None]) -> str: ...
    def pull_image(self, repository: str, tag: str) -> bool: ...
    def remove_image(self, ref: str) -> bool: ...  # False: there was none
    def import_image(self, tarball: Path, repository: str, tag: str,
                     changes: Sequence[str]) -> None: ...
    def start(self, spec: ContainerSpec) -> Container: ...
    def own_containers(self) -> list[OwnContainer]: ...
    def remove(self, container_id: str) -> None: ...
    def close(self) -> None: ...


def invoking_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


SANDBOX_UID = 65534  # "nobody": the user of untrusted builds when patchcheck runs as root


def sandbox_user() -> str:
    """The uid:gid of a container running untrusted code: the invoking user, or nobody when
    that is root (the directories it writes are handed to it: `hand_over`)."""
    return f"{SANDBOX_UID}:{SANDBOX_UID}" if os.getuid() == 0 else invoking_user()


def is_root(user: str | None) -> bool:
    """Whether a container user ("uid:gid", None: the image's default) is root."""
    return not user or user.partition(":")[0] in ("0", "root")


# Directories images keep to root (mode 0700). A container whose user is not root cannot
# reach a mount under one (the cache under /root/.cache, mounted at its host path): such a
# container gets, in its place, a read-only directory of root's (0755) that holds only the
# mount points (`skeleton`); the engine makes the deeper mounts inside it (by depth). A
# tmpfs would not do: runc gives it the mode of the directory it covers.
PRIVATE_DIRS = ("/root",)


def opened_dirs(spec: ContainerSpec) -> tuple[str, ...]:
    """The directories of PRIVATE_DIRS that a mount of `spec` lies under, when its user is
    not root: each is replaced by a skeleton in the container."""
    if is_root(spec.user):
        return ()
    return tuple(d for d in PRIVATE_DIRS
                 if any(m.target.startswith(d.rstrip("/") + "/") for m in spec.mounts))


def skeleton(directory: Path, opened: str, targets: Sequence[str]) -> Path:
    """Lay out in `directory` the mount points of the `targets` under `opened` (empty
    directories, mode 0755): what a container sees in place of `opened`."""
    directory.chmod(0o755)
    base = opened.rstrip("/") + "/"
    for target in targets:
        if not target.startswith(base):
            continue
        path = directory
        parts = Path(target[len(base):]).parts
        if ".." in parts:
            continue
        for part in parts:
            path = path / part
            path.mkdir(mode=0o755, exist_ok=True)
            path.chmod(0o755)  # whatever the umask
    return directory


def device_groups(spec: ContainerSpec) -> tuple[str, ...]:
    """The host groups of the container's devices (/dev/kvm: group kvm, mode 0660) when
    patchcheck runs as root and the container does not: its user joins them (never group
    0; a user who runs patchcheck runs containers as themselves, as ever)."""
    if os.getuid() != 0 or is_root(spec.user):
        return ()
    gids = {os.stat(d).st_gid for d in spec.devices if os.path.exists(d)}
    return tuple(str(g) for g in sorted(gids) if g != 0)


def hand_over(path: Path, user: str | None) -> None:
    """Make `path` (and everything under it) belong to the container user `user`, when that
    is not the invoking one (only root can, and only root needs to)."""
    if not user or user == invoking_user() or os.getuid() != 0:
        return
    uid, _, gid = user.partition(":")
    ids = int(uid), int(gid or uid)
    os.lchown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile (a QEMU's socket)
                os.lchown(os.path.join(root, name), *ids)


def run_command(cli: str, image: str, argv: Sequence[str], *, mounts: Sequence[Mount] = (),
                env: Mapping[str, str] | None = None, workdir: str | None = None,
                interactive: bool = False) -> list[str]:
    """The engine command line that runs argv in a container the way patchcheck does
    (network none): what every reproducer a person pastes starts with."""
    volumes = [x for m in mounts
               for x in ("-v", f"{m.source}:{m.target}" + (":ro" if m.read_only else ""))]
    return [cli, "run", "--rm", *(["-it"] if interactive else []), "--network", "none",
            *volumes, *(x for k, v in (env or {}).items() for x in ("-e", f"{k}={v}")),
            *(["-w", workdir] if workdir else []), image, *argv]
