"""Issue 25 against real upstream QEMU commits: a ref means what it means in the reviewer's
own clone (HEAD after a branch switch is the new HEAD, not what patchcheck's mirror of the
clone had when it was made), and one cache shared by two clones of the same repository gives
each the verdict an empty cache would, without a traceback.

The checks are run as test_upstream.py runs them (the same options, the same cache), so
master's and v7.2.0's builds are shared with it: here they are cache hits, or built once.
Master needs Debian trixie's source import (it vendors a subproject revision master pins),
which the suite's 10.0 builds make: the module makes sure it is there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest

from patchcheck.build.pipeline import Pipeline

from .conftest import UPSTREAM_DATA, invoke
from .test_upstream import mirror_env, output, run_data

pytestmark = pytest.mark.skipif(not (UPSTREAM_DATA / "qemu.git").is_dir(),
                                reason=f"no upstream QEMU test data at {UPSTREAM_DATA}")


def check(clone: Path, commit: str, reports: Path) -> subprocess.CompletedProcess[str]:
    return invoke("check", "--repo", str(clone), "--commit", commit,
                  env={**mirror_env(), "INVOKE_PATCHCHECK_REPORTS_DIR": str(reports)})


def outcomes(data: dict) -> dict[tuple[str, str, str], str]:
    return {(c["machine"], c["source"]["build"], c["destination"]["build"]): c["observed"]
            for c in data["cases"]}


def commit_of(clone: Path, ref: str) -> str:
    return str(git.Repo(clone).git.rev_parse("--verify", f"{ref}^{{commit}}"))


class MasterChecks:
    """Two clones of upstream QEMU at two paths, each checked at master (the first as its
    HEAD, on master), one after the other in one cache."""

    refs = ("HEAD", "master")

    def __init__(self, root: Path) -> None:
        self.clones = [root / "first" / "qemu", root / "second" / "qemu"]
        self.results: list[subprocess.CompletedProcess[str]] = []
        self.reports = [root / "reports-first", root / "reports-second"]
        for clone, reports, ref in zip(self.clones, self.reports, self.refs, strict=True):
            git.Repo.clone_from(str(UPSTREAM_DATA / "qemu.git"), str(clone))
            reports.mkdir()
            self.results.append(check(clone, ref, reports))


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory, pipeline: Pipeline) -> MasterChecks:
    # master pins a berkeley-testfloat-3 that no mirror here has and Debian trixie's QEMU
    # 10.0 source vendors: its import (made by the suite's 10.0 builds, or now) provides it
    pipeline.resolve("debian:trixie")
    return MasterChecks(tmp_path_factory.mktemp("refs"))


def test_two_clones_in_one_cache_get_the_same_verdict(master: MasterChecks) -> None:
    first, second = master.results
    for result in master.results:
        assert "Traceback" not in result.stderr, output(result)
        assert result.returncode in (0, 1), output(result)  # a verdict, not an error
    assert second.returncode == first.returncode, output(first) + output(second)
    sha = commit_of(master.clones[0], "master")
    assert commit_of(master.clones[1], "master") == sha
    runs = [run_data(reports) for reports in master.reports]
    for result, data, ref in zip(master.results, runs, master.refs, strict=True):
        assert f"commit: {sha} ({ref}" in result.stdout, output(result)
        assert {data["builds"][b]["commit"] for b in ("without", "with")} == {sha}
    assert outcomes(runs[0]) == outcomes(runs[1]) and outcomes(runs[0])
    assert ("\nTested-by: " in first.stdout) == ("\nTested-by: " in second.stdout)


def test_head_after_a_branch_switch_is_the_new_head(master: MasterChecks,
                                                    tmp_path: Path) -> None:
    """The first clone was checked on master (patchcheck's mirror of it has master as its
    HEAD); after `git checkout -b review v7.2.0` its HEAD is v7.2.0, and that is built."""
    clone = master.clones[0]
    git.Repo(clone).git.checkout("-q", "-b", "review", "v7.2.0")
    v720 = commit_of(clone, "v7.2.0")
    assert commit_of(clone, "HEAD") == v720 != commit_of(clone, "master")
    result = check(clone, "HEAD", tmp_path)
    assert "Traceback" not in result.stderr, output(result)
    assert f"commit: {v720} (HEAD" in result.stdout, output(result)
    data = run_data(tmp_path)
    for build in ("without", "with"):
        assert data["builds"][build]["commit"] == v720, output(result)
        assert data["builds"][build]["qemu_version"] == "7.2.0"
    assert result.returncode in (0, 1), output(result)  # a verdict (test_upstream: which)
