"""Commits in sequence (issue 16), on a history of 16 commits made on top of Debian bookworm's
QEMU 7.2: unrelated C changes that build, one commit in the middle that does not build (the
next one repairs it), and one that applies v2. Builds across commits are incremental."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from patchcheck.bench import sequence as bench_sequence
from patchcheck.build.builder import Builder
from patchcheck.tree.prepared import PreparedTree

from .conftest import PROJECT, invoke

FIX_SUBJECT = bench_sequence.FIX_SUBJECT
BROKEN_AT, REPAIRED_AT, V2_AT, COUNT = (bench_sequence.BROKEN_AT, bench_sequence.REPAIRED_AT,
                                       bench_sequence.FIX_AT, bench_sequence.COUNT)
V2 = PROJECT / "patchcheck" / "scenarios" / "pds" / "patches" / "v2.patch"


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env, input=stdin).stdout.strip()


@dataclass
class History:
    repo: Path
    base: str
    commits: list[str]  # oldest first

    def at(self, position: int) -> str:
        return self.commits[position - 1]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, builds) -> History:
    """16 commits on Debian's 7.2 (patchcheck.bench.sequence.make_history): unrelated C
    changes, one that does not build (the next repairs it), and v2 at position 12."""
    repo = tmp_path_factory.mktemp("series") / "qemu"
    base, commits = bench_sequence.make_history(builds.source_repo("7.2-none"), repo, V2)
    assert len(commits) == COUNT
    return History(repo, base, commits)


def test_bisect_finds_the_v2_commit_in_at_most_5_steps(history: History, tmp_path: Path) -> None:
    result = invoke("bisect", "--repo", str(history.repo), "--good", history.base,
                    "--bad", history.at(COUNT), "--case", "6.0:SELF->SELF[synthetic]",
                    "--run-id", "bisect-test",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    out = result.stdout[-4000:] + result.stderr[-3000:]
    assert result.returncode == 0, out
    report = json.loads((tmp_path / "bisect-test" / "bisect.json").read_text())
    assert report["first"] == history.at(V2_AT), out
    assert report["subject"] == FIX_SUBJECT
    assert report["terms"] == {"old": "fails", "new": "passes"}
    steps = report["steps"]
    assert 1 <= len(steps) <= 5, out
    assert [s["commit"] for s in steps if s["outcome"] == "untestable"] == [history.at(BROKEN_AT)]
    # every step after the first builds incrementally from a nearby commit's build
    for step in steps[1:]:
        if step["outcome"] != "untestable":
            assert step["build"].startswith(("incremental", "cached")), step
            assert step["compiled"] <= 20, step
    assert f"{history.at(V2_AT)[:12]} {FIX_SUBJECT}" in result.stdout
    assert (tmp_path / "bisect-test" / "bisect.md").is_file()
    assert _git(history.repo, "status", "--porcelain") == ""  # the user's checkout untouched
    assert not (history.repo / ".git" / "BISECT_LOG").exists()


def test_series_names_the_v2_commit_and_the_untestable_one(history: History,
                                                          tmp_path: Path) -> None:
    result = invoke("series", "--repo", str(history.repo), "--range",
                    f"{history.base}..{history.at(COUNT)}", "--machines", "6.0,7.2",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    out = result.stdout[-5000:] + result.stderr[-3000:]
    assert result.returncode == 125, out  # one commit does not build; none deviates
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("series-")]
    data = json.loads((run_dir / "series.json").read_text())
    assert data["changes_at"] == history.at(V2_AT), out
    by_commit = {c["commit"]: c for c in data["commits"]}
    assert by_commit[history.at(BROKEN_AT)]["status"] == "untestable"
    assert [c["status"] for c in data["commits"]].count("as-expected") == COUNT - 1, out
    assert by_commit[history.at(V2_AT)]["fix"] == "v2"
    assert by_commit[history.at(V2_AT - 1)]["fix"] == "none"
    assert "the verdict changes at " + history.at(V2_AT)[:12] in result.stdout
    junit = (run_dir / "junit.xml").read_text()
    assert junit.count("<testsuite ") == COUNT


def test_incremental_across_commits_equals_a_build_from_scratch(history: History, pipeline,
                                                                settings, tmp_path: Path) -> None:
    """One commit built from the previous commit's build directory and from scratch: the same
    binary, byte for byte."""
    from patchcheck.engine import images
    from patchcheck.source.specs import GitSpec
    from patchcheck.tree import prepare as trees
    from patchcheck.tree.fixes import AS_IS

    def prepared(position: int) -> PreparedTree:
        tree = pipeline.git.resolve(GitSpec(str(history.repo), history.at(position)))
        return pipeline.complete(trees.prepare(tree, AS_IS, settings.cache_dir, pipeline.known),
                                 image_id)

    generation = images.generation_for((7, 2), settings.image_rules)
    image_id = pipeline.image(generation)
    image = f"{images.BUILDER_REPO}:{generation}"
    pipeline.builder.build("one", prepared(1), generation, image, image_id)
    two = prepared(2)
    incremental = pipeline.builder.build("two", two, generation, image, image_id)
    scratch_cache = tmp_path / "cache"
    (scratch_cache / "ccache").parent.mkdir(parents=True, exist_ok=True)
    (scratch_cache / "ccache").symlink_to(settings.cache_dir / "ccache")  # warm, not shared builds
    b = pipeline.builder
    fresh = Builder(b.runtime, scratch_cache, settings.configure, jobs=b.jobs, log=lambda s: None,
                    incremental=False, devices=b.devices,
                    minimal_configure=settings.minimal_configure,
                    minimal_optimize=settings.minimal_optimize,
                    minimal_pch=settings.minimal_pch)
    scratch = fresh.build("two-scratch", two, generation, image, image_id)
    assert incremental.base and not scratch.base
    assert incremental.compiled and len(incremental.compiled) <= 5
    assert incremental.binary_sha256 == scratch.binary_sha256


def test_an_interrupted_bisection_resumes(history: History, tmp_path: Path) -> None:
    """Interrupted (SIGINT to the whole process group, as a terminal's Ctrl-C) after its first
    step, the same command goes on from git's bisect state in patchcheck's worktree."""
    args = ["bisect", "--repo", str(history.repo), "--good", history.base,
            "--bad", history.at(COUNT), "--case", "6.0:SELF->SELF[synthetic]"]
    env = {**os.environ, "INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "invoke", *args, "--run-id", "first"],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("patchcheck: ") and "(build " in line:  # a step's verdict
            break
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode not in (0, None), "".join(seen) + rest
    interrupted = json.loads((tmp_path / "first" / "bisect.json").read_text())
    assert not interrupted["first"] and len(interrupted["steps"]) >= 1
    again = invoke(*args, "--run-id", "again", env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    out = again.stdout[-3000:] + again.stderr[-3000:]
    assert again.returncode == 0, out
    assert "resuming the bisection" in again.stderr, out
    report = json.loads((tmp_path / "again" / "bisect.json").read_text())
    assert report["first"] == history.at(V2_AT)
    assert [s["commit"] for s in report["steps"]][:1] == \
        [s["commit"] for s in interrupted["steps"]][:1]  # the earlier step is kept
