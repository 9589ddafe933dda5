"""Issue 25 against real builds and migrations: `invoke check` judges a patch on a tree that
has the bug, by the bug's own error, and `git bisect run` reads its exit codes right.

- A patch that removes the PDS failure but makes the root port's migration fail at another
  offset (it also clears Slot Capabilities' Electromechanical Interlock Present bit, byte
  0x6a): the cases with it at the destination are `failed-other`, quoted, and check exits 1.
- `git bisect run patchcheck check --repo . --commit HEAD` over a history where a commit
  after the fix adds that second incompatibility names that commit.
- Upstream master (which carries the fix): a patch that changes nothing is not the fix
  (exit 1, no Tested-by); upstream's own fix 625b370c45 as an mbox is (exit 0, Tested-by).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git
import pytest

from patchcheck.tree import fixes

from .conftest import UPSTREAM_DATA, invoke
from .test_upstream import mirror_env, output, run_data

PCIE_C = "hw/pci/pcie.c"
PDS_ERROR = "Bad config data: i=0x6e read: 0 device: 40"
OTHER_ERROR = "Bad config data: i=0x6a read: 2 device: 0"
SLTCAP_SET_END = "                               PCI_EXP_SLTCAP_ABP);\n"
EIP_CLEARED = ("    /* A second incompatibility: EIP no longer set (byte 0x6a) */\n"
               "    pci_long_test_and_clear_mask(dev->config + pos + PCI_EXP_SLTCAP,\n"
               "                                 PCI_EXP_SLTCAP_EIP);\n")
UNPLUG_PDS = ("    pci_word_test_and_clear_mask(exp_cap + PCI_EXP_SLTSTA,\n"
              "                                 PCI_EXP_SLTSTA_PDS);\n")
UNPLUG_EIP = ("    pci_long_test_and_clear_mask(exp_cap + PCI_EXP_SLTCAP, PCI_EXP_SLTCAP_EIP);"
              "\n")
IDENTITY = {"GIT_AUTHOR_NAME": "Rev Iewer", "GIT_AUTHOR_EMAIL": "rev@example.invalid",
            "GIT_COMMITTER_NAME": "Rev Iewer", "GIT_COMMITTER_EMAIL": "rev@example.invalid"}


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          env=env, input=stdin).stdout.decode().strip()


def _commit_edit(repo: Path, old: str, new: str, subject: str) -> str:
    path = repo / PCIE_C
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))
    _git(repo, "commit", "-q", "-am", subject)
    return _git(repo, "rev-parse", "HEAD")


def _clone_with_v2(source: Path, dest: Path, commit: str = "") -> Path:
    """A clone with the shipped v2 applied (and committed with subject `commit`)."""
    git.Repo.clone_from(str(source), str(dest))
    v2 = fixes.known_fixes("pds").get("v2")
    assert v2 is not None
    _git(dest, "apply", "--index", "-", stdin=v2.text)
    if commit:
        _git(dest, "commit", "-q", "-m", commit)
    return dest


def _breaking_unplug(repo: Path) -> str:
    """A commit after the fix whose unplug (the guest powered the slot off) also clears EIP:
    such a root port migrates again on old machine types only with a destination that did
    the same, and a fresh one did not (byte 0x6a), whether or not it has the PDS fix."""
    return _commit_edit(repo, UNPLUG_PDS, UNPLUG_PDS + UNPLUG_EIP,
                        "pcie: clear Electromechanical Interlock Present on unplug")


def _noise(repo: Path, subject: str) -> str:
    (repo / "NOISE").write_text(subject + "\n")
    _git(repo, "add", "NOISE")
    _git(repo, "commit", "-q", "-m", subject)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def debian_72(tmp_path_factory: pytest.TempPathFactory, builds) -> Path:
    """A clone of Debian bookworm's QEMU 7.2 import (builds of it are the suite's)."""
    repo = tmp_path_factory.mktemp("deb72") / "qemu"
    git.Repo.clone_from(str(builds.source_repo("7.2-none")), str(repo))
    return repo


def test_a_patch_that_fails_at_another_offset_is_failed_other_and_exit_1(
        debian_72: Path, tmp_path: Path) -> None:
    maker = _clone_with_v2(debian_72, tmp_path / "maker")  # one patch: v2 and a breakage
    _commit_edit(maker, SLTCAP_SET_END, SLTCAP_SET_END + "\n" + EIP_CLEARED,
                 "pcie: fix PDS, but break Slot Capabilities")
    mbox = tmp_path / "fix-and-break.mbox"
    mbox.write_text(_git(maker, "format-patch", "-1", "--stdout") + "\n")
    reports = tmp_path / "reports"
    result = invoke("check", "--repo", str(debian_72), "--commit", "HEAD", "--patch", str(mbox),
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports)})
    assert result.returncode == 1, output(result)
    assert "Tested-by:" not in result.stdout.replace("No Tested-by", "")
    assert "fail with another error" in result.stdout, output(result)
    assert f'get_pci_config_device: {OTHER_ERROR}' in result.stdout
    data = run_data(reports)
    fixed = [c for c in data["cases"] if c["destination"]["build"] == "with"
             and c["source"]["build"] == "without"]
    assert fixed and {c["observed"] for c in fixed} == {"failed-other"}, fixed
    assert all(OTHER_ERROR in c["destination_error"] for c in fixed)
    # the bug itself still reproduces without the patch, with its own error
    reproducer = [c for c in data["cases"] if c["machine"] == "pc-q35-6.0"
                  and c["source"]["build"] == c["destination"]["build"] == "without"]
    assert [c["observed"] for c in reproducer] == ["failed"]
    assert PDS_ERROR in reproducer[0]["destination_error"]


def test_git_bisect_run_check_names_the_commit_that_breaks_migration_again(
        debian_72: Path, tmp_path: Path) -> None:
    """The command a user types: each step checks the commit git bisect checked out."""
    repo = _clone_with_v2(debian_72, tmp_path / "qemu",
                          "pcie: Add hotplug detect state register to cmask")
    good = _git(repo, "rev-parse", "HEAD")
    _noise(repo, "docs: a note")
    culprit = _breaking_unplug(repo)
    bad = _noise(repo, "docs: another note")
    _git(repo, "bisect", "start", bad, good)
    env = {**os.environ, "INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "reports")}
    run = subprocess.run(["git", "-C", str(repo), "bisect", "run", "patchcheck", "check",
                          "--repo", ".", "--commit", "HEAD"], capture_output=True, text=True,
                         env=env, timeout=3600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert f"{culprit} is the first bad commit" in run.stdout, run.stdout[-4000:]
    # each step built the commit it was run on: its id was printed before building
    steps = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("commit: ")]
    assert steps and set(steps) <= {_git(repo, "rev-parse", f"{bad}~2"), culprit}, steps
    _git(repo, "bisect", "reset")


# --- upstream master: the patch judged on the tree that has the bug ----------------------------

@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (UPSTREAM_DATA / "qemu.git").is_dir():
        pytest.skip(f"no upstream QEMU test data at {UPSTREAM_DATA}")
    path = tmp_path_factory.mktemp("upstream") / "qemu"
    git.Repo.clone_from(str(UPSTREAM_DATA / "qemu.git"), str(path))
    return path


def _check_master(clone: Path, mbox: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    return invoke("check", "--repo", str(clone), "--commit", "master", "--patch", str(mbox),
                  env={**mirror_env(), "INVOKE_PATCHCHECK_REPORTS_DIR": str(reports)})


def test_master_with_a_patch_that_changes_nothing_gets_no_tested_by(upstream: Path,
                                                                    tmp_path: Path) -> None:
    maker = tmp_path / "maker"
    git.Repo.clone_from(str(upstream), str(maker))
    readme = maker / "README.rst"
    readme.write_text(readme.read_text() + "\nA line that fixes nothing.\n")
    _git(maker, "commit", "-q", "-am", "README: a line")
    mbox = tmp_path / "noop.mbox"
    mbox.write_text(_git(maker, "format-patch", "-1", "--stdout") + "\n")
    result = _check_master(upstream, mbox, tmp_path / "reports")
    assert result.returncode == 1, output(result)
    assert "\nTested-by:" not in result.stdout
    assert "did not remove the failure" in result.stdout, output(result)
    assert "v2 (which it carries) reverted" in result.stdout
    data = run_data(tmp_path / "reports")
    assert data["builds"]["with"]["fix"]["state"] == f"none+{mbox}"
    assert "reverted" in data["builds"]["with"]["fix"]["note"]


def test_master_with_upstreams_own_fix_as_an_mbox_gets_a_tested_by(upstream: Path,
                                                                   tmp_path: Path) -> None:
    mbox = tmp_path / "625b370c45.mbox"
    mbox.write_text(_git(upstream, "format-patch", "-1", "--stdout", "625b370c45") + "\n")
    result = _check_master(upstream, mbox, tmp_path / "reports")
    assert result.returncode == 0, output(result)
    assert "\nTested-by: " in result.stdout
    data = run_data(tmp_path / "reports")
    assert data["builds"]["with"]["fix"]["applied"] == "clean"
    assert data["builds"]["without"]["fix"]["applied"] == "reverted"


def test_a_patch_that_does_not_apply_to_the_tree_with_the_bug_is_125(debian_72: Path,
                                                                      tmp_path: Path) -> None:
    v2 = fixes.known_fixes("pds").get("v2")
    assert v2 is not None
    stale = tmp_path / "stale.patch"
    stale.write_bytes(v2.text.replace(b"dev->exp.hpev_notified = false;",
                                      b"dev->exp.hpev_notified = 0;"))
    result = invoke("check", "--repo", str(debian_72), "--commit", "HEAD", "--patch", str(stale),
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "reports")})
    assert result.returncode == 125, output(result)
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("cannot test ")]
    assert f"patch {stale}: does not apply: hunk at hw/pci/pcie.c:" in line, line
    assert "Traceback" not in result.stderr


def test_uncommitted_changes_on_the_head_asked_for_are_refused(debian_72: Path,
                                                               tmp_path: Path) -> None:
    """They are in no commit: a verdict on HEAD would not be about what the user sees."""
    repo = tmp_path / "qemu"
    git.Repo.clone_from(str(debian_72), str(repo))
    (repo / PCIE_C).write_text((repo / PCIE_C).read_text() + "/* an edit */\n")
    result = invoke("check", "--repo", str(repo), "--commit", "HEAD",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "reports")})
    assert result.returncode == 2, output(result)
    assert "has uncommitted changes on its HEAD" in result.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
