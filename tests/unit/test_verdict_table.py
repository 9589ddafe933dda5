"""Issue 25: every outcome kind, from scripted QEMUs (tests/fakes.py) through the migration
code to the decision, its words and its exit codes, for `invoke matrix` and `invoke check`;
and the words of every report (terminal lines, summary.md, index.html, junit.xml) agree with
the exit code in every row.

Each row is a small check-like run on PDS: the reproducer (7.2-none -> 7.2-none on
pc-q35-6.0, the model: fails) and the case with the fix at the destination (7.2-none ->
7.2-v2, the model: passes), each destination following its script.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lxml.html
import pytest

from patchcheck.exit_codes import CHECK_NO_VERDICT
from patchcheck.report import regenerate
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed
from patchcheck.run.migrate import run_cases
from patchcheck.scenarios.pds.scenario import SCENARIO
from patchcheck.verdict.decision import CHECK, decide_dir

from ..fakes import KILLED, LOADS, REJECTS, REJECTS_OTHER, Dest, FakeHosts
from .test_migrate_table import BUILDS, FIXED, LOST, TIMEOUT, UNFIXED, Sharing

pytestmark = pytest.mark.usefixtures("isolated_env")


@dataclass(frozen=True)
class Script:
    """What a destination does, and what its guest does after a load (None: it lives)."""

    dests: tuple[Dest, ...]
    problems: tuple[str | None, ...] = ()


PASS = Script((LOADS,))
BUG = Script((REJECTS,))
OTHER = Script((REJECTS_OTHER,))
CRASH = Script((KILLED,))
FLAKY = Script((LOADS, LOADS), (LOST,))  # the guest lost once, then it runs on
HEARTBEAT = Script((LOADS, LOADS), (LOST, LOST))  # no heartbeat, twice


@dataclass(frozen=True)
class Row:
    reproducer: Script
    fixed: Script
    observed: tuple[Observed, Observed]
    matrix_exit: int
    check_exit: int


P, F, OT, K, E = (Observed.PASSED, Observed.FAILED, Observed.FAILED_OTHER, Observed.FLAKY,
                 Observed.ERROR)
ROWS = {
    "the fix works": Row(BUG, PASS, (F, P), 0, 0),
    "the bug's error with the fix": Row(BUG, BUG, (F, F), 1, 1),
    "another error with the fix": Row(BUG, OTHER, (F, OT), 1, 1),
    "another error without the fix": Row(OTHER, PASS, (OT, P), 1, 1),
    "a crash with the fix": Row(BUG, CRASH, (F, E), 3, CHECK_NO_VERDICT),
    "flaky with the fix": Row(BUG, FLAKY, (F, K), 3, CHECK_NO_VERDICT),
    "a heartbeat timeout": Row(BUG, HEARTBEAT, (F, E), 3, CHECK_NO_VERDICT),
    "nothing reproduced": Row(PASS, PASS, (P, P), 1, 1),
}


def _case(tmp_path: Path, name: str, case: object, script: Script) -> CaseResult:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    hosts = FakeHosts(script.dests)
    [result] = run_cases([case], BUILDS, hosts, SCENARIO, scratch,  # type: ignore[list-item]
                         lambda _: tmp_path / "logs" / name, timeout=TIMEOUT,
                         action=Sharing(script.problems))
    return result


def _reports(tmp_path: Path, results: list[CaseResult], task: str) -> dict[str, str]:
    run_dir = tmp_path / task
    run_dir.mkdir()
    run = RunResults(task, {}, results, "2026-12-06T00:00:00+00:00",
                     settings={"scenario": "pds", "task": task})
    paths = regenerate.write_all(run, run_dir)
    return {kind: Path(path).read_text() for kind, path in paths.items()}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_outcomes_into_decision_words_and_exit_codes(tmp_path: Path, row: Row) -> None:
    results = [_case(tmp_path, "reproducer", UNFIXED, row.reproducer),
               _case(tmp_path, "fixed", FIXED, row.fixed)]
    assert tuple(r.observed for r in results) == row.observed
    for task, code in (("matrix", row.matrix_exit), (CHECK, row.check_exit)):
        reports = _reports(tmp_path, results, task)
        decision = decide_dir(RunResults.load(tmp_path / task / "results.json"), tmp_path / task)
        assert decision.exit_code(task) == code
        lines = decision.lines(task)
        head = {0: ("As expected (exit 0)", "Good (exit 0)"),
                1: ("Not as expected (exit 1)", "Bad (exit 1)"),
                3: ("No verdict (exit 3)",), CHECK_NO_VERDICT: ("No verdict (exit 128)",)}[code]
        assert lines[0].startswith(head), lines
        text = "\n".join(lines)
        assert ("works" in text.replace("does not work", "")) == (task == CHECK and code == 0)
        assert ("No Tested-by" in text) == (task == CHECK and code != 0)
        # every report renders these very lines, with this exit code
        assert f"Verdict: {text}" in reports["summary"]
        page = lxml.html.fromstring(reports["html"])
        verdict = page.get_element_by_id("verdict")
        assert verdict.get("data-exit") == str(code)
        assert verdict.text_content() == "".join(lines)
        assert f'<property name="exit_code" value="{code}"' in reports["junit"]
        assert lines[0].replace("(", "") in reports["junit"].replace("(", "")


def test_a_failure_with_another_error_is_quoted_in_the_words(tmp_path: Path) -> None:
    results = [_case(tmp_path, "reproducer", UNFIXED, BUG),
               _case(tmp_path, "fixed", FIXED, OTHER)]
    text = "\n".join(_decision_words(tmp_path, results))
    assert "1 case(s) fail with another error" in text
    assert ('rejected with another error: "qemu-system-x86_64: get_pci_config_device: Bad config '
            'data: i=0x6a read: 0 device: 2') in text
    assert "pc-q35-6.0:7.2-none->7.2-v2[synthetic]" in text


def _decision_words(tmp_path: Path, results: list[CaseResult]) -> tuple[str, ...]:
    _reports(tmp_path, results, CHECK)
    run_dir = tmp_path / CHECK
    return decide_dir(RunResults.load(run_dir / "results.json"), run_dir).lines(CHECK)
