"""Sweeps compared: two sweeps cell by cell (`diff`: regressions, fixes, what only one of them
has), and a patch's own failures in one sweep of A = base against B = base + patch
(`new_failures`: what fails between A and B but not between A and itself)."""

from __future__ import annotations

from dataclasses import dataclass

from patchcheck.result.cells import Cell, CellKey, CellOutcome, Direction, SweepResults
from patchcheck.verdict.sweep_findings import Finding, group


@dataclass(frozen=True)
class Change:
    """A cell whose outcome changed between the two sweeps, other than a regression or a fix."""

    key: CellKey
    before: str
    after: str


@dataclass(frozen=True)
class SweepDiff:
    """`new` against `base`, by CellKey."""

    regressions: tuple[Finding, ...]  # FAILED in new, PASSED in base (new's cells)
    fixes: tuple[Finding, ...]  # FAILED in base, PASSED in new (base's cells)
    changed: tuple[Change, ...]  # any other change of outcome
    only_base: int  # keys the base sweep has and the new one does not
    only_new: int
    undecided: tuple[CellKey, ...]  # FAILED in new where base had no answer (ERROR)

    @property
    def regressed_cells(self) -> int:
        return sum(len(f.cells) for f in self.regressions)

    @property
    def fixed_cells(self) -> int:
        return sum(len(f.cells) for f in self.fixes)


def diff(base: SweepResults, new: SweepResults) -> SweepDiff:
    """Compare two sweeps cell by cell; regressions and fixes grouped like findings."""
    before = {c.key: c for c in base.cells}
    after = {c.key: c for c in new.cells}
    regressed: list[Cell] = []
    fixed: list[Cell] = []
    changed: list[Change] = []
    undecided: list[CellKey] = []
    for key in sorted(before.keys() & after.keys()):
        old, now = before[key].outcome, after[key].outcome
        if now == CellOutcome.FAILED and old == CellOutcome.PASSED:
            regressed.append(after[key])
        elif old == CellOutcome.FAILED and now == CellOutcome.PASSED:
            fixed.append(before[key])
        elif old != now:
            changed.append(Change(key, old, now))
            if now == CellOutcome.FAILED and old == CellOutcome.ERROR:
                undecided.append(key)
    machines = [*base.machines, *new.machines]
    return SweepDiff(regressions=tuple(group(regressed, machines)),
                     fixes=tuple(group(fixed, machines)), changed=tuple(changed),
                     only_base=len(before.keys() - after.keys()),
                     only_new=len(after.keys() - before.keys()), undecided=tuple(undecided))


@dataclass(frozen=True)
class PatchChanges:
    """For a sweep of A = base against B = base + patch: the failures between A and B whose
    control (A -> A, same device, placement, machine type and action) did not fail."""

    new_failures: tuple[Finding, ...]
    known_to_a: int  # failed cells whose control failed too: A's own bugs, not the patch's
    undecided: tuple[CellKey, ...]  # failed cells whose control has no answer (error,
    #                                 blocked or missing)

    @property
    def new_cells(self) -> int:
        return sum(len(f.cells) for f in self.new_failures)


def _control_key(cell: Cell) -> tuple[str, str, str, str]:
    return (cell.device, cell.placement, cell.machine, cell.action)


def new_failures(results: SweepResults) -> PatchChanges:
    """What the patch makes fail: forward and backward cells FAILED whose control did not."""
    control = {_control_key(c): c.outcome for c in results.cells
               if c.direction == Direction.CONTROL}
    new: list[Cell] = []
    undecided: list[CellKey] = []
    own = 0
    for cell in results.cells:
        if cell.direction == Direction.CONTROL or cell.outcome != CellOutcome.FAILED:
            continue
        before = control.get(_control_key(cell))
        if before == CellOutcome.FAILED:
            own += 1
        elif before in (None, CellOutcome.ERROR, CellOutcome.BLOCKED):
            undecided.append(cell.key)
        else:
            new.append(cell)
    return PatchChanges(tuple(group(new, results.machines)), own, tuple(undecided))
