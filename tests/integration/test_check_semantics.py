"""Issue 14: `invoke check` withholds the Tested-by from a fix that makes migration pass but
breaks the register semantics (v1), and gives it to upstream's commit as a `git format-patch`
mbox (v2, the default fix, is tests/integration/test_check.py::test_the_fix_works_exit_0)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import PROJECT, UPSTREAM_DATA, invoke

UPSTREAM = UPSTREAM_DATA / "qemu.git"
PDS_LINE = ("- Slot Status bit 6 (PDS): read-only (RO=1) without the fix, write-1-to-clear "
            "(RW1C=1) with it; specified read-only (RO) in PCI Express Base Specification 4.0, "
            "7.5.3.11 Slot Status Register")


@pytest.fixture(scope="module")
def qemu_repo(tmp_path_factory, builds):
    """A local git repository made from Debian bookworm's QEMU 7.2 source import."""
    import git

    repo = tmp_path_factory.mktemp("qemu") / "qemu"
    git.Repo.clone_from(str(builds.source_repo("7.2-none")), str(repo))
    return repo


def check(repo: Path, patch: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    return invoke("check", "--repo", str(repo), "--commit", "HEAD", "--patch", str(patch),
                  env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports)})


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-4000:] + result.stderr[-2000:]


def test_v1_migrates_but_breaks_pds_no_tested_by_exit_1(qemu_repo, tmp_path):
    result = check(qemu_repo, PROJECT / "patchcheck" / "scenarios" / "pds" / "patches" / "v1.patch", tmp_path)
    assert result.returncode == 1, output(result)
    paragraph = result.stdout.partition("\nTested HEAD")[2]  # what the reviewer pastes
    assert "With the fix at the destination every case passes (" in paragraph, output(result)
    assert PDS_LINE in paragraph, output(result)
    assert "No Tested-by." in paragraph
    assert "Tested-by:" not in result.stdout


def test_upstream_commit_as_mbox_tested_by_exit_0(qemu_repo, tmp_path):
    if not UPSTREAM.is_dir():
        pytest.skip(f"no upstream QEMU repository at {UPSTREAM}")
    mbox = tmp_path / "pcie-pds-fix.mbox"
    mbox.write_bytes(subprocess.run(
        ["git", "-C", str(UPSTREAM), "format-patch", "-1", "--stdout", "pcie-pds-fix"],
        check=True, capture_output=True).stdout)
    assert mbox.read_bytes().startswith(b"From 625b370c45"), mbox.read_bytes()[:200]
    result = check(qemu_repo, mbox, tmp_path / "reports")
    assert result.returncode == 0, output(result)
    assert "Bad config data: i=0x6e" in result.stdout  # reproduced without the fix
    assert "Tested-by:" in result.stdout
    assert "No Tested-by" not in result.stdout and "PDS" not in result.stdout
