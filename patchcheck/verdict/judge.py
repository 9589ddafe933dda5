"""The one-sentence verdict over a set of case results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed


@dataclass(frozen=True)
class Verdict:
    """The migration cases of a run counted for the question "does the fix work": every
    count is of observed outcomes judged against the model (patchcheck.result.outcome.Observed).
    Its words are patchcheck.verdict.decision's, which also gives the exit codes."""

    reproduces: int  # without the fix on its side: failed with the bug's error, as expected
    fixed_passes: int  # with the fix on its side, expected to pass: passed
    fixed_fails: int  # with the fix on its side, expected to pass: failed with the bug's error
    deviations: int
    errors: int  # errors and skipped cases: nothing observed
    total: int
    fix_side: str = "destination"  # which build must carry the fix (the scenario's words)
    fixed_other: int = 0  # with the fix on its side, expected to pass: failed with another error
    flaky: int = 0  # failed, then passed on a second attempt: never a pass
    # Every case that failed with an error other than the bug's: (case id, its error line)
    other: tuple[tuple[str, str], ...] = ()

    @property
    def fix_works(self) -> bool:
        return (self.reproduces > 0 and self.fixed_passes > 0 and self.fixed_fails == 0
                and self.fixed_other == 0 and self.deviations == 0 and self.flaky == 0
                and self.errors == 0)

    @property
    def unobserved(self) -> int:
        """Cases that give no verdict: errors, skipped and flaky ones."""
        return self.errors + self.flaky


def _first_line(r: CaseResult) -> str:
    for text in (r.destination_error, r.message):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return "no error line recorded"


def judge(results: Sequence[CaseResult], fix_side: str = "destination") -> Verdict:
    """`fix_side`: "destination" or "source", the build whose fix the scenario's model needs.
    A case "with the fix" has it there and the model expects it to pass: a -global that
    switches the fix off again (and so is expected to fail) proves nothing about the fix.
    Only a failure with the scenario's own error reproduces the bug."""
    def has_fix(r: CaseResult) -> bool:
        return (r.source if fix_side == "source" else r.destination).has_fix

    reproduces = sum(1 for r in results if not has_fix(r)
                     and r.expected == r.observed == Observed.FAILED)
    fixed = [r for r in results if has_fix(r) and r.expected == Observed.PASSED]
    return Verdict(
        reproduces=reproduces,
        fixed_passes=sum(1 for r in fixed if r.observed == Observed.PASSED),
        fixed_fails=sum(1 for r in fixed if r.observed == Observed.FAILED),
        deviations=sum(1 for r in results if r.deviates),
        errors=sum(1 for r in results if r.observed.inconclusive),
        total=len(results),
        fix_side=fix_side,
        fixed_other=sum(1 for r in fixed if r.observed == Observed.FAILED_OTHER),
        flaky=sum(1 for r in results if r.observed == Observed.FLAKY),
        other=tuple((r.case.id, _first_line(r)) for r in results
                    if r.observed == Observed.FAILED_OTHER),
    )


def fix_side(settings: Mapping[str, Any]) -> str:
    """The fix side of a run's scenario (from its recorded settings); an unknown scenario
    (a results.json from elsewhere) reads as the destination."""
    from patchcheck.errors import UsageError
    from patchcheck.scenarios import registry as scenarios

    try:
        return scenarios.get(str(settings.get("scenario") or "")).words.fix_side
    except UsageError:
        return "destination"


def scenario_title(settings: Mapping[str, Any]) -> str:
    """"name: title" of a run's scenario, for its reports."""
    from patchcheck.errors import UsageError
    from patchcheck.scenarios import registry as scenarios

    name = str(settings.get("scenario") or "")
    try:
        return f"{name or scenarios.DEFAULT}: {scenarios.get(name).title}"
    except UsageError:
        return name


def judge_run(run: RunResults) -> Verdict:
    return judge(run.cases, fix_side(run.settings))
