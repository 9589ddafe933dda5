"""Commits in sequence without an engine: the case syntax, ranges, the bisect predicate's
exit codes, a series' verdict change and exit code, and the choice of an incremental base."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from patchcheck.build import incremental
from patchcheck.errors import UsageError
from patchcheck.sequence import bisect_step, casespec, series
from patchcheck.sequence.step import Step
from patchcheck.source import commits
from patchcheck.tree import fixes
from patchcheck.verdict import sequence as verdict_sequence

# --- the case syntax ---------------------------------------------------------------------


def test_a_case_parses_and_names_self() -> None:
    spec = casespec.parse("pc-q35-6.0:7.2-v2->SELF[synthetic]", ["7.2-v2", "7.2-none"],
                          ["synthetic", "none"])
    assert (spec.machine, spec.source, spec.destination, spec.guest) == \
        ("pc-q35-6.0", "7.2-v2", casespec.SELF, "synthetic")
    assert spec.others == ["7.2-v2"] and str(spec) == "pc-q35-6.0:7.2-v2->SELF[synthetic]"
    case = spec.case("commit-1")
    assert (case.source, case.destination, case.machine) == ("7.2-v2", "commit-1", "pc-q35-6.0")
    short = casespec.parse("6.0:SELF->SELF[none]")
    assert short.machine == "pc-q35-6.0" and short.others == []


@pytest.mark.parametrize(("text", "message"), [
    ("6.0:SELF->SELF", "expected MACHINE:SOURCE->DESTINATION[GUEST]"),
    ("SELF->SELF[synthetic]", "expected MACHINE:SOURCE->DESTINATION[GUEST]"),
    ("6.0:SELF-SELF[synthetic]", "expected MACHINE"),
    ("foo:SELF->SELF[synthetic]", "'foo' is not a pc-q35 machine type"),
    ("6.0:7.2-v2->7.2-none[synthetic]", "one side must be SELF"),
    ("6.0:nope->SELF[synthetic]", "no build named 'nope'"),
    ("6.0:SELF->SELF[dance]", "unknown guest action 'dance'"),
])
def test_a_bad_case_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        casespec.parse(text, ["7.2-v2", "7.2-none"], ["synthetic", "none"])
    assert "\n" not in str(info.value) and f"--case '{text}'" in str(info.value)


# --- ranges and ends ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ends"), [("v7.2.0..HEAD", ("v7.2.0", "HEAD")),
                                            (" a .. b ", ("a", "b"))])
def test_ranges(text: str, ends: tuple[str, str]) -> None:
    assert commits.parse_range(text) == ends


@pytest.mark.parametrize("text", ["HEAD", "a..", "..b", "a...b", ""])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(UsageError, match="expected BASE..TIP"):
        commits.parse_range(text)


def _repo(tmp_path: Path, n: int = 3) -> tuple[Path, list[str]]:
    repo = tmp_path / "r"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shas = []
    for i in range(n):
        (repo / "VERSION").write_text(f"7.2.{i}\n")
        subprocess.run(["git", "-C", str(repo), "add", "VERSION"], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", f"c{i}"], check=True,
                       env=env)
        shas.append(subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                                   capture_output=True, text=True).stdout.strip())
    return repo, shas


def test_history_ranges_ends_and_uncommitted_changes(tmp_path: Path) -> None:
    from patchcheck.source.specs import GitSources

    repo, shas = _repo(tmp_path)
    history = commits.History(GitSources(tmp_path / "cache"), str(repo))
    assert [c.sha for c in history.between(shas[0], shas[2])] == shas[1:]
    assert [c.subject for c in history.between(shas[0], shas[2])] == ["c1", "c2"]
    with pytest.raises(UsageError, match="has no commits"):
        history.between(shas[2], shas[0])
    assert [t.commit for t in history.ordered(shas[0], shas[2])] == [shas[0], shas[2]]
    with pytest.raises(UsageError, match="newer than --bad .*swapped"):
        history.ordered(shas[2], shas[0])
    with pytest.raises(UsageError, match="the same commit"):
        history.ordered(shas[1], shas[1])
    commits.check_clean(str(repo), ("HEAD",))  # clean: fine
    (repo / "VERSION").write_text("dirty\n")
    commits.check_clean(str(repo), (shas[0],))  # HEAD not asked for: its changes do not matter
    with pytest.raises(UsageError, match="uncommitted changes"):
        commits.check_clean(str(repo), (shas[0], "HEAD"))


# --- the predicate -----------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "code"), [("failed", 0), ("passed", 1),
                                               ("untestable", 125), ("error", 255),
                                               # neither outcome: git bisect skips the commit
                                               ("failed-other", 125), ("flaky", 125)])
def test_the_predicate_answers_with_git_bisects_exit_codes(
        outcome: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = _repo(tmp_path, 1)
    predicate = tmp_path / "predicate.json"
    steps = tmp_path / "steps.jsonl"
    predicate.write_text(json.dumps({
        "config": {"cache_dir": str(tmp_path / "cache"), "reports_dir": str(tmp_path)},
        "repo": str(repo), "case": "6.0:SELF->SELF[synthetic]", "steps": str(steps),
        "terms": {"old": "fails", "new": "passes"}, "run_id": "t", "outdir": str(tmp_path)}))

    class NoEngine:
        def __enter__(self) -> object:
            return object()

        def __exit__(self, *exc: object) -> None:
            return None

    def evaluate(settings: Any, runtime: Any, repo_: str, commit: str, subject: str,
                 case: Any, outdir: Path, log: Any) -> Step:
        assert commit == shas[0] and subject == "c0" and str(case) == "pc-q35-6.0:SELF->SELF[synthetic]"
        return Step(commit, subject, outcome=outcome)

    monkeypatch.setattr(bisect_step, "container_runtime", lambda settings, run_id: NoEngine())
    monkeypatch.setattr(bisect_step, "evaluate", evaluate)
    monkeypatch.chdir(repo)
    assert bisect_step.main(["x", str(predicate)]) == code
    logged = [json.loads(line) for line in steps.read_text().splitlines()]
    assert [s["outcome"] for s in logged] == [outcome]
    assert bisect_step.main(["x", str(predicate), "--ready"]) == 0
    assert bisect_step.main(["x", str(tmp_path / "missing.json")]) == 255  # never a verdict


# --- series ------------------------------------------------------------------------------


def _verdict(index: int, status: str, signature: list[str]) -> series.CommitVerdict:
    return series.CommitVerdict(index, f"{index:02d}" * 20, f"c{index}", status=status,
                                signature=signature)


def test_the_series_names_the_first_change_and_decides_its_exit_code() -> None:
    fails, passes = ["a=failed"], ["a=passed"]
    run = series.SeriesResult("s", "r", "b", "t", "pds", [
        _verdict(1, "as-expected", fails), _verdict(2, "untestable", []),
        _verdict(3, "as-expected", fails), _verdict(4, "as-expected", passes),
        _verdict(5, "as-expected", passes)])
    run.changes_at = series.changes_at(run.commits)
    assert run.changes_at == "04" * 20
    assert run.exit_code() == 125
    text = series.table(run)
    assert "the verdict changes at 040404040404 c4" in text
    assert "untestable (does not build): 020202020202 c2" in text
    run.commits[2].status = "deviates"
    assert run.exit_code() == 1
    clean = series.SeriesResult("s", "r", "b", "t", "pds", [_verdict(1, "as-expected", fails)])
    assert clean.exit_code() == 0 and series.changes_at(clean.commits) == ""


def test_a_failure_with_another_error_is_another_behaviour_of_the_series(
        make_result: Any) -> None:
    """Outcomes, not pass/fail: the same cases failing with another error is a change."""
    bug = [make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed")]
    other = [make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed-other", "failed")]
    assert verdict_sequence.behaviour(bug) == "fails 1 of 1"
    assert verdict_sequence.behaviour(other) == "fails 1 of 1 (1 with another error)"
    a = _verdict(1, "as-expected", sorted(f"{c.case.id}={c.observed.value}" for c in bug))
    b = _verdict(2, "deviates", sorted(f"{c.case.id}={c.observed.value}" for c in other))
    assert series.changes_at([a, b]) == b.commit


# --- the incremental base ----------------------------------------------------------------


def test_the_nearest_build_of_the_lineage_is_the_base(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tree: Any = type("T", (), {"tree_id": "t-now", "fix": fixes.FixResult("as-is", None,
                                                                          "unchanged", False)})()
    files = {"t-far": 40, "t-near": 2, "t-other-fix": 2}
    monkeypatch.setattr(incremental, "distance", lambda t, tree_id: files.get(tree_id))

    def rec(key: str, tree_id: str, lineage: str = "L", family: str = "f", state: str = "as-is",
            has_fix: bool = False) -> dict[str, Any]:
        return {"key": key, "tree_id": tree_id, "lineage": lineage, "family": family,
                "fix": {"state": state, "has_fix": has_fix}}

    records = [rec("far", "t-far"), rec("near", "t-near"), rec("fixed", "t-other-fix",
                                                               state="v2", has_fix=True),
               rec("alien", "t-unknown"), rec("other-lineage", "t-near", lineage="M")]
    chosen = incremental.choose_base(records, "g", "L", tree)
    assert chosen is not None and chosen["key"] == "near"  # fewest files, same fix state
    same_commit = [*records, rec("mine", "t-mine", family="g", has_fix=True),
                   rec("mine-nofix", "t-mine2", family="g")]
    chosen = incremental.choose_base(same_commit, "g", "L", tree)
    assert chosen is not None and chosen["key"] == "mine-nofix"  # a fix build's base first
    assert incremental.choose_base([rec("x", "t-unknown")], "g", "L", tree) is None


@pytest.mark.parametrize(("changed", "touched"), [
    (["hw/usb/hcd-xhci.c", "include/hw/pci/pcie.h"], []),
    (["hw/usb/meson.build", "hw/usb/hcd-xhci.c"], ["hw/usb/meson.build"]),
    (["configure"], ["configure"]), (["hw/usb/Kconfig"], ["hw/usb/Kconfig"]),
    (["configs/devices/x86_64-softmmu/default.mak"], ["configs/devices/x86_64-softmmu/default.mak"]),
    (["subprojects/keycodemapdb"], ["subprojects/keycodemapdb"]),
    (["ui/keycodemapdb"], ["ui/keycodemapdb"]),  # a submodule's gitlink
])
def test_build_system_changes_build_afresh(changed: list[str], touched: list[str]) -> None:
    assert incremental.build_system_changes(changed, ["ui/keycodemapdb"]) == touched


def test_the_plan_across_commits_may_compile_anything_but_must_compile_the_changes() -> None:
    plan = "[1/2] Compiling C object libcommon.fa.p/hw_usb_hcd-xhci.c.o\n"
    assert incremental.check_incremental_plan(plan, ["hw/usb/hcd-xhci.c"], fix=False) == \
        ["libcommon.fa.p/hw_usb_hcd-xhci.c.o"]
    assert incremental.check_incremental_plan("", ["docs/about.rst"], fix=False) == []
    with pytest.raises(incremental.IncrementalUnsafe, match="no C file"):
        incremental.check_incremental_plan("", ["docs/about.rst"])
    with pytest.raises(incremental.IncrementalUnsafe, match="would not recompile hw/pci/pci.c"):
        incremental.check_incremental_plan(plan, ["hw/pci/pci.c"], fix=False)
