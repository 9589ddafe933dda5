"""The one-sentence verdict over a set of case results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .outcome import Observed
from .results import CaseResult, RunResults


@dataclass(frozen=True)
class Verdict:
    reproduces: int  # cases without the fix on its side that failed, as the model said
    fixed_passes: int  # cases with the fix on its side that passed
    fixed_fails: int  # cases with the fix on its side that failed anyway
    deviations: int
    errors: int
    total: int
    fix_side: str = "destination"  # which build must carry the fix (the scenario's words)

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
            return head + (f"No case with the fix at the {self.fix_side} completed: "
                           "inconclusive.")
        if self.fix_works:
            return head + (f"The fix works: without it the reproducer fails ({self.reproduces} "
                           f"cases), with it at the {self.fix_side} every case passes "
                           f"({self.fixed_passes}).")
        return head + (f"The fix does NOT do what it claims: {self.fixed_fails} cases with the fix "
                       f"at the {self.fix_side} still fail; the reproducer fails without it "
                       f"({self.reproduces} cases).")


def judge(results: Sequence[CaseResult], fix_side: str = "destination") -> Verdict:
    """`fix_side`: "destination" or "source", the build whose fix the scenario's model needs.
    A case "with the fix" has it there and the model expects it to pass: a -global that
    switches the fix off again (and so is expected to fail) proves nothing about the fix."""
    def has_fix(r: CaseResult) -> bool:
        return (r.source if fix_side == "source" else r.destination).has_fix

    reproduces = sum(1 for r in results if not has_fix(r)
                     and r.expected == r.observed == Observed.FAILED)
    fixed = [r for r in results if has_fix(r) and r.expected == Observed.PASSED]
    return Verdict(
        reproduces=reproduces,
        fixed_passes=sum(1 for r in fixed if r.observed == Observed.PASSED),
        fixed_fails=sum(1 for r in fixed if r.observed == Observed.FAILED),
        deviations=sum(1 for r in results if r.deviates
                       and r.observed not in (Observed.ERROR, Observed.SKIPPED)),
        errors=sum(1 for r in results if r.observed in (Observed.ERROR, Observed.SKIPPED)),
        total=len(results),
        fix_side=fix_side,
    )


def fix_side(settings: Mapping[str, Any]) -> str:
    """The fix side of a run's scenario (from its recorded settings); an unknown scenario
    (a results.json from elsewhere) reads as the destination."""
    from . import scenarios
    from .errors import UsageError

    try:
        return scenarios.get(str(settings.get("scenario") or "")).words.fix_side
    except UsageError:
        return "destination"


def scenario_title(settings: Mapping[str, Any]) -> str:
    """"name: title" of a run's scenario, for its reports."""
    from . import scenarios
    from .errors import UsageError

    name = str(settings.get("scenario") or "")
    try:
        return f"{name or scenarios.DEFAULT}: {scenarios.get(name).title}"
    except UsageError:
        return name


def judge_run(run: RunResults) -> Verdict:
    return judge(run.cases, fix_side(run.settings))
