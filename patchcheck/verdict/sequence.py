"""The verdicts of commits in sequence: a commit of a series (its status and its words), the
series' exit code, a bisection's two ends, and the code of one `git bisect run` step."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from patchcheck.errors import InfraError
from patchcheck.exit_codes import CHECK_CANNOT_TEST, EXIT_DEVIATION, EXIT_INFRA, EXIT_OK
from patchcheck.result.model import CaseResult
from patchcheck.result.outcome import Observed

TERMS = {"failed": "fails", "passed": "passes"}  # an outcome -> git bisect's term for it
# outcomes that are neither: another error than the bug's, a flaky case (a step skips them)
SKIPPED = ("failed-other", "flaky")
BISECT_SKIP = 125  # git bisect run: this commit cannot be tested


def commit_status(cases: Sequence[CaseResult]) -> str:
    """A series commit whose cases ran: error (no verdict), deviates, or as-expected."""
    if any(c.observed.no_verdict for c in cases) or not cases:
        return "error"
    if any(c.deviates for c in cases):
        return "deviates"
    return "as-expected"


def behaviour(cases: Sequence[CaseResult]) -> str:
    """What the cases did: "passes (9)", "fails 3 of 9", "fails 3 of 9 (2 with another
    error)"; flaky cases and errors are named."""
    failed = [c for c in cases if c.observed.rejected]
    other = sum(1 for c in failed if c.observed == Observed.FAILED_OTHER)
    text = (f"fails {len(failed)} of {len(cases)}" if failed else f"passes ({len(cases)})")
    if other:
        text += f" ({other} with another error)"
    flaky = sum(1 for c in cases if c.observed == Observed.FLAKY)
    return text + (f", {flaky} flaky" if flaky else "")


def series_exit_code(statuses: Collection[str], error: str) -> int:
    """1 when a commit deviates, 3 when one had an error (or the series did), 125 when one
    cannot be built, 0 otherwise."""
    if "deviates" in statuses:
        return EXIT_DEVIATION
    if error or "error" in statuses:
        return EXIT_INFRA
    if "untestable" in statuses:
        return CHECK_CANNOT_TEST
    return EXIT_OK


class End(Protocol):
    """One end of a bisection, as its step found it (sequence.step.Step)."""

    @property
    def commit(self) -> str: ...
    @property
    def outcome(self) -> str: ...  # untestable, or the watched case's outcome
    @property
    def message(self) -> str: ...


def bisect_ends(ends: Sequence[End]) -> tuple[int, str] | None:
    """(exit code, why) when the two ends leave nothing to bisect; None when they differ
    (bisect). InfraError when an end has no verdict."""
    for end in ends:
        if end.outcome == "untestable":
            return CHECK_CANNOT_TEST, f"{end.commit[:12]} cannot be built: {end.message}"
        if end.outcome in SKIPPED:  # neither the bug's failure nor a pass
            return EXIT_DEVIATION, (f"the case ended {end.outcome} at {end.commit[:12]} "
                                    f"({end.message}): it neither passes nor fails with the "
                                    "bug's error there, nothing to bisect")
        if end.outcome not in TERMS:
            raise InfraError(f"the case at {end.commit[:12]}: {end.outcome}: {end.message}")
    if ends[0].outcome == ends[1].outcome:
        return EXIT_DEVIATION, f"the case {TERMS[ends[0].outcome]} at both ends: nothing to bisect"
    return None


def step_code(outcome: str, terms: Mapping[str, str]) -> int | None:
    """A `git bisect run` step's code: 0 old, 1 new, 125 skip (untestable, another error, a
    flaky case); None when the outcome has no verdict (the step aborts the bisection)."""
    if outcome == "untestable" or outcome in SKIPPED:
        return BISECT_SKIP
    term = TERMS.get(outcome)
    if term == terms["old"]:
        return 0
    if term == terms["new"]:
        return 1
    return None
