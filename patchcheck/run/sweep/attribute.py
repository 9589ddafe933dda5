"""Few migrations, each answer given to a device.

A group of members migrates at once. Where a destination rejects the stream, its error
names the instance whose state failed to load ("error while loading state for instance
0x0 of device '0000:00:05.0/e1000e'"); that member gets the failure and the rest migrate
again without it, until they pass. A QEMU that refuses to start names the `-device`
argument it refused; the member is tried alone before it is recorded as not starting (two
devices of a kind that allows one, or that conflict, start apart). A failure that names no
member splits the group in halves, until one member is left to carry it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from patchcheck.result.cells import CellOutcome
from patchcheck.run.sweep.members import Member, Part

_INSTANCE = re.compile(r"error while loading state for instance \S+ of device '([^']+)'")
# The qdev ids members.py gives: s<slot><role>, so a refused argument names its member.
_IDENT = re.compile(r"\b(s[0-9a-f]{2})[cdf][0-9a-z-]*")
_QUOTED_PATH = re.compile(r"'([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f.:]+)/[^']*'")


@dataclass(frozen=True)
class Fault:
    """Why a trial gave no pass for a destination (or for every destination: the source)."""

    outcome: CellOutcome  # NOT_STARTED, UNMIGRATABLE, FAILED or ERROR
    lines: tuple[str, ...]  # QEMU's words, most telling first
    instance: str = ""  # '0000:00:05.0/e1000e' when the destination named one

    @property
    def line(self) -> str:
        return self.lines[0] if self.lines else ""


@dataclass
class Trial:
    """The answer of one migration of `members` from one source to `destinations`: the
    source's fault (nothing migrated) or each destination's (None: it loaded and runs)."""

    source: Fault | None = None
    destinations: dict[str, Fault | None] = field(default_factory=dict)


@dataclass
class Answer:
    member: Member
    destination: str
    outcome: CellOutcome
    lines: tuple[str, ...] = ()
    instance: str = ""
    migrations: int = 0


Migrate = Callable[[Sequence[Member], Sequence[str]], Trial]


def instance_path(fault: Fault) -> str:
    """The PCI path a fault names: its instance, or a quoted '<path>/<type>' in its lines."""
    if fault.instance:
        return fault.instance.rpartition("/")[0]
    for line in fault.lines:
        match = _INSTANCE.search(line) or _QUOTED_PATH.search(line)
        if match:
            return match.group(1).rpartition("/")[0] if "/" in match.group(1) \
                else match.group(1)
    return ""


def locate(members: Sequence[Member], fault: Fault) -> tuple[Member, Part | None] | None:
    """The member a fault names: by the PCI path of the failing instance, or by the
    `-device` (or backend) argument QEMU quotes when it refuses one; None when it names none."""
    path = instance_path(fault)
    if path:
        for m in members:
            part = m.part_for(path)
            if part is not None:
                return m, part
    for line in fault.lines:
        named = {m.group(1) for m in _IDENT.finditer(line)}
        quoted = [m for m in members if m.ident[:3] in named]
        if len(quoted) == 1:
            return quoted[0], None
    return None


def instance_of(lines: Sequence[str]) -> str:
    for line in lines:
        match = _INSTANCE.search(line)
        if match:
            return match.group(1)
    return ""
