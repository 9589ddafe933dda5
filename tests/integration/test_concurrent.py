"""Issue 27: several runs at once on one machine and one cache: three `invoke check` of
different commits and a matrix, started together. Each must decide as it does alone, none
may wait on another for ever, and the cache must hold each build once."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import PROJECT, task_env

MATRIX = ["matrix", "--builds", "7.2-none,7.2-v2", "--machines", "6.0..7.2", "--jobs", "2"]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost", "PATH": "/usr/bin:/bin"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=GIT_ENV).stdout.strip()


@pytest.fixture(scope="module")
def commits(tmp_path_factory, builds) -> tuple[Path, dict[str, str]]:
    """A clone of the session's QEMU 7.2 tree with three commits to check: the tree as it is
    (the fix works), one that changes only a comment of the build's sources (a new build of
    another commit), and one that does not compile."""
    import git

    repo = tmp_path_factory.mktemp("qemu") / "qemu"
    git.Repo.clone_from(str(builds.source_repo("7.2-none")), str(repo))
    head = _git(repo, "rev-parse", "HEAD")
    pcie = repo / "hw" / "pci" / "pcie.c"
    original = pcie.read_text()
    token = uuid.uuid4().hex[:8]  # a commit no cache has seen: its builds are made here
    pcie.write_text(original + f"\n/* a comment of another commit ({token}) */\n")
    _git(repo, "commit", "-q", "-am", "a comment")
    comment = _git(repo, "rev-parse", "HEAD")
    pcie.write_text(original + f"\n#error this commit does not build ({token})\n")
    _git(repo, "commit", "-q", "-am", "break the build")
    broken = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", head)
    return repo, {"head": head, "comment": comment, "broken": broken}


def _start(args: list[str], reports: Path) -> subprocess.Popen[str]:
    env = task_env({"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports), "CI": "true"})
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _decided(reports: Path) -> dict[str, str]:
    """What a run decided, case by case: each case's observed outcome, by case id."""
    found: dict[str, str] = {}
    for data in _results(reports):
        for case in data["cases"]:
            found[case["id"]] = case["observed"]
    return found


def _runs(repo: Path, commits: dict[str, str]) -> dict[str, list[str]]:
    check = ["check", "--repo", str(repo), "--commit"]
    return {"check-head": [*check, commits["head"]],
            "check-comment": [*check, commits["comment"]],
            "check-broken": [*check, commits["broken"]],
            "matrix": MATRIX}


def _results(reports: Path) -> list[dict]:
    """The results.json of each run under `reports` (once each: `latest` links to one)."""
    paths = {p.resolve() for p in reports.glob("**/results.json")}
    return [json.loads(p.read_text()) for p in sorted(paths)]


def _named(reports: Path) -> set[str]:
    """The keys of the builds a run used (made, or found in the cache)."""
    return {b["key"] for data in _results(reports) for b in data.get("builds", {}).values()
            if isinstance(b, dict) and b.get("key")}


def _entries(cache: Path) -> dict[str, str]:
    """The cache's build entries: key -> what they are a build of (tree, options, image)."""
    found = {}
    for record in (cache / "builds").glob("*/build.json"):
        data = json.loads(record.read_text())
        found[record.parent.name] = json.dumps([data.get(k) for k in (
            "tree_id", "configure", "image_id", "devices", "optimize", "pch")]
            + [data.get("trusted", True)])
    return found


def test_three_checks_and_a_matrix_at_once_decide_as_alone(commits, settings, tmp_path):
    repo, revs = commits
    runs = _runs(repo, revs)
    before = set((settings.cache_dir / "builds").glob(".*.tmp"))  # another run's, if any
    entries = _entries(settings.cache_dir)
    together = {name: _start(args, tmp_path / "together" / name) for name, args in runs.items()}
    ended = {name: proc.communicate(timeout=1800) for name, proc in together.items()}
    codes = {name: proc.returncode for name, proc in together.items()}
    for name, (_, err) in ended.items():
        assert "Traceback" not in err and "unexpected error" not in err, (name, err[-1500:])
    assert codes["check-head"] == 0 and codes["check-broken"] == 125, \
        {n: ended[n][1][-800:] for n in codes}
    assert set((settings.cache_dir / "builds").glob(".*.tmp")) <= before  # nothing half-built
    after = _entries(settings.cache_dir)
    new = {key: what for key, what in after.items() if key not in entries}
    assert new  # the new commit's builds were made while the other runs ran
    assert set(new) <= set().union(*(_named(tmp_path / "together" / n) for n in runs))
    assert len(set(new.values())) == len(new)  # each build once, however many runs wanted it
    for name, args in runs.items():  # and each alone, one after another
        alone = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT,
                               env=task_env({"INVOKE_PATCHCHECK_REPORTS_DIR":
                                             str(tmp_path / "alone" / name), "CI": "true"}),
                               capture_output=True, text=True, timeout=1800)
        assert alone.returncode == codes[name], (name, alone.stderr[-1500:])
        decided = _decided(tmp_path / "alone" / name)
        assert decided == _decided(tmp_path / "together" / name), name
        if name == "check-broken":
            assert "cannot test" in alone.stdout and "cannot test" in ended[name][0]
        else:
            assert decided, name  # cases ran and were decided
        verdict = [ln for ln in alone.stdout.splitlines() if ln.startswith("Tested-by:")]
        assert verdict == [ln for ln in ended[name][0].splitlines()
                           if ln.startswith("Tested-by:")], name
