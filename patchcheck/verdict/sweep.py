"""The compatibility sweep's verdict, decided once: its exit code and the words every report
prints (`SweepVerdict`), from its findings (patchcheck.verdict.sweep_findings) and, when there is
one, the comparison it is judged by (patchcheck.verdict.sweep_diff).

  1  something unexpected fails: an unknown finding (a plain sweep), a regression (against a
     base sweep), or a new failure (patch mode: fails between A and B, not between A and A)
  3  cannot tell: the sweep is partial, or cells have no answer (error), and nothing found
     decides 1 (a finding that decides 1 stands whatever else has no answer)
  0  nothing unexpected
"""

from __future__ import annotations

from dataclasses import dataclass

from patchcheck.exit_codes import EXIT_DEVIATION, EXIT_INFRA, EXIT_OK
from patchcheck.result.cells import CellOutcome, SweepResults
from patchcheck.verdict.sweep_diff import PatchChanges, SweepDiff, diff, new_failures
from patchcheck.verdict.sweep_findings import (
    Finding,
    error_line,
    findings,
    known_bug,
    machine_order,
    machine_ranges,
)

__all__ = ["Finding", "SweepVerdict", "decide", "error_line", "findings", "known_bug",
           "machine_order", "machine_ranges"]

WORDS = {EXIT_OK: "nothing unexpected", EXIT_DEVIATION: "failures", EXIT_INFRA: "cannot tell"}


@dataclass(frozen=True)
class SweepVerdict:
    """The exit code, its sentence and the facts behind it; with what it was decided from, so
    that every report shows the same findings in the same order (numbered from 1)."""

    code: int
    headline: str
    details: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    diff: SweepDiff | None = None  # against a base sweep
    patch: PatchChanges | None = None  # patch mode

    @property
    def lines(self) -> list[str]:
        return [self.headline, *self.details]

    @property
    def word(self) -> str:
        return WORDS.get(self.code, "cannot tell")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _cells(found: tuple[Finding, ...]) -> int:
    return sum(len(f.cells) for f in found)


def _deciding(results: SweepResults, found: list[Finding], diffed: SweepDiff | None,
              patch: PatchChanges | None) -> list[str]:
    """The sentences of what decides exit 1 (none: nothing does)."""
    said = []
    a, b = results.a.name, results.b.name
    if patch is not None and patch.new_failures:
        said.append(f"The patch makes migrations fail: {_plural(patch.new_cells, 'cell')} "
                    f"({_plural(len(patch.new_failures), 'finding')}) failing between {a} and "
                    f"{b}, not between {a} and itself.")
    if diffed is not None and diffed.regressions:
        said.append(f"Regressions: {_plural(diffed.regressed_cells, 'cell')} "
                    f"({_plural(len(diffed.regressions), 'finding')}) failing that passed in "
                    "the base sweep.")
    unknown = [f for f in found if not f.known]
    if patch is None and diffed is None and unknown:
        said.append(f"Unknown failures: {_plural(len(unknown), 'finding')} "
                    f"({_plural(_cells(tuple(unknown)), 'cell')}) with an error no known bug "
                    "explains.")
    return said


def _unanswered(results: SweepResults, diffed: SweepDiff | None,
                patch: PatchChanges | None) -> list[str]:
    """Why the sweep cannot answer (none: it can)."""
    why = []
    if results.partial:
        why.append("the sweep is partial (interrupted or ended by a failure)")
    errors = sum(c.outcome == CellOutcome.ERROR for c in results.cells)
    if errors:
        why.append(f"{_plural(errors, 'cell')} without an answer (error)")
    if diffed is not None and diffed.undecided:
        why.append(f"{_plural(len(diffed.undecided), 'cell')} failing where the base sweep had "
                   "no answer")
    if patch is not None and patch.undecided:
        why.append(f"{_plural(len(patch.undecided), 'cell')} failing whose control "
                   f"({results.a.name} -> {results.a.name}) has no answer")
    return why


def _calm(results: SweepResults, found: list[Finding], diffed: SweepDiff | None,
          patch: PatchChanges | None) -> str:
    """The sentence of exit 0."""
    if patch is not None:
        return ("Nothing unexpected: the patch makes no migration fail that does not fail "
                f"between {results.a.name} and itself.")
    if diffed is not None:
        return "Nothing unexpected: no regression against the base sweep."
    if not found:
        return "Nothing unexpected: no migration failed."
    names = sorted({f.known for f in found})
    return (f"Nothing unexpected: every failure is a known bug ({', '.join(names)}: "
            f"{_plural(len(found), 'finding')}).")


def _facts(results: SweepResults, found: list[Finding], diffed: SweepDiff | None,
           patch: PatchChanges | None) -> list[str]:
    known = sum(bool(f.known) for f in found)
    control = sum(f.control for f in found)
    facts = [f"{_plural(len(found), 'finding')}: {known} known, {len(found) - known} unknown; "
             f"{control} of them in the control ({results.a.name} -> {results.a.name}: bugs "
             f"of {results.a.name} alone)."]
    if diffed is not None:
        facts.append(f"Against the base sweep: {_plural(diffed.regressed_cells, 'regressed cell')}"
                     f", {_plural(diffed.fixed_cells, 'fixed cell')}, "
                     f"{_plural(len(diffed.changed), 'other change')}; "
                     f"{diffed.only_base} cells only in the base sweep, {diffed.only_new} only "
                     "in this one.")
    if patch is not None and patch.known_to_a:
        facts.append(f"{_plural(patch.known_to_a, 'cell')} failing in the control too "
                     f"(bugs of {results.a.name} alone, not the patch's).")
    return facts


def decide(results: SweepResults, base: SweepResults | None = None,
           patch: bool = False) -> SweepVerdict:
    """The sweep's exit code and words: a plain sweep is judged by its unknown findings, a
    sweep with a `base` by its regressions against it, a `patch` sweep (A = base, B = base +
    patch) by its new failures."""
    found = findings(results)
    diffed = diff(base, results) if base is not None else None
    changes = new_failures(results) if patch else None
    deciding = _deciding(results, found, diffed, changes)
    unanswered = _unanswered(results, diffed, changes)
    if deciding:
        code, headline = EXIT_DEVIATION, " ".join(deciding)
    elif unanswered:
        code = EXIT_INFRA
        headline = f"Cannot tell: {'; '.join(unanswered)}; nothing found so far decides."
    else:
        code, headline = EXIT_OK, _calm(results, found, diffed, changes)
    details = _facts(results, found, diffed, changes)
    if deciding and unanswered:
        details.append(f"Also: {'; '.join(unanswered)} (what was found decides anyway).")
    details.append(f"Exit code {code}: {WORDS[code]}.")
    return SweepVerdict(code, headline, tuple(details), tuple(found), diffed, changes)
