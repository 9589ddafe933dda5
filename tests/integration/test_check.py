"""Issue 6: `invoke check` on a local QEMU repository, with git bisect's exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import invoke


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def qemu_repo(tmp_path_factory, builds):
    """A local git repository made from Debian bookworm's QEMU 7.2 source import."""
    import git

    source = builds.source_repo("7.2-none")
    repo = tmp_path_factory.mktemp("qemu") / "qemu"
    git.Repo.clone_from(str(source), str(repo))
    return repo


def test_the_fix_works_exit_0(qemu_repo, tmp_path):
    result = invoke("check", "--repo", str(qemu_repo), "--commit", "HEAD",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Tested-by:" in result.stdout
    assert "Bad config data: i=0x6e" in result.stdout
    # v2 changes no guest-visible register behaviour: nothing for the reviewer to object to
    assert "No Tested-by" not in result.stdout and "PDS" not in result.stdout


def test_a_patch_that_fixes_nothing_exit_1(qemu_repo, tmp_path):
    patch = tmp_path / "comment-only.patch"
    patch.write_text(
        "diff --git a/hw/pci/pcie.c b/hw/pci/pcie.c\n--- a/hw/pci/pcie.c\n+++ b/hw/pci/pcie.c\n"
        "@@ -657,2 +657,3 @@ void pcie_cap_slot_init(PCIDevice *dev, PCIESlot *s)\n"
        "     dev->exp.hpev_notified = false;\n"
        "+    /* A comment that changes nothing. */\n"
        " \n")
    result = invoke("check", "--repo", str(qemu_repo), "--commit", "HEAD", "--patch", str(patch),
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Tested-by:" not in result.stdout


def test_a_commit_that_does_not_build_exit_125_even_off_branch(qemu_repo, tmp_path):
    branch = _git(qemu_repo, "rev-parse", "--abbrev-ref", "HEAD")
    _git(qemu_repo, "checkout", "-q", "--detach")
    pcie = qemu_repo / "hw" / "pci" / "pcie.c"
    pcie.write_text(pcie.read_text() + "\n#error this commit does not build\n")
    _git(qemu_repo, "commit", "-q", "-am", "break the build")
    broken = _git(qemu_repo, "rev-parse", "HEAD")
    _git(qemu_repo, "checkout", "-q", branch)  # the broken commit is on no branch now
    assert _git(qemu_repo, "branch", "--contains", broken) == ""
    result = invoke("check", "--repo", str(qemu_repo), "--commit", broken,
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    assert result.returncode == 125, result.stdout[-2000:] + result.stderr[-2000:]
    assert "cannot test" in result.stdout


def test_bad_check_input_exit_2(tmp_path):
    result = invoke("check", "--repo", str(tmp_path / "nope"), "--commit", "HEAD")
    assert result.returncode == 2 and "is not a directory" in result.stderr
