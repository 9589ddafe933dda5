"""The containers QEMUs run in: one long-lived container per builder image for a whole run,
network none, hardened (a read-only root file system, no capability), with the run's mounts
(all read-only but its scratch directory); a QEMU is exec'ed in it. Their user is the
invoking one, or nobody when patchcheck runs as root (runtime.sandbox_user): the scratch
directory is handed to it (it stays 0700: only that user and root enter it)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from patchcheck.engine.runtime import (
    Container,
    ContainerSpec,
    Mount,
    Runtime,
    hand_over,
    sandbox_user,
)
from patchcheck.errors import InfraError
from patchcheck.qemu.machine import Machine


class Hosts:
    """One long-lived container per builder image for the whole run; QEMUs are exec'ed in it."""

    def __init__(self, runtime: Runtime, mounts: tuple[Mount, ...], devices: tuple[str, ...] = (),
                 memory_mib: int = 0):
        self.runtime = runtime
        self.mounts = mounts
        self.devices = devices
        self.memory_mib = memory_mib  # each container's limit (all its QEMUs together); 0: none
        self._lock = threading.Lock()
        self._containers: dict[str, Container] = {}
        self.closed = False  # the run is ending: no container, no case starts any more
        self.user = sandbox_user()  # who QEMUs run as: nobody under root
        for mount in mounts:  # the scratch directory: QEMU's to write in
            if not mount.read_only:
                hand_over(Path(mount.source), self.user)

    def get(self, image_id: str) -> Container:
        with self._lock:
            if self.closed:
                raise InfraError("the run is ending: no QEMU starts any more")
            if image_id not in self._containers:
                self._containers[image_id] = self.runtime.start(ContainerSpec(
                    image=image_id, role="qemu", network="none", mounts=self.mounts,
                    devices=self.devices, user=self.user, spawns=True,
                    memory_mib=self.memory_mib, hardened=True))
            return self._containers[image_id]

    def machine(self, image_id: str, binary: str, argv: Sequence[str], rundir: Path, name: str,
                timeout: float) -> Machine:
        """A QEMU (not started yet) in the image's container (unit tests script a fake)."""
        return Machine(self.get(image_id), binary, argv, rundir, name, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for container in self._containers.values():
                container.remove()
            self._containers.clear()
