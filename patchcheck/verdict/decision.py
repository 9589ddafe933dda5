"""The final verdict of a run: its migration cases and its register semantics, decided once.

`invoke matrix` (patchcheck.run.matrix), `invoke check` (and whatever else needs a run's verdict)
ask `decide_run`, so they cannot disagree. Two exit codes come out of one decision:

matrix (did everything come out as expected):
  3  no verdict: a case errored, was skipped or was flaky, a build failed, the probe had
     errors
  1  a case deviates from the model, or a fix introduces a specification violation
  0  otherwise

check (`git bisect run` semantics: is the fix good on this commit):
  1  proven bad: a case with the fix (on the scenario's side) failed (with the bug's error
     or another), the reproducer did not fail with the bug's error without the fix, or the
     fix introduces a specification violation (a fix that makes migration pass but breaks
     a register's guest-visible semantics is not a fix)
  125  a build failed: the commit cannot be tested
  128  no verdict: infrastructure errors or flaky cases in the cases, or probe errors,
     and nothing proven bad: not a property of the commit; `git bisect run` aborts on it
     rather than reading it as "bad" (see the README)
  0  the fix works and the probe found nothing it introduces (or did not run)
A proven "bad" wins over errors for check (one proven defect answers its question) but not
for matrix (an incomplete matrix cannot say that everything came out as expected).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from patchcheck.exit_codes import (
    CHECK_CANNOT_TEST,
    CHECK_FIX_FAILS,
    CHECK_FIX_WORKS,
    CHECK_NO_VERDICT,
    EXIT_DEVIATION,
    EXIT_INFRA,
    EXIT_OK,
)
from patchcheck.probe import model as probe_model
from patchcheck.probe.classify import BitChange
from patchcheck.probe.model import PairResult, ProbeRun
from patchcheck.qemu.registers import RegisterSet
from patchcheck.result.model import RunResults
from patchcheck.verdict import probe as probe_verdict
from patchcheck.verdict.judge import Verdict, judge_run


class Migration(enum.StrEnum):
    FIX_WORKS = "fix-works"  # the reproducer fails without the fix, every case with it passes
    FIX_FAILS = "fix-fails"
    NOT_REPRODUCED = "not-reproduced"  # the reproducer did not fail without the fix
    ERRORS = "errors"  # cases errored or were skipped, and none with the fix failed


class SemanticsStatus(enum.StrEnum):
    OFF = "off"  # no probe ran, or it had no without-fix/with-fix pair to compare
    CLEAN = "clean"
    INTRODUCED = "introduced"  # a fix introduces a violation (or breaks vmstate)
    ERRORS = "errors"  # the probe did not complete


# The specification's attributes and the probe's behaviours, in words.
_WORDS = {"RO": "read-only", "HwInit": "read-only (HwInit)", "RW": "read-write",
          "RW1C": "write-1-to-clear", "RW1S": "write-1-to-set", "RsvdP": "reserved (RsvdP)",
          "RsvdZ": "reserved (RsvdZ)", "irregular": "irregular"}


def _words(label: str) -> str:
    """"RW1C=1" -> "write-1-to-clear (RW1C=1)"; labels without a known kind stay as they are."""
    kind = label.partition("=")[0]
    return f"{_WORDS[kind]} ({label})" if kind in _WORDS else label


@dataclass(frozen=True)
class Violation:
    """A guest-visible specification violation a fix introduces, on some machine types."""

    register: str  # the register's title, "Slot Status"
    bit: int
    name: str
    without: str  # observed behaviour label without the fix, "RO=1"
    with_fix: str
    specified: str  # the specification's attribute, "RO"
    clause: str  # "PCI Express Base Specification 4.0, 7.5.3.11 Slot Status Register"
    build: str  # the build with the fix
    machines: tuple[str, ...]

    @property
    def text(self) -> str:
        kind, _, rest = self.specified.partition(" ")  # "RW (reads 0)"
        specified = f"{_words(kind)} {rest}".rstrip() if kind else "not modelled"
        return (f"{self.register} bit {self.bit} ({self.name}): {_words(self.without)} without "
                f"the fix, {_words(self.with_fix)} with it; specified {specified}"
                + (f" in {self.clause}" if self.clause else "")
                + f" (seen on {', '.join(self.machines)})")


@dataclass(frozen=True)
class Semantics:
    """What the register-semantics probe found, as far as a verdict needs it."""

    ran: bool = False  # a probe ran and compared at least one pair (or failed trying)
    violations: tuple[Violation, ...] = ()
    incompatible: tuple[str, ...] = ()  # vmstate differences that break a direction, as text
    errors: tuple[str, ...] = ()
    summary: str = ""  # the probe's own one-line verdict

    @property
    def status(self) -> SemanticsStatus:
        if self.errors:
            return SemanticsStatus.ERRORS
        if self.violations or self.incompatible:
            return SemanticsStatus.INTRODUCED
        return SemanticsStatus.CLEAN if self.ran else SemanticsStatus.OFF

    @property
    def introduces(self) -> bool:
        return bool(self.violations or self.incompatible)


def semantics_of(run: ProbeRun | None) -> Semantics:
    """The probe run of a matrix run (None: no probe ran) as a verdict needs it."""
    if run is None:
        return Semantics()
    from patchcheck.probe.model import break_texts

    incompatible = tuple(f"vmstate of {v.with_fix} on {v.machine}: {len(v.incompatible)} "
                         f"difference(s) from {v.without} that break a migration direction"
                         for v in run.vmstate if v.incompatible) + tuple(break_texts(run))
    return Semantics(ran=bool(run.pairs or run.versions or run.all_errors),
                     violations=_violations(run.introduced, _registers(run)),
                     incompatible=incompatible, errors=tuple(run.all_errors),
                     summary=probe_verdict.words(run))


def _registers(run: ProbeRun) -> RegisterSet | None:
    from patchcheck.scenarios import registry as scenarios

    return scenarios.get(str(run.settings.get("scenario", ""))).probe


def _violations(introduced: Sequence[tuple[PairResult, BitChange]],
                registers: RegisterSet | None) -> tuple[Violation, ...]:
    """One Violation per (with-fix build, bit, change), with every machine type it is seen on."""
    seen: dict[tuple[str, str, int, str, str], tuple[BitChange, list[str]]] = {}
    for pair, c in introduced:
        key = (pair.with_fix, c.register, c.bit, c.without, c.with_fix)
        seen.setdefault(key, (c, []))[1].append(pair.machine)
    found = []
    for (build, *_), (c, machines) in seen.items():
        spec = registers.spec.get(c.key) if registers else None
        found.append(Violation(c.title or c.register, c.bit, c.name, c.without, c.with_fix,
                               c.spec, spec.clause if spec else "", build, tuple(machines)))
    return tuple(found)


def read_semantics(run_dir: Path) -> Semantics:
    """The probe result a matrix run wrote (probe.json); none when the run had no probe."""
    if not (run_dir / "probe.json").exists():
        return Semantics()
    run = probe_model.load(run_dir)
    if run is None:
        return Semantics(ran=True, errors=(f"{run_dir / 'probe.json'} is unreadable",),
                         summary="probe result unreadable")
    return semantics_of(run)


@dataclass(frozen=True)
class Decision:
    """The final verdict of a run: exit codes for `invoke matrix` and for `invoke check`
    (git bisect's convention), and the words of each. Every report and every task renders
    this one object, so its words cannot say what its exit code does not."""

    migration: Migration
    semantics: Semantics
    matrix_exit: int
    check_exit: int
    words: tuple[str, ...]  # the verdict for a reply: migration, semantics, conclusion
    matrix_words: tuple[str, ...] = ()  # the matrix's: its exit code's line, then the above

    @property
    def tested_by(self) -> bool:
        """Does the fix deserve a Tested-by?"""
        return self.check_exit == CHECK_FIX_WORKS

    def lines(self, task: str) -> tuple[str, ...]:
        """The words of the task that ran ("check", else a matrix's), each led by the line
        of its exit code."""
        if task == CHECK:
            return (CHECK_HEADLINES[self.check_exit], *self.words)
        return self.matrix_words

    def exit_code(self, task: str) -> int:
        return self.check_exit if task == CHECK else self.matrix_exit


CHECK = "check"  # the task whose words and exit code follow git bisect's convention
CHECK_HEADLINES = {
    CHECK_FIX_WORKS: f"Good (exit {CHECK_FIX_WORKS}): the fix works on this commit.",
    CHECK_FIX_FAILS: f"Bad (exit {CHECK_FIX_FAILS}): the fix does not do what it claims on "
                     "this commit.",
    CHECK_CANNOT_TEST: f"Untestable (exit {CHECK_CANNOT_TEST}): the commit cannot be tested.",
    CHECK_NO_VERDICT: f"No verdict (exit {CHECK_NO_VERDICT}): the check could not tell.",
}


def migration_of(verdict: Verdict) -> Migration:
    if verdict.fixed_fails or verdict.fixed_other:
        return Migration.FIX_FAILS  # proven, whatever else errored
    if verdict.unobserved or not verdict.total:
        return Migration.ERRORS
    if verdict.fix_works:
        return Migration.FIX_WORKS
    if verdict.reproduces == 0:
        return Migration.NOT_REPRODUCED
    return Migration.FIX_FAILS


def decide(verdict: Verdict, semantics: Semantics, failed_builds: Sequence[str] = ()) -> Decision:
    """The one decision over a run's migration verdict and its semantics."""
    migration = migration_of(verdict)
    check = _check_exit(migration, semantics, failed_builds)
    matrix = _matrix_exit(verdict, semantics, failed_builds)
    findings = () if failed_builds else _findings(verdict, migration, semantics)
    # the matrix's: its own line, what the cases and the probe showed, and the probe's own
    # verdict, which names the builds, where it found something
    probe = (f"Register semantics: {semantics.summary}",) if semantics.introduces else ()
    return Decision(migration, semantics, matrix, check,
                    _check_words(findings, migration, semantics, failed_builds, check),
                    (_matrix_line(verdict, semantics, failed_builds, matrix), *findings,
                     *probe))


def decide_run(run: RunResults, semantics: Semantics) -> Decision:
    """decide() over a run's results (its cases and its failed builds)."""
    failed = tuple(name for name, build in run.builds.items() if build.get("failed"))
    return decide(judge_run(run), semantics, failed)


def decide_dir(run: RunResults, run_dir: Path) -> Decision:
    """decide_run() with the probe result the run wrote beside its results."""
    return decide_run(run, read_semantics(run_dir))


def task_of(run: RunResults) -> str:
    """The task that made the run: its words and exit code are the ones it printed."""
    return str(run.settings.get("task") or "matrix")


def _matrix_exit(verdict: Verdict, semantics: Semantics, failed_builds: Sequence[str]) -> int:
    if verdict.unobserved or not verdict.total or semantics.errors or failed_builds:
        return EXIT_INFRA
    if verdict.deviations or semantics.introduces:
        return EXIT_DEVIATION
    return EXIT_OK


def _check_exit(migration: Migration, semantics: Semantics, failed_builds: Sequence[str]) -> int:
    if failed_builds:
        return CHECK_CANNOT_TEST
    if migration in (Migration.FIX_FAILS, Migration.NOT_REPRODUCED) or semantics.introduces:
        return CHECK_FIX_FAILS
    if migration == Migration.ERRORS or semantics.errors:
        return CHECK_NO_VERDICT
    return CHECK_FIX_WORKS


def _matrix_line(verdict: Verdict, semantics: Semantics, failed_builds: Sequence[str],
                 code: int) -> str:
    """The matrix's own verdict in one line: what its exit code says."""
    head = f"{verdict.total} cases"
    if code == EXIT_INFRA:
        why = [f"build(s) {', '.join(failed_builds)} failed"] if failed_builds else []
        why += ["no case ran"] if not verdict.total else []
        why += [f"{verdict.errors} case(s) errored or were skipped"] if verdict.errors else []
        why += [f"{verdict.flaky} case(s) flaky"] if verdict.flaky else []
        why += ["the register-semantics probe did not complete"] if semantics.errors else []
        also = f"; {verdict.deviations} deviate from the model" if verdict.deviations else ""
        return f"No verdict (exit {code}): {head}, {', '.join(why)}{also}."
    if code == EXIT_DEVIATION:
        why = [f"{verdict.deviations} deviate from the model"] if verdict.deviations else []
        why += ["a fix introduces a specification violation"] if semantics.introduces else []
        return f"Not as expected (exit {code}): {head}, {', '.join(why)}."
    return f"As expected (exit {code}): all {head} came out as the model says."


def _findings(verdict: Verdict, migration: Migration, semantics: Semantics
              ) -> tuple[str, ...]:
    """What the cases and the probe showed, in words (every task's)."""
    return (*_migration_words(verdict, migration), *_semantics_words(migration, semantics))


def _check_words(findings: tuple[str, ...], migration: Migration, semantics: Semantics,
                 failed_builds: Sequence[str], check: int) -> tuple[str, ...]:
    """The reply's words: the findings and, without a Tested-by, why not."""
    if failed_builds:
        return (f"Build(s) {', '.join(failed_builds)} failed: the commit cannot be tested. "
                "No Tested-by.",)
    if check == CHECK_FIX_WORKS:
        return findings
    return (*findings, _conclusion(migration, semantics, check))


def _migration_words(verdict: Verdict, migration: Migration) -> list[str]:
    side = verdict.fix_side
    if migration == Migration.FIX_WORKS:
        return [f"With the fix at the {side} every case passes ({verdict.fixed_passes}); "
                f"without it the reproducer fails with the bug's error ({verdict.reproduces})."]
    if not verdict.total:
        return ["No case ran: no verdict on migration."]
    if migration == Migration.ERRORS:
        flaky = (f" and {verdict.flaky} flaky (failed, then passed on a second attempt)"
                 if verdict.flaky else "")
        return [f"{verdict.errors} case(s) could not be run (infrastructure errors, see the "
                f"report){flaky}: no verdict on migration.", *_other_words(verdict)]
    if migration == Migration.NOT_REPRODUCED:
        return ["The reproducer did not fail with the bug's error without the fix: nothing "
                "was proven.", *_other_words(verdict)]
    lines = []
    if verdict.fixed_fails:
        lines.append(f"The fix did not remove the failure: with it at the {side} "
                     f"{verdict.fixed_fails} case(s) still fail with the bug's error.")
    if verdict.fixed_other:
        lines.append(f"With the fix at the {side} {verdict.fixed_other} case(s) fail with "
                     "another error: migration does not work with it.")
    if not lines:
        lines.append(f"The fix does NOT make migration work as the model says: "
                     f"{verdict.deviations} case(s) deviate from the expected outcome.")
    return [*lines, *_other_words(verdict)]


def _other_words(verdict: Verdict) -> list[str]:
    """The errors other than the bug's, quoted, each with its cases."""
    by_line: dict[str, list[str]] = {}
    for case_id, line in verdict.other:
        by_line.setdefault(line, []).append(case_id)
    return [f"- {len(ids)} case(s) rejected with another error: \"{line}\" ({ids[0]}"
            + (f" and {len(ids) - 1} more)" if len(ids) > 1 else ")")
            for line, ids in by_line.items()]


def _semantics_words(migration: Migration, semantics: Semantics) -> list[str]:
    status = semantics.status
    if semantics.introduces:
        head = ("But the fix introduces" if migration == Migration.FIX_WORKS else
                "The fix also introduces")
        return [f"{head} a guest-visible specification violation (register-semantics probe):",
                *(f"- {v.text}" for v in semantics.violations),
                *(f"- {text}" for text in semantics.incompatible)]
    if status == SemanticsStatus.ERRORS:
        return [f"The register-semantics probe did not complete ({len(semantics.errors)} "
                f"error(s); first: {semantics.errors[0]}): whether the fix breaks the "
                "specification is not known."]
    if status == SemanticsStatus.CLEAN:
        return [f"Register semantics: {semantics.summary}."]
    return ["Register semantics: not probed" + (f" ({semantics.summary})."
                                               if semantics.summary else ".")]


def _conclusion(migration: Migration, semantics: Semantics, check: int) -> str:
    if migration == Migration.FIX_WORKS and semantics.introduces:
        return ("Migration working is not enough: the violation above is a reason to reject "
                "the fix. No Tested-by.")
    if check == CHECK_NO_VERDICT:
        return (f"No verdict (exit {check}) because of infrastructure errors or flaky cases: "
                "run the check again. No Tested-by.")
    return "No Tested-by."
