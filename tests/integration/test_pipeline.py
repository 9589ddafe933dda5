"""Issue 6: the GitLab pipeline (ci/gitlab-ci.yml) run for real with gitlab-ci-local and the
shell executor: build stage, parallel matrix shards, merge stage with JUnit and history."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import git
import pytest

from .conftest import PROJECT

TOOL = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "patchcheck-tools" \
    / "node_modules" / ".bin" / "gitlab-ci-local"


def test_gitlab_pipeline_runs_with_gitlab_ci_local(builds, tmp_path):
    if not TOOL.exists():
        pytest.skip("gitlab-ci-local not installed (scripts/setup-host installs it)")
    assert shutil.which("rsync"), "gitlab-ci-local needs rsync (scripts/setup-host installs it)"
    source = builds.source_repo("7.2-none")
    remote = tmp_path / "qemu"
    branch = git.Repo.clone_from(str(source), str(remote)).active_branch.name
    project = tmp_path / "project"
    git.Repo.clone_from(str(PROJECT), str(project))
    result = subprocess.run(
        [str(TOOL), "--file", "ci/gitlab-ci.yml", "--shell-isolation",
         "--variable", "PATCHCHECK_LOCAL=1", "--variable", f"PATCHCHECK_REMOTE={remote}",
         "--variable", f"PATCHCHECK_ARGS=--ref {branch} --machines 6.0,7.2",
         "--variable", "PATCHCHECK_INSTALLED=1"],
        cwd=project, capture_output=True, text=True, timeout=1800, check=False,
        env={**os.environ, "CI": "true"})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for job in ("build", "matrix: [1/2]", "matrix: [2/2]", "merge"):
        assert f"PASS  {job}" in out, out[-4000:]
    reports = project / "reports"
    shard_cases = [len(json.loads((reports / f"shard-{k}" / "results.json").read_text())["cases"])
                   for k in (1, 2)]
    merged = json.loads((reports / "nightly" / "results.json").read_text())
    assert len(merged["cases"]) == sum(shard_cases) and all(shard_cases)
    assert (reports / "nightly" / "junit.xml").is_file()
    history = json.loads((reports / "history.json").read_text())
    assert history[-1]["run_id"] == "nightly"
    assert any(c["observed"] == "failed" for c in merged["cases"])  # the bug reproduced
