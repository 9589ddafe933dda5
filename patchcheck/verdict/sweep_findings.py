"""What a sweep's failed cells mean: grouped into `Finding`s (one device, placement, action,
direction and error, on the machine types where it fails, written as ranges), each matched
against the scenarios' signatures (a known bug) or kept as an unknown one.

Generic code: every scenario is asked through the registry, none is named here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from patchcheck.qemu import machine_types
from patchcheck.result.cells import Cell, CellOutcome, Direction, SweepResults

if TYPE_CHECKING:
    from patchcheck.scenarios.base import Signature

# A machine type of neither PC family: "<family>-<version>", or a family of its own.
_VERSIONED = re.compile(r"^(?P<family>.+?)-(?P<version>\d+(?:\.\d+)+)$")
DIRECTIONS = (Direction.FORWARD.value, Direction.BACKWARD.value, Direction.CONTROL.value)


def machine_parts(name: str) -> tuple[str, str, tuple[int, ...]]:
    """(family, version text, version numbers): "pc-i440fx-7.2" -> ("pc-i440fx", "7.2", (7, 2))."""
    if machine_types.is_pc(name):
        family, numbers = machine_types.family_version(name)
        return family, name[len(family) + 1:], numbers
    match = _VERSIONED.match(name)
    if not match:
        return name, "", ()
    version = match.group("version")
    return match.group("family"), version, tuple(int(p) for p in version.split("."))


def machine_order(machines: Iterable[str]) -> list[str]:
    """pc-q35, then pc-i440fx (machine_types.FAMILIES), then any other family in the order it
    first comes; each in version order: pc-q35-4.0 < pc-q35-4.0.1 < ... < pc-q35-10.0."""
    names = list(dict.fromkeys(machines))
    families = [*machine_types.FAMILIES, *dict.fromkeys(machine_parts(m)[0] for m in names)]
    return sorted(names, key=lambda m: (families.index(machine_parts(m)[0]),
                                        machine_parts(m)[2], m))


def machine_ranges(swept: Iterable[str], failing: Iterable[str]) -> str:
    """The failing machine types as ranges per family, in version order: "pc-q35-2.4 .. 6.0,
    pc-q35-7.2, pc-i440fx-5.0 .. 7.2". A range breaks wherever a swept type of the same family
    between two failing ones did not fail."""
    bad = set(failing)
    runs: list[list[str]] = []
    family = None
    for name in machine_order([*swept, *bad]):
        this = machine_parts(name)[0]
        if name not in bad:
            family = None
            continue
        if runs and family == this:
            runs[-1].append(name)
        else:
            runs.append([name])
        family = this
    return ", ".join(_range_text(run) for run in runs)


def _range_text(run: list[str]) -> str:
    if len(run) == 1:
        return run[0]
    last = machine_parts(run[-1])[1] or run[-1]
    return f"{run[0]} .. {last}"


@functools.cache
def _signatures() -> tuple[tuple[str, Signature], ...]:
    from patchcheck.scenarios import registry

    return tuple((name, registry.get(name).signature) for name in registry.names())


def known_bug(cell: Cell) -> str:
    """The scenario whose signature the cell's error lines match ("" when none does); a cell
    that did not fail is no bug's."""
    if cell.outcome != CellOutcome.FAILED:
        return ""
    lines = [cell.error, *cell.lines] if cell.error else list(cell.lines)
    for name, signature in _signatures():
        if signature.matches(lines):
            return name
    return cell.known


def error_line(cell: Cell) -> str:
    """The first line that explains the cell's outcome."""
    return cell.error or next((ln for ln in cell.lines if ln.strip()), "")


@dataclass(frozen=True)
class Finding:
    """One failure: a device in one placement and guest action, migrated in one direction
    between two sides, rejected with one error, on the machine types `machines` (`ranges`)."""

    device: str
    placement: str
    action: str
    direction: str
    source: str  # side names
    destination: str
    error: str  # the destination's first error line
    known: str  # the scenario whose signature it matches, "" for an unknown finding
    machines: tuple[str, ...]
    ranges: str
    cells: tuple[Cell, ...] = field(compare=False)

    @property
    def control(self) -> bool:
        """A failure in A -> A: a bug of A alone."""
        return self.direction == Direction.CONTROL

    @property
    def first(self) -> Cell:
        """The failing cell on the oldest machine type (the one reproduce.sh replays)."""
        return self.cells[0]

    @property
    def title(self) -> str:
        return (f"{self.device} @{self.placement}, action {self.action}, {self.direction} "
                f"{self.source} -> {self.destination}")


def group(cells: Iterable[Cell], machines: Sequence[str] = ()) -> list[Finding]:
    """Failed cells grouped by (device, placement, action, direction, source, destination,
    error line, known bug); ranges are written against `machines` (plus the cells' own).
    Ordered by direction (control last), device, placement, action, first machine type."""
    groups: dict[tuple[str, str, str, str, str, str, str, str], list[Cell]] = {}
    for cell in cells:
        key = (cell.device, cell.placement, cell.action, cell.direction, cell.source,
               cell.destination, error_line(cell), known_bug(cell))
        groups.setdefault(key, []).append(cell)
    swept = [*machines, *(c.machine for members in groups.values() for c in members)]
    order = {m: i for i, m in enumerate(machine_order(swept))}
    found = []
    for key, members in groups.items():
        members.sort(key=lambda c: order[c.machine])
        failing = tuple(dict.fromkeys(c.machine for c in members))
        found.append(Finding(*key, machines=failing, ranges=machine_ranges(swept, failing),
                             cells=tuple(members)))
    return sorted(found, key=lambda f: (_direction_rank(f.direction), f.device, f.placement,
                                        f.action, order[f.machines[0]], f.error))


def _direction_rank(direction: str) -> int:
    return DIRECTIONS.index(direction) if direction in DIRECTIONS else len(DIRECTIONS) - 1


def findings(results: SweepResults) -> list[Finding]:
    """Every FAILED cell, grouped (`group`): findings between A and B first, control findings
    (A -> A) last. Unknown findings are kept as they are, never dropped."""
    return group((c for c in results.cells if c.outcome == CellOutcome.FAILED), results.machines)
