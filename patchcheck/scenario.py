"""The reproducer seam: what a scenario must provide to be run as a migration case."""

from __future__ import annotations

from typing import Any, Protocol


class Action(Protocol):
    name: str

    @property
    def powers_off_slot(self) -> bool: ...

    def perform(self, monitor: Any) -> Any: ...


class Scenario(Protocol):
    name: str

    def qemu_args(self, ram_mib: int) -> list[str]: ...

    def action(self, name: str) -> Action: ...

    def expected_to_fail(self, machine: str, dest_has_fix: bool, globals_: tuple[str, ...],
                         action: Action) -> bool: ...

    def error_lines(self, log: str) -> list[str]: ...


def get(name: str) -> Scenario:
    if name == "pds":
        from .scenarios.pds import SCENARIO

        return SCENARIO
    from .errors import UsageError

    raise UsageError(f"unknown scenario '{name}' (known: pds)")
