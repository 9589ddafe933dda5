"""Integration fixtures: the real Docker engine, real QEMU builds, the project's config.

Builds come from the test run's own cache (tests/conftest.py: test_cache, in
INVOKE_PATCHCHECK_CACHE_DIR for `settings` and every task a test starts): made once per run
and shared by its tests, never taken from the user's cache, unless PATCHCHECK_TEST_CACHE
names a cache to reuse on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from invoke.config import Config

from patchcheck.build.pipeline import Pipeline
from patchcheck.build.record import BuildRecord
from patchcheck.config import settings as config_mod
from patchcheck.config.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]


def _upstream_data() -> Path:
    """Real upstream QEMU commits and mirrors of their subprojects (test data beside the
    project: `../shared/qemu-upstream`). A clean clone elsewhere finds them beside the
    repository it was cloned from; PATCHCHECK_QEMU_UPSTREAM names them outright."""
    if os.environ.get("PATCHCHECK_QEMU_UPSTREAM"):
        return Path(os.environ["PATCHCHECK_QEMU_UPSTREAM"])
    candidates = [PROJECT.parent / "shared" / "qemu-upstream"]
    try:
        origin = git.Repo(PROJECT).remotes.origin.url
    except (AttributeError, ValueError, git.GitError):
        origin = ""
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "qemu-upstream")
    return next((c for c in candidates if (c / "qemu.git").is_dir()), candidates[0])


UPSTREAM_DATA = _upstream_data()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def project_config() -> Config:
    cfg = Config(project_location=str(PROJECT))
    cfg.load_project()
    cfg.load_shell_env()
    return cfg


@pytest.fixture(scope="session")
def settings() -> Settings:
    return config_mod.load(project_config())


@pytest.fixture(scope="session")
def runtime() -> Iterator[object]:
    from patchcheck.engine.docker import DockerRuntime

    rt = DockerRuntime("pytest-integration")
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def pipeline(runtime: object, settings: Settings) -> Pipeline:
    return Pipeline(runtime, settings, log=lambda line: None)


class Builds:
    """Configured builds, built on first use and shared by the whole session."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self._records: dict[str, BuildRecord] = {}

    def __getitem__(self, name: str) -> BuildRecord:
        if name not in self._records:
            self._records[name] = self.pipeline.build(self.settings.builds[name])
        return self._records[name]

    def source_repo(self, name: str) -> Path:
        """The git repository the Debian source of build `name` was imported into."""
        record = self[name]
        suite = self.settings.builds[name].source.removeprefix("debian:").partition("=")[0]
        imported = self.settings.cache_dir / "debian" / suite
        return next(p for p in imported.iterdir()
                    if (p / ".git").exists() and git.Repo(p).head.commit.hexsha == record.commit)


@pytest.fixture(scope="session")
def builds(pipeline: Pipeline, settings: Settings) -> Builds:
    return Builds(pipeline, settings)


def task_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a task a test starts: the test run's (its cache in
    INVOKE_PATCHCHECK_CACHE_DIR, see test_cache), plus `env`."""
    return {**os.environ, **(env or {})}


def invoke(*args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT,
           timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run the invoke CLI as a user would; return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True,
        env=task_env(env), timeout=timeout, check=False,
    )


class MatrixRun:
    """A finished `invoke matrix`: the process, its report directory and results.json."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        self.stdout = result.stdout
        reports = [ln for ln in result.stdout.splitlines() if ln.startswith("reports: ")]
        assert reports, result.stdout[-3000:] + result.stderr[-3000:]
        self.run_dir = Path(reports[-1].removeprefix("reports: "))
        self.data = json.loads((self.run_dir / "results.json").read_text())

    def unexpected(self) -> str:
        """The cases that did not come out as the model expects, each with its message:
        what a failing assertion should show (an `error` says why, e.g. a guest that did
        not get ready)."""
        lines = [f"{c['id']}: {c['observed']} (expected {c['expected']}): {c['message']}"
                 for c in self.data["cases"] if c["observed"] != c["expected"]]
        return "\n".join(lines) or "every case as expected"


@pytest.fixture(scope="session")
def default_matrix_run() -> MatrixRun:
    """`invoke matrix` on the project's default configuration, run once per session: the
    end-to-end test and the minimal-vs-full comparison both read it."""
    return MatrixRun(invoke("matrix", env={"CI": "true"}))
