"""summary.md: what was tested, the table, the verdict line, every deviating case."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from patchcheck.report import grid, markdown, regenerate
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.verdict.decision import Semantics, decide
from patchcheck.verdict.judge import judge

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "demo3"
MakeResult = Callable[..., CaseResult]
DEST_ERROR = ("qemu-system-x86_64: get_pci_config_device: Bad config data: i=0x6e read: 0 "
              "device: 40 cmask: ff wmask: 0 w1cmask:19")


@pytest.fixture
def summary(tmp_path: Path) -> tuple[str, RunResults]:
    run_dir = tmp_path / "demo3"
    shutil.copytree(FIXTURE, run_dir)
    path = regenerate.regenerate(run_dir)["summary"]
    assert path == run_dir / "summary.md"
    return path.read_text(), RunResults.load(run_dir / "results.json")


def test_verdict_line(summary: tuple[str, RunResults]) -> None:
    text, run = summary
    decision = decide(judge(run.cases), Semantics())
    head = f"Verdict: {decision.matrix_words[0]}"
    assert head in text.splitlines()
    # the fixture's edited deviations and its error: no verdict, deviations named
    assert head.startswith("Verdict: No verdict (exit 3): ") and "2 deviate" in head
    for line in decision.matrix_words[1:]:
        assert line in text.splitlines()


def test_every_deviating_case_with_its_destination_error_line(
        summary: tuple[str, RunResults]) -> None:
    text, run = summary
    lines = text.splitlines()
    deviating = [r for r in run.cases if r.deviates]
    assert len(deviating) == 2  # failed-not-passed, passed-not-failed (an error is no
    # observation: listed under the errors)
    for r in deviating:
        at = next(i for i, line in enumerate(lines) if f"`{r.case.id}`" in line)
        if r.destination_error:
            first = r.destination_error.splitlines()[0]
            assert f"destination: {first}" in lines[at + 1], r.case.id
    assert f"destination: {DEST_ERROR}" in text
    assert "observed passed, expected failed" in text and "destination ran" in text
    assert "timeout waiting for the migration to finish" in text
    assert "build 7.2-v1 failed" in text  # the skipped case's reason


def test_what_was_tested_and_table(summary: tuple[str, RunResults]) -> None:
    text, run = summary
    for name, b in run.builds.items():
        line = next(x for x in text.splitlines() if x.startswith(f"- {name}: "))
        assert b["commit"][:12] in line and b["qemu_version"] in line
        assert f"fix {b['fix']['state']} ({b['fix']['applied']}" in line
        assert b["image_id"][:19] in line and b["package_version"] in line
    assert "tcg" in text and "25.3 s" in text and "host: vm" in text
    for row in grid.render(run).splitlines()[1:]:
        assert "    " + row in text.splitlines()  # indented: preformatted in Markdown and mail
    assert max(len(x) for x in text.splitlines() if x.startswith("    ")) < 80


def test_no_deviation(make_result: MakeResult) -> None:
    run = RunResults("r", {}, [
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed",
                    destination_error=DEST_ERROR),
        make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed")], "")
    text = markdown.render(run)
    assert "Verdict: As expected (exit 0): all 2 cases came out as the model says." in \
        text.splitlines()
    assert judge(run.cases).fix_works
    assert "Cases that deviate from the model (0)" in text and "None." in text
    assert "Infrastructure errors" not in text and "Skipped" not in text


def test_many_skipped_are_grouped(make_result: MakeResult) -> None:
    cases = [make_result(f"pc-q35-{v}", "7.2-v1", "7.2-v2", "skipped", "skipped",
                         message="build 7.2-v1 failed: ninja exited 1")
             for v in ("5.0", "5.1", "5.2", "6.0", "6.1", "6.2", "7.0", "7.1", "7.2")] * 3
    cases = [make_result(c.machine, "7.2-v1", f"7.2-v{i}", "skipped", "skipped",
                         message=c.message) for i, c in enumerate(cases)]
    text = markdown.render(RunResults("r", {}, cases, ""))
    assert text.count("build 7.2-v1 failed: ninja exited 1") == 1
    assert f"- {len(cases)} skipped:" in text
    assert f"and {len(cases) - markdown.LIST_LIMIT} more" in text


def test_empty_run() -> None:
    text = markdown.render(RunResults("r", {}, [], "", partial=True))
    assert "Verdict: No verdict (exit 3): 0 cases, no case ran." in text
    assert "PARTIAL" in text and "(no cases)" in text
