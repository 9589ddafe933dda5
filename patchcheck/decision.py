"""The final verdict of a run: its migration cases and its register semantics, decided once.

`invoke matrix` (patchcheck.run), `invoke check` (and whatever else needs a run's verdict)
ask `decide_run`, so they cannot disagree. Two exit codes come out of one decision:

matrix (did everything come out as expected):
  3  infrastructure: a case errored or was skipped, a build failed, the probe had errors
  1  a case deviates from the model, or a fix introduces a specification violation
  0  otherwise

check (`git bisect run` semantics: is the fix good on this commit):
  1  proven bad: a case with the fix (on the scenario's side) failed, the reproducer did not
     fail without the fix, or the fix introduces a specification violation (a fix that
     makes migration pass but breaks a register's guest-visible semantics is not a fix)
  125  a build failed: the commit cannot be tested
  3  infrastructure errors in the cases or the probe, and nothing proven bad: not a
     property of the commit (see the README on why 3 and not 125)
  0  the fix works and the probe found nothing it introduces (or did not run)
A proven "bad" wins over errors for check (one proven defect answers its question) but not
for matrix (an incomplete matrix cannot say that everything came out as expected).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .outcome import (
    CHECK_CANNOT_TEST,
    CHECK_FIX_FAILS,
    CHECK_FIX_WORKS,
    EXIT_DEVIATION,
    EXIT_INFRA,
    EXIT_OK,
)
from .probe import model as probe_model
from .probe.classify import BitChange
from .probe.model import PairResult, ProbeRun
from .probe.registers import RegisterSet
from .results import RunResults
from .verdict import Verdict, judge_run


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
    from .probe.versions import break_texts

    incompatible = tuple(f"vmstate of {v.with_fix} on {v.machine}: {len(v.incompatible)} "
                         f"difference(s) from {v.without} that break a migration direction"
                         for v in run.vmstate if v.incompatible) + tuple(break_texts(run))
    return Semantics(ran=bool(run.pairs or run.versions or run.all_errors),
                     violations=_violations(run.introduced, _registers(run)),
                     incompatible=incompatible, errors=tuple(run.all_errors),
                     summary=probe_model.verdict(run))


def _registers(run: ProbeRun) -> RegisterSet | None:
    from . import scenarios

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
    (git bisect's convention), and the words a reviewer pastes."""

    migration: Migration
    semantics: Semantics
    matrix_exit: int
    check_exit: int
    words: tuple[str, ...]  # the verdict for a reply: migration, semantics, conclusion

    @property
    def tested_by(self) -> bool:
        """Does the fix deserve a Tested-by?"""
        return self.check_exit == CHECK_FIX_WORKS


def migration_of(verdict: Verdict) -> Migration:
    if verdict.fixed_fails:
        return Migration.FIX_FAILS  # proven, whatever else errored
    if verdict.errors:
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
    return Decision(migration, semantics, _matrix_exit(verdict, semantics, failed_builds), check,
                    _words_for(verdict, migration, semantics, failed_builds, check))


def decide_run(run: RunResults, semantics: Semantics) -> Decision:
    """decide() over a run's results (its cases and its failed builds)."""
    failed = tuple(name for name, build in run.builds.items() if build.get("failed"))
    return decide(judge_run(run), semantics, failed)


def _matrix_exit(verdict: Verdict, semantics: Semantics, failed_builds: Sequence[str]) -> int:
    if verdict.errors or semantics.errors or failed_builds:
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
        return EXIT_INFRA
    return CHECK_FIX_WORKS


def _words_for(verdict: Verdict, migration: Migration, semantics: Semantics,
               failed_builds: Sequence[str], check: int) -> tuple[str, ...]:
    if failed_builds:
        return (f"Build(s) {', '.join(failed_builds)} failed: the commit cannot be tested. "
                "No Tested-by.",)
    lines = [_migration_words(verdict, migration), *_semantics_words(migration, semantics)]
    if check != CHECK_FIX_WORKS:
        lines.append(_conclusion(migration, semantics, check))
    return tuple(lines)


def _migration_words(verdict: Verdict, migration: Migration) -> str:
    if migration == Migration.FIX_WORKS:
        return f"With the fix at the {verdict.fix_side} every case passes."
    if migration == Migration.NOT_REPRODUCED:
        return "The reproducer did not fail without the fix: nothing was proven."
    if migration == Migration.ERRORS:
        return (f"{verdict.errors} case(s) could not be run (infrastructure errors, see the "
                "report): no verdict on migration.")
    return (f"The fix does NOT make migration work: with it at the {verdict.fix_side} "
            f"{verdict.fixed_fails} case(s) fail and {verdict.fixed_passes} pass; "
            f"{verdict.deviations} case(s) deviate from the expected outcome.")


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
    if check == EXIT_INFRA:
        return "No verdict because of infrastructure errors: run the check again. No Tested-by."
    return "No Tested-by."
