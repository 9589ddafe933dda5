"""Issue 14: one decision over a run's migration cases and its register semantics, for
`invoke matrix` and `invoke check` alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from patchcheck.exit_codes import CHECK_NO_VERDICT
from patchcheck.probe.classify import BitChange, Change
from patchcheck.probe.model import PairResult, ProbeRun
from patchcheck.probe.vmstate import FORWARD, VmstateComparison, VmstateDiff
from patchcheck.report import probe_text as report
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.scenarios.pds.registers import SPEC
from patchcheck.verdict.decision import (
    Decision,
    Migration,
    Semantics,
    SemanticsStatus,
    decide,
    decide_run,
    read_semantics,
    semantics_of,
)
from patchcheck.verdict.judge import judge
from patchcheck.verdict.reply import reply

pytestmark = pytest.mark.usefixtures("isolated_env")

MakeResult = Callable[..., CaseResult]
OLD, NEW = "pc-q35-6.0", "pc-q35-7.2"
PDS_CLAUSE = "PCI Express Base Specification 4.0, 7.5.3.11 Slot Status Register"


# --- constructed inputs ---------------------------------------------------------------

def migration_cases(make_result: MakeResult, outcome: str) -> list[CaseResult]:
    """Cases of a check run (builds 7.2-none and 7.2-v1) that come out as `outcome`."""
    rows = {
        # the reproducer fails without the fix at the destination, passes with it
        "works": [(OLD, "7.2-none", "7.2-none", "failed", "failed"),
                  (OLD, "7.2-v1", "7.2-none", "failed", "failed"),
                  (OLD, "7.2-none", "7.2-v1", "passed", "passed"),
                  (NEW, "7.2-none", "7.2-none", "passed", "passed")],
        # a case with the fix at the destination still fails
        "fails": [(OLD, "7.2-none", "7.2-none", "failed", "failed"),
                  (OLD, "7.2-none", "7.2-v1", "failed", "passed"),
                  (NEW, "7.2-none", "7.2-v1", "passed", "passed")],
        # only types without the bug: all as expected, but nothing was shown
        "not-reproduced": [(NEW, "7.2-none", "7.2-none", "passed", "passed"),
                           (NEW, "7.2-none", "7.2-v1", "passed", "passed")],
        # a case errored; nothing with the fix failed
        "errors": [(OLD, "7.2-none", "7.2-none", "failed", "failed"),
                   (OLD, "7.2-none", "7.2-v1", "error", "passed"),
                   (NEW, "7.2-none", "7.2-v1", "passed", "passed")],
        # with the fix the destination rejects the stream with another error than the bug's
        "other": [(OLD, "7.2-none", "7.2-none", "failed", "failed"),
                  (OLD, "7.2-none", "7.2-v1", "failed-other", "passed"),
                  (NEW, "7.2-none", "7.2-v1", "passed", "passed")],
        # a case with the fix passed only on its second attempt: never a pass
        "flaky": [(OLD, "7.2-none", "7.2-none", "failed", "failed"),
                  (OLD, "7.2-none", "7.2-v1", "flaky", "passed"),
                  (NEW, "7.2-none", "7.2-v1", "passed", "passed")],
        # the reproducer failed, but with another error: nothing reproduced
        "other-without": [(OLD, "7.2-none", "7.2-none", "failed-other", "failed"),
                          (OLD, "7.2-none", "7.2-v1", "passed", "passed")],
    }[outcome]
    return [make_result(*row) for row in rows]


def pds_change() -> BitChange:
    return BitChange("sltsta", 6, "PDS", "RO=1", "RW1C=1", "RO", Change.INTRODUCED,
                     "RO in PCIe 4.0 7.5.3.11, but guest writes change it (observed RW1C=1)",
                     title="Slot Status")


def probe_run(finding: str) -> ProbeRun | None:
    """The probe result of a check run: none, clean, a PDS violation, or errors."""
    if finding == "off":
        return None
    run = ProbeRun("r", "2026-12-02T00:00:00+00:00")
    conforming = BitChange("sltctl", 10, "PCC", "RW=0", "RW=1", "RW", Change.CONFORMING,
                           title="Slot Control")
    for machine in (OLD, NEW):
        pair = PairResult(machine, "git:qemu@HEAD", "7.2-none", "7.2-v1", changes=[conforming])
        if finding == "introduced" and machine == OLD:
            pair.changes.append(pds_change())
        run.pairs.append(pair)
    if finding == "errors":
        run.errors.append("pc-q35-6.0 7.2-v1: QEMU did not answer on its monitor")
    return run


# --- the table: migration outcomes x semantics findings --------------------------------

W, F, N, E = "works", "fails", "not-reproduced", "errors"
OT, K, R = "other", "flaky", "other-without"
NV = CHECK_NO_VERDICT


@pytest.mark.parametrize("outcome, finding, migration, status, matrix_exit, check_exit", [
    (W, "off", Migration.FIX_WORKS, SemanticsStatus.OFF, 0, 0),
    (W, "clean", Migration.FIX_WORKS, SemanticsStatus.CLEAN, 0, 0),
    (W, "introduced", Migration.FIX_WORKS, SemanticsStatus.INTRODUCED, 1, 1),  # issue 14
    (W, "errors", Migration.FIX_WORKS, SemanticsStatus.ERRORS, 3, NV),
    (F, "off", Migration.FIX_FAILS, SemanticsStatus.OFF, 1, 1),
    (F, "clean", Migration.FIX_FAILS, SemanticsStatus.CLEAN, 1, 1),
    (F, "introduced", Migration.FIX_FAILS, SemanticsStatus.INTRODUCED, 1, 1),
    (F, "errors", Migration.FIX_FAILS, SemanticsStatus.ERRORS, 3, 1),  # proven bad anyway
    (N, "off", Migration.NOT_REPRODUCED, SemanticsStatus.OFF, 0, 1),  # as modelled, unproven
    (N, "clean", Migration.NOT_REPRODUCED, SemanticsStatus.CLEAN, 0, 1),
    (N, "introduced", Migration.NOT_REPRODUCED, SemanticsStatus.INTRODUCED, 1, 1),
    (N, "errors", Migration.NOT_REPRODUCED, SemanticsStatus.ERRORS, 3, 1),
    (E, "off", Migration.ERRORS, SemanticsStatus.OFF, 3, NV),
    (E, "clean", Migration.ERRORS, SemanticsStatus.CLEAN, 3, NV),
    (E, "introduced", Migration.ERRORS, SemanticsStatus.INTRODUCED, 3, 1),  # proven bad anyway
    (E, "errors", Migration.ERRORS, SemanticsStatus.ERRORS, 3, NV),
    (OT, "off", Migration.FIX_FAILS, SemanticsStatus.OFF, 1, 1),
    (OT, "errors", Migration.FIX_FAILS, SemanticsStatus.ERRORS, 3, 1),
    (K, "off", Migration.ERRORS, SemanticsStatus.OFF, 3, NV),
    (K, "introduced", Migration.ERRORS, SemanticsStatus.INTRODUCED, 3, 1),
    (R, "off", Migration.NOT_REPRODUCED, SemanticsStatus.OFF, 1, 1),
])
def test_decision_table(make_result: MakeResult, outcome: str, finding: str,
                        migration: Migration, status: SemanticsStatus, matrix_exit: int,
                        check_exit: int) -> None:
    d = decide(judge(migration_cases(make_result, outcome)), semantics_of(probe_run(finding)))
    assert (d.migration, d.semantics.status, d.matrix_exit, d.check_exit) == \
        (migration, status, matrix_exit, check_exit)
    assert d.tested_by == (check_exit == 0)
    assert ("No Tested-by" in d.words[-1]) == (check_exit != 0)
    words_agree_with_exit_codes(d)


def words_agree_with_exit_codes(d: Decision) -> None:
    """The words of each task say what its exit code says, and nothing else."""
    check, matrix = "\n".join(d.lines("check")), "\n".join(d.lines("matrix"))
    head = {0: "As expected (exit 0)", 1: "Not as expected (exit 1)", 3: "No verdict (exit 3)"}
    assert d.lines("matrix")[0].startswith(head[d.matrix_exit]), matrix
    assert ("No verdict" in check) == (d.check_exit == CHECK_NO_VERDICT), check
    assert ("No Tested-by" in check) == (d.check_exit != 0), check
    # migration's own fact, said only when the cases prove it; the semantics may still
    # refuse the Tested-by or leave it open, and the conclusion says which
    assert ("every case passes" in check) == (d.migration == Migration.FIX_WORKS)
    assert ("works" in check.replace("does not work", "")) == (d.check_exit == 0)
    heads = {0: "Good (exit 0)", 1: "Bad (exit 1)", 125: "Untestable (exit 125)",
             NV: "No verdict (exit 128)"}
    assert d.lines("check")[0].startswith(heads[d.check_exit]), check
    assert d.exit_code("check") == d.check_exit and d.exit_code("matrix") == d.matrix_exit


@pytest.mark.parametrize("finding", ["off", "clean", "introduced", "errors"])
def test_a_failed_build_is_untestable_for_check_and_infrastructure_for_matrix(
        make_result: MakeResult, finding: str) -> None:
    run = RunResults("r", {"7.2-none": {"name": "7.2-none"},
                           "7.2-v1": {"name": "7.2-v1", "failed": "ninja: error"}},
                     migration_cases(make_result, "works"), "")
    d = decide_run(run, semantics_of(probe_run(finding)))
    assert (d.matrix_exit, d.check_exit, d.tested_by) == (3, 125, False)
    assert d.words == ("Build(s) 7.2-v1 failed: the commit cannot be tested. No Tested-by.",)


@pytest.mark.parametrize("pairs, code", [  # what the matrix's exit code was before issue 14
    ([], 3),  # no case ran: no verdict
    ([("passed", "passed"), ("failed", "failed")], 0),
    ([("passed", "passed"), ("flaky", "passed")], 3),  # a flaky pass is not a pass
    ([("failed-other", "failed")], 1),  # another error is no reproduction: a deviation
    ([("passed", "passed"), ("passed", "failed")], 1),
    ([("failed", "passed")], 1),
    ([("passed", "failed"), ("error", "passed")], 3),  # infrastructure errors win
    ([("error", "passed"), ("passed", "failed")], 3),
    ([("skipped", "failed")], 3),
    ([("passed", "passed"), ("skipped", "passed")], 3),
])
def test_matrix_exit_over_cases_without_a_probe(make_result: MakeResult,
                                                pairs: list[tuple[str, str]], code: int) -> None:
    cases = [make_result(OLD, "7.2-none", "7.2-v1", observed, expected)
             for observed, expected in pairs]
    assert decide(judge(cases), Semantics()).matrix_exit == code


def test_vmstate_that_breaks_a_direction_is_an_introduced_finding(
        make_result: MakeResult) -> None:
    run = probe_run("clean")
    assert run is not None
    run.vmstate.append(VmstateComparison(OLD, "7.2-none", "7.2-v1", differences=[
        VmstateDiff("pcie-root-port/exp", "field-added", None, "x", (FORWARD,))]))
    d = decide(judge(migration_cases(make_result, "works")), semantics_of(run))
    assert (d.matrix_exit, d.check_exit) == (1, 1)
    assert any("vmstate of 7.2-v1 on pc-q35-6.0: 1 difference(s) from 7.2-none that break a "
               "migration direction" in line for line in d.words)


# --- the words a reviewer pastes ---------------------------------------------------------

def test_the_paragraph_names_register_bit_behaviours_attribute_and_clause(
        make_result: MakeResult) -> None:
    d = decide(judge(migration_cases(make_result, "works")), semantics_of(probe_run("introduced")))
    text = "\n".join(d.words)
    assert text.startswith("With the fix at the destination every case passes (1); without "
                           "it the reproducer fails with the bug's error (2).\n"
                           "But the fix introduces a guest-visible specification violation")
    assert ("- Slot Status bit 6 (PDS): read-only (RO=1) without the fix, write-1-to-clear "
            f"(RW1C=1) with it; specified read-only (RO) in {PDS_CLAUSE} (seen on pc-q35-6.0)"
            in d.words)
    assert "PCC" not in text  # a conforming change is no reason to reject
    assert d.words[-1].endswith("No Tested-by.")


def test_the_same_violation_on_two_machine_types_is_one_line(make_result: MakeResult) -> None:
    run = probe_run("clean")
    assert run is not None
    for pair in run.pairs:
        pair.changes.append(pds_change())
    violations = semantics_of(run).violations
    assert len(violations) == 1 and violations[0].machines == (OLD, NEW)


def test_the_clause_comes_from_the_specification_table() -> None:
    assert SPEC[("sltsta", 6)].clause == PDS_CLAUSE
    assert SPEC[("lnkctl", 4)].clause == ("PCI Express Base Specification 4.0, 7.5.3.7 Link "
                                          "Control Register")


def test_probe_errors_say_the_semantics_are_unknown(make_result: MakeResult) -> None:
    d = decide(judge(migration_cases(make_result, "works")), semantics_of(probe_run("errors")))
    assert any("did not complete (1 error(s); first: pc-q35-6.0 7.2-v1: QEMU did not answer"
               in line for line in d.words)
    assert "infrastructure errors" in d.words[-1]


def test_check_summary_gives_tested_by_only_when_deserved(make_result: MakeResult,
                                                          tmp_path: Path) -> None:
    cases = migration_cases(make_result, "works")
    cases[0].destination_error = ("qemu-system-x86_64: get_pci_config_device: Bad config data: "
                                  "i=0x6e read: 0 device: 40 cmask: ff wmask: 0 w1cmask:19")
    run = RunResults("r", {"with": {"qemu_version": "7.2.0"}}, cases, "")
    for finding, deserved in (("clean", True), ("introduced", False), ("errors", False)):
        text = reply(run, "HEAD (1234)", "patch v1.patch",
                     decide_run(run, semantics_of(probe_run(finding))), "A Reviewer <r@example.org>")
        assert ("Tested-by: A Reviewer <r@example.org>" in text) == deserved, text
        assert ("PDS" in text) == (finding == "introduced")
        assert "it fails (2 cases): get_pci_config_device: Bad config data: i=0x6e" in text


# --- reading a run's probe result back -------------------------------------------------------

def test_read_back_semantics_equal_the_run_s_own(tmp_path: Path) -> None:
    for finding in ("clean", "introduced", "errors"):
        run = probe_run(finding)
        assert run is not None
        report.write(run, tmp_path / finding)
        assert read_semantics(tmp_path / finding) == semantics_of(run)


def test_a_run_without_a_probe_reads_back_as_off(tmp_path: Path) -> None:
    assert read_semantics(tmp_path).status == SemanticsStatus.OFF


def test_an_unreadable_probe_result_never_gives_a_tested_by(make_result: MakeResult,
                                                            tmp_path: Path) -> None:
    (tmp_path / "probe.json").write_text("{ truncated")
    semantics = read_semantics(tmp_path)
    assert semantics.status == SemanticsStatus.ERRORS
    d = decide(judge(migration_cases(make_result, "works")), semantics)
    assert (d.check_exit, d.tested_by) == (CHECK_NO_VERDICT, False)
