"""Shared fixtures: the test run's own cache, and a tiny fake QEMU tree in git, with and
without the v2 fix.

Everything here is local: no network, no Docker, no QEMU. Git runs with a fixed identity
and a private HOME, so no user git configuration is needed or read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from patchcheck.config.settings import default_cache_dir
from patchcheck.result.model import CaseResult, Side
from patchcheck.result.outcome import Observed
from patchcheck.source.specs import Tree
from patchcheck.tree import fixes

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE_QEMU = FIXTURES / "fake-qemu"
PCIE_C = "hw/pci/pcie.c"
V2_LINE = "pci_word_test_and_clear_mask(dev->cmask + pos + PCI_EXP_SLTSTA,"

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.invalid",
}

Git = Callable[..., str]

TEST_CACHE = "PATCHCHECK_TEST_CACHE"  # a cache to reuse on purpose (builds of earlier runs)
CACHE_VARIABLE = "INVOKE_PATCHCHECK_CACHE_DIR"  # how the tasks and project_config() find it
# The user's own cache, as it was before the session's choice: no test may use it.
USER_CACHES = frozenset(
    Path(p).expanduser().absolute() for p in
    (default_cache_dir(), Path.home() / ".cache" / "patchcheck", os.environ.get(CACHE_VARIABLE))
    if p)


@pytest.fixture(scope="session", autouse=True)
def test_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one cache of this test run, in INVOKE_PATCHCHECK_CACHE_DIR for every task and
    subprocess a test starts: a fresh directory, shared by the tests of the run (builds are
    made once per run) and removed at its end; or the one PATCHCHECK_TEST_CACHE names, kept.
    Never the user's cache (~/.cache/patchcheck): a build an older patchcheck cached there
    once hid a failing test."""
    given = os.environ.get(TEST_CACHE, "")
    cache = Path(given).expanduser().absolute() if given else tmp_path_factory.mktemp("cache")
    cache.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_VARIABLE, str(cache))
        yield cache
    if not given:
        # containers write as the invoking user (runtime.invoking_user), so this removes all;
        # what it cannot remove, pytest prunes with its other temporary directories
        shutil.rmtree(cache, ignore_errors=True)


def shipped(name: str) -> fixes.Patch:
    """The default scenario's known fix of that name."""
    patch = fixes.known_fixes().get(name)
    assert patch is not None, f"no known fix named {name}"
    return patch


@pytest.fixture
def isolated_env(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private HOME (no ~/.gitconfig, e.g. commit.gpgsign) and no system git config;
    the identity is set only for the tests' own git calls. Used by the unit tests
    (`pytestmark`); not autouse, so integration tests keep the real HOME (its engine
    settings); their cache is the run's own all the same (test_cache)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", *IDENTITY):
        monkeypatch.delenv(key, raising=False)  # patchcheck must bring its own identity
    yield


def run_git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    """Run git with an argument list; fail the test with git's stderr if it fails."""
    proc = subprocess.run(["git", "-C", str(cwd), *args], input=stdin, capture_output=True,
                          check=False, env={**os.environ, **IDENTITY})
    if proc.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip()


@pytest.fixture
def git(isolated_env: None) -> Git:
    """git(cwd, *args, stdin=None) -> stdout, failing the test when git fails."""
    return run_git


def make_repo(src: Path, dest: Path, message: str = "import fake QEMU") -> str:
    """Copy `src` to `dest`, make it a git repository with one commit; return the commit."""
    shutil.copytree(src, dest)
    run_git(dest, "init", "-q", "-b", "main")
    run_git(dest, "add", "-A")
    run_git(dest, "commit", "-q", "-m", message)
    return run_git(dest, "rev-parse", "HEAD")


@pytest.fixture
def fake_tree(isolated_env: None, tmp_path: Path) -> Tree:
    """QEMU 7.2 without any fix: a non-bare repository (its work tree is the tree)."""
    repo = tmp_path / "qemu-7.2"
    commit = make_repo(FAKE_QEMU, repo)
    return Tree("git:fake-qemu@main", repo, commit, "7.2.0")


@pytest.fixture
def fake_tree_with_v2(isolated_env: None, tmp_path: Path) -> Tree:
    """Like QEMU 10.0: the fake tree with the shipped v2 fix already merged."""
    repo = tmp_path / "qemu-10.0"
    make_repo(FAKE_QEMU, repo)
    run_git(repo, "apply", "--index", stdin=shipped("v2").text)
    (repo / "VERSION").write_text("10.0.0\n")
    run_git(repo, "add", "VERSION")
    run_git(repo, "commit", "-q", "-m", "pcie: Add hotplug detect state register to cmask")
    assert V2_LINE in (repo / PCIE_C).read_text()
    return Tree("git:fake-qemu@v10", repo, run_git(repo, "rev-parse", "HEAD"), "10.0.0")


@pytest.fixture
def make_result() -> Callable[..., CaseResult]:
    """make_result(machine, src, dst, observed, expected, **fields) -> a CaseResult.

    Build names say the fix: "7.2-none", "7.2-v1", "7.2-v2" (has_fix unless "none")."""

    def side(build: str) -> Side:
        version, _, fix = build.partition("-")
        return Side(build=build, qemu_version=f"{version}.0", fix=fix or "none",
                    fix_applied="unchanged" if fix in ("", "none") else "clean",
                    has_fix=fix not in ("", "none"), binary=f"/cache/builds/{build}/qemu")

    def make(machine: str, src: str, dst: str, observed: str, expected: str,
             guest: str = "synthetic", globals: Sequence[str] = (),
             **fields: object) -> CaseResult:
        return CaseResult(machine=machine, guest=guest, globals=list(globals),
                          source=side(src), destination=side(dst), observed=Observed(observed),
                          expected=Observed(expected), **fields)  # type: ignore[arg-type]

    return make
