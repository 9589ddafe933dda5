"""Issue 6: the nightly job keeps a history and reports a case that flipped."""

from __future__ import annotations

import json

import git

from .conftest import invoke

# A different fix patchcheck does not know: PDS made writable. With it in the tree, the
# "none" build still carries a fix, so none->none on pc-q35-6.0 flips from failed to passed.
ANCHOR = """    pci_word_test_and_set_mask(dev->wmask + pos + PCI_EXP_SLTCTL,
                               PCI_EXP_SLTCTL_EIC);
"""
UNKNOWN_FIX = """    pci_word_test_and_set_mask(dev->wmask + pos + PCI_EXP_SLTSTA,
                               PCI_EXP_SLTSTA_PDS);
"""


def test_nightly_history_and_flips(builds, tmp_path):
    source = builds.source_repo("7.2-none")
    remote = tmp_path / "qemu"
    repo = git.Repo.clone_from(str(source), str(remote))
    branch = repo.active_branch.name
    env = {"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "reports")}
    args = ["nightly", "--remote", str(remote), "--ref", branch, "--machines", "6.0"]
    first = invoke(*args, "--run-id", "night-1", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "first run" in first.stderr

    second = invoke(*args, "--run-id", "night-2", env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "no change" in second.stderr
    assert "cached" in second.stderr and "built:" not in second.stderr  # nothing rebuilt

    pcie = remote / "hw" / "pci" / "pcie.c"
    text = pcie.read_text()
    assert text.count(ANCHOR) == 1
    pcie.write_text(text.replace(ANCHOR, ANCHOR + UNKNOWN_FIX))
    with repo.git.custom_environment(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
                                     GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost"):
        repo.git.commit("-qam", "pcie: make PDS writable (another fix)")
    third = invoke(*args, "--run-id", "night-3", env=env)
    assert third.returncode == 1, third.stderr[-2000:]  # the model now deviates
    flipped = f"flipped pc-q35-6.0:{branch}-none->{branch}-none[synthetic]: failed -> passed"
    assert flipped in third.stderr
    history = json.loads((tmp_path / "reports" / "history.json").read_text())
    assert [h["run_id"] for h in history] == ["night-1", "night-2", "night-3"]
    assert flipped in "\n".join(history[-1]["changes"])
    assert f"build {branch}-none:" in "\n".join(history[-1]["changes"])
