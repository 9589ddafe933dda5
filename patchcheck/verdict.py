"""The one-sentence verdict over a set of case results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .outcome import Observed
from .results import CaseResult


@dataclass(frozen=True)
class Verdict:
    reproduces: int  # cases without the fix at the destination that failed, as the model said
    fixed_passes: int  # cases with the fix at the destination that passed
    fixed_fails: int  # cases with the fix at the destination that failed anyway
    deviations: int
    errors: int
    total: int

    @property
    def fix_works(self) -> bool:
        return (self.reproduces > 0 and self.fixed_passes > 0 and self.fixed_fails == 0
                and self.deviations == 0)

    @property
    def sentence(self) -> str:
        if self.total == 0:
            return "No case ran."
        head = (f"{self.total} cases: {self.total - self.deviations - self.errors} as expected, "
                f"{self.deviations} deviating, {self.errors} errors. ")
        if self.reproduces == 0:
            return head + "The reproducer did not fail without the fix: nothing was proven."
        if self.fixed_passes == 0 and self.fixed_fails == 0:
            return head + ("No case with the fix at the destination completed: inconclusive.")
        if self.fix_works:
            return head + (f"The fix works: without it the reproducer fails ({self.reproduces} "
                           f"cases), with it at the destination every case passes "
                           f"({self.fixed_passes}).")
        return head + (f"The fix does NOT do what it claims: {self.fixed_fails} cases with the fix "
                       f"at the destination still fail; the reproducer fails without it "
                       f"({self.reproduces} cases).")


def judge(results: Sequence[CaseResult]) -> Verdict:
    reproduces = sum(1 for r in results if not r.destination.has_fix
                     and r.expected == r.observed == Observed.FAILED)
    fixed = [r for r in results if r.destination.has_fix]
    return Verdict(
        reproduces=reproduces,
        fixed_passes=sum(1 for r in fixed if r.observed == Observed.PASSED),
        fixed_fails=sum(1 for r in fixed if r.observed == Observed.FAILED),
        deviations=sum(1 for r in results if r.deviates
                       and r.observed not in (Observed.ERROR, Observed.SKIPPED)),
        errors=sum(1 for r in results if r.observed in (Observed.ERROR, Observed.SKIPPED)),
        total=len(results),
    )
