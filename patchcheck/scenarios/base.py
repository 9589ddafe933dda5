"""The scenario seam: what a bug must say about itself so that generic code can build,
run and judge it. A scenario is a package under patchcheck/scenarios/ whose scenario.py subclasses
`Scenario` (and `Action` for its guest actions); generic code asks these questions and
never names a register, a device or a machine-type boundary.

Required: `name`, `title`, `signature`, `qemu_args`, `actions`, `expected_to_fail`. Everything else
has a default that suits a scenario without it (no forcing -global, no probe, no Linux
guest, no known fixes, generic words).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from patchcheck.errors import UsageError
from patchcheck.guests.action import Action, GuestState

if TYPE_CHECKING:
    from patchcheck.guests.image import GuestImage
    from patchcheck.qemu.registers import RegisterSet
    from patchcheck.result.model import Side

# Destination log lines that explain a rejected migration stream, most specific first.
LOAD_ERROR_MARKERS = ("Bad config data", "Failed to load", "error while loading state",
                      "load of migration failed")


@dataclass(frozen=True)
class Signature:
    """The error a scenario reproduces, as the destination QEMU prints it: a rejection
    with it is the bug (`failed`); any other rejection is `failed-other`.

    `error`: the start of the line that names the byte, up to its offset
    ("get_pci_config_device: Bad config data: i=0x6e"; a longer offset does not match);
    `device`: the QOM type whose state failed to load, as QEMU's "error while loading
    state ... of device '<path>/<type>'" line names it ("" when any device will do)."""

    error: str
    device: str = ""

    def matches(self, lines: Sequence[str]) -> bool:
        text = "\n".join(lines)
        if not re.search(re.escape(self.error) + r"(?![0-9A-Za-z])", text):
            return False
        return not self.device or f"/{self.device}'" in text

    @property
    def text(self) -> str:
        return self.error + (f" ({self.device})" if self.device else "")


@dataclass(frozen=True)
class Defaults:
    """What a run of the scenario uses unless the configuration says otherwise."""

    # The builds it needs: name -> (source spec, fix state). The configuration's
    # `patchcheck.builds` adds to them (and wins for a name in both).
    builds: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    matrix_builds: tuple[str, ...] = ()  # patchcheck.matrix.builds; empty: every build above
    guests: Mapping[str, str] = field(default_factory=dict)  # action -> machine selector
    check_guest: str = ""  # the action `invoke check` runs (on the boundary types)
    watch: str = ""  # a case whose outcome the fix changes, for bisect (casespec syntax)
    # The case `invoke matrix` runs first, the bug's own: (source build, destination build,
    # machine type). Its two builds are made first and its cases start at once.
    first: tuple[str, ...] = ()


@dataclass(frozen=True)
class Words:
    """How reports and `invoke check` talk about the scenario."""

    reproducer: str  # "live migration of a q35 guest whose ... (synthetic guest action)"
    fix_side: str  # "destination" or "source": which build the fix must be in


class Scenario(ABC):
    name: str = ""
    title: str = ""  # one line: the bug
    # The destination's error that is this bug (required: every scenario declares it).
    signature: Signature

    @abstractmethod
    def qemu_args(self, ram_mib: int) -> list[str]:
        """RAM and device topology (machine, accel and -nodefaults are the caller's)."""

    def machine_args(self, machine: str, ram_mib: int, accel: str) -> list[str]:
        """What both QEMUs of a case share: machine type, accelerator, the topology."""
        return ["-nodefaults", "-machine", machine, "-accel", accel, *self.qemu_args(ram_mib)]

    @abstractmethod
    def actions(self) -> Mapping[str, type[Action]]:
        """The guest actions by name (e.g. synthetic, none)."""

    @abstractmethod
    def expected_to_fail(self, machine: str, source: Side, destination: Side,
                         globals_: Sequence[str], action: Action) -> bool:
        """The model: does this case fail, given both builds' fix state?"""

    # Optional, with defaults.
    words: Words = Words("live migration", "destination")
    force_global: str = ""  # a -global that brings the bug to the newest machine type
    devices: tuple[str, ...] = ()  # Kconfig devices its topology needs beyond the defaults
    probe: RegisterSet | None = None  # what the register-semantics probe examines
    defaults: Defaults = Defaults()

    def globals_for(self, globals_: Sequence[str], role: str, build: Side) -> list[str]:
        """The case's -globals that go to one side ("source" or "destination"), given its
        build. By default both sides get all of them."""
        return list(globals_)

    def inconclusive(self, machine: str, source: Side, destination: Side,
                     globals_: Sequence[str], action: Action, state: GuestState | None) -> str:
        """Why the guest state an action left cannot answer this case ("": it can), e.g. a
        real guest that did not do what the model assumes it does. Such a case is an error
        with that reason, never a verdict."""
        return ""

    def force_applies(self, source: Side, destination: Side) -> bool:
        """Whether the forcing -global means anything for this pair (else the matrix adds
        no forced case for it)."""
        return True

    def action(self, name: str) -> Action:
        try:
            return self.actions()[name]()
        except KeyError:
            known = ", ".join(sorted(self.actions()))
            raise UsageError(f"unknown guest action '{name}' for scenario {self.name} "
                             f"(known: {known})") from None

    def error_lines(self, log: str) -> list[str]:
        """The destination's migration-load error lines; else the log's last 5 lines."""
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        matched = [ln for ln in lines if any(m in ln for m in LOAD_ERROR_MARKERS)]
        return matched or lines[-5:]

    linux_guest: bool = False  # it has a real Linux guest action (`--guest linux`)

    def fixes(self) -> dict[str, Path]:
        """The known fixes by name (fix states), in the order a tree is searched for one it
        already carries."""
        return {}

    def upstream_commits(self) -> dict[str, str]:
        """Known fixes by name -> the upstream commit that introduced them: a repository
        that has that commit among a tree's ancestors carries the fix, whatever its text
        looks like there (patchcheck.tree.fixes detects by ancestry first, then by text)."""
        return {}

    def linux_action(self, image: GuestImage, ready_timeout: float) -> Action:
        """The real Linux guest on this scenario's topology (when `linux_guest`)."""
        raise UsageError(f"scenario {self.name} has no Linux guest action")

    def boundary(self, machines: Sequence[str]) -> list[str]:
        """The machine types where the behaviour turns (the `boundary` selector): by
        default the newest."""
        return list(machines[-1:])
