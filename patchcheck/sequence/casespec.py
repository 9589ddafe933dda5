"""The case `invoke bisect` watches, as a person writes it:

    MACHINE:SOURCE->DESTINATION[GUEST]      e.g.  pc-q35-6.0:7.2-v2->SELF[synthetic]

MACHINE is a q35 type (`6.0` is short for `pc-q35-6.0`); SOURCE and DESTINATION are build
names of the configuration or SELF, the commit under test (built as it is); at least one of
them is SELF. GUEST is one of the scenario's guest actions.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from patchcheck.errors import UsageError
from patchcheck.qemu.machine_types import q35_version
from patchcheck.result.model import Case

SELF = "SELF"
EXAMPLE = "pc-q35-6.0:7.2-v2->SELF[synthetic]"
_SYNTAX = re.compile(r"(?P<machine>[^:\s]+):(?P<src>[^\s\[\]]+?)->(?P<dst>[^\s\[\]]+)"
                     r"\[(?P<guest>[A-Za-z0-9_-]+)\]")


@dataclass(frozen=True)
class CaseSpec:
    machine: str
    source: str
    destination: str
    guest: str

    def case(self, self_build: str) -> Case:
        """The case with SELF named as the build of the commit under test."""
        def name(n: str) -> str:
            return self_build if n == SELF else n
        return Case(self.machine, name(self.source), name(self.destination), self.guest)

    @property
    def others(self) -> list[str]:
        """The configured builds the case needs besides SELF."""
        return sorted({n for n in (self.source, self.destination) if n != SELF})

    def __str__(self) -> str:
        return f"{self.machine}:{self.source}->{self.destination}[{self.guest}]"


def parse(text: str, builds: Collection[str] = (), guests: Collection[str] = ()) -> CaseSpec:
    """Parse and check a case; `builds`: the configured build names, `guests`: the
    scenario's guest actions (empty: not checked)."""
    match = _SYNTAX.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--case '{text}': expected MACHINE:SOURCE->DESTINATION[GUEST], e.g. "
                         f"'{EXAMPLE}' (SELF: the commit under test)")
    machine = match["machine"] if match["machine"].startswith("pc-") else \
        f"pc-q35-{match['machine']}"
    try:
        q35_version(machine)
    except UsageError:
        raise UsageError(f"--case '{text}': '{match['machine']}' is not a pc-q35 machine "
                         "type (e.g. pc-q35-6.0 or 6.0)") from None
    spec = CaseSpec(machine, match["src"], match["dst"], match["guest"])
    if SELF not in (spec.source, spec.destination):
        raise UsageError(f"--case '{text}': one side must be {SELF}, the commit under test")
    unknown = [n for n in spec.others if builds and n not in builds]
    if unknown:
        raise UsageError(f"--case '{text}': no build named '{unknown[0]}' (configured: "
                         f"{', '.join(builds)}, or {SELF})")
    if guests and spec.guest not in guests:
        raise UsageError(f"--case '{text}': unknown guest action '{spec.guest}' (known: "
                         f"{', '.join(sorted(guests))})")
    return spec
