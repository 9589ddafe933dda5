"""The guest action seam: what the guest does to the paused source QEMU before it migrates
(`Action`), and what it left in the device, read back (`GuestState`). A scenario lists its
actions; guests/linux.py is one that boots a real Linux guest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from patchcheck.qemu.machine import Machine


class Monitor(Protocol):
    """A QEMU monitor as a guest action uses it (HMP and QMP commands)."""

    def hmp(self, command: str) -> str: ...

    def qmp(self, command: str, **args: object) -> Any: ...


class GuestState(ABC):
    """What a guest action left in the device, read back (recorded with the case)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain values for results.json and the JUnit output."""

    def summary(self) -> str:
        """One line for a deviating case's message ("" when there is nothing to add)."""
        return ""


class Action(ABC):
    """What the guest does on the paused source before it is migrated."""

    name: str = ""

    @abstractmethod
    def perform(self, monitor: Monitor) -> GuestState | None:
        """Do the action on the source (started with -S, monitor connected)."""

    # Optional hooks, with the defaults of an action that needs none of them.
    # One source may serve several destinations (patchcheck.run.migrate.run_cases): either the
    # guest runs on and `again` prepares each further migration (a Linux guest), or it
    # `stays_paused`.
    shares_source: bool = False
    # The guest never runs on the source: its state after `perform` is final, so every
    # migration would send the same stream. QEMU migrates a paused source only once, so the
    # stream is taken once and given to each destination (patchcheck.run.stream); `again` is
    # not called.
    stays_paused: bool = False
    # The least RAM (MiB) the guest needs: a case gets max(matrix.ram_mib, this).
    min_ram_mib: int = 0

    def again(self, machine: Machine) -> GuestState | None:
        """Before a further migration of the same running source (shares_source, not
        stays_paused)."""
        raise NotImplementedError(f"guest action {self.name} migrates a source only once")

    def qemu_args(self, rundir: Path, role: str) -> list[str]:
        """Extra QEMU arguments per role ("source", "destination"), e.g. a kernel to boot."""
        return []

    def verify_destination(self, machine: Machine, rundir: Path, timeout: float) -> str | None:
        """After a passing migration: a problem of the guest (None: it survived)."""
        return None

    def console_logs(self) -> dict[str, Path]:
        """Console logs to keep with the case, by role."""
        return {}

    def replay_note(self) -> str:
        """What a person does in the source monitor before migrating, for reproduce.sh."""
        return "# in the source monitor: the guest action, then the migration"
