"""fixes.apply_fix / resolve / fix_key and trees.prepare on the fake QEMU tree."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from patchcheck.errors import BuildFailed, UsageError
from patchcheck.source.specs import Tree
from patchcheck.tree import fixes
from patchcheck.tree import prepare as trees

from ..conftest import shipped

pytestmark = pytest.mark.usefixtures("isolated_env")

Git = Callable[..., str]
PCIE_C = "hw/pci/pcie.c"
V1_LINE = "PCI_EXP_HP_EV_SUPPORTED | PCI_EXP_SLTSTA_PDS);"
V2_LINE = "pci_word_test_and_clear_mask(dev->cmask + pos + PCI_EXP_SLTSTA,"


def pcie(tree: Tree) -> str:
    return (tree.repo / PCIE_C).read_text()


def clean_and_committed(git: Git, repo: Path) -> None:
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


# --- the shipped patches --------------------------------------------------------------

@pytest.mark.parametrize("name", ["v1", "v2"])
def test_shipped_patches_exist_and_touch_only_pcie_c(fake_tree: Tree, name: str) -> None:
    patch = shipped(name)
    assert patch.path.is_file()
    assert not patch.is_mbox  # plain patches with a From: header, applied with git apply
    assert fixes._paths(fake_tree.repo, patch) == [PCIE_C]


def test_v1_applies_clean(fake_tree: Tree, git: Git) -> None:
    before = git(fake_tree.repo, "rev-parse", "HEAD")
    result = fixes.apply_fix(fake_tree.repo, "v1")
    assert result == fixes.FixResult("v1", "v1", "clean", has_fix=True)
    text = pcie(fake_tree)
    assert V1_LINE in text and V2_LINE not in text
    assert git(fake_tree.repo, "rev-parse", "HEAD~1") == before
    assert git(fake_tree.repo, "log", "-1", "--format=%s") == "patchcheck: apply v1"
    assert git(fake_tree.repo, "log", "-1", "--format=%an <%ae>") == \
        "patchcheck <patchcheck@localhost>"
    clean_and_committed(git, fake_tree.repo)


def test_v2_applies_clean(fake_tree: Tree, git: Git) -> None:
    result = fixes.apply_fix(fake_tree.repo, "v2")
    assert (result.applied, result.patch, result.has_fix) == ("clean", "v2", True)
    text = pcie(fake_tree)
    assert V2_LINE in text and V1_LINE not in text
    assert "/* Avoid migration abortion when this device hot-removed by guest */" in text
    clean_and_committed(git, fake_tree.repo)
    assert fixes.present_fix(fake_tree.repo) == shipped("v2")


def test_none_on_a_clean_tree_changes_nothing(fake_tree: Tree, git: Git) -> None:
    result = fixes.apply_fix(fake_tree.repo, "none")
    assert (result.applied, result.patch, result.has_fix) == ("unchanged", None, False)
    assert git(fake_tree.repo, "rev-parse", "HEAD") == fake_tree.commit
    assert fixes.present_fix(fake_tree.repo) is None


def test_reverted_on_a_clean_tree_is_a_usage_error(fake_tree: Tree, git: Git) -> None:
    with pytest.raises(UsageError, match="carries no known fix to revert"):
        fixes.apply_fix(fake_tree.repo, "reverted")
    assert git(fake_tree.repo, "rev-parse", "HEAD") == fake_tree.commit


@pytest.mark.parametrize("state", ["none", "reverted"])
def test_no_fix_on_a_tree_with_v2_reverts_it(fake_tree_with_v2: Tree, fake_tree: Tree, git: Git,
                                             state: str) -> None:
    tree = fake_tree_with_v2
    assert V2_LINE in pcie(tree)
    result = fixes.apply_fix(tree.repo, state)
    assert (result.state, result.patch, result.applied, result.has_fix) == \
        (state, "v2", "reverted", False)
    assert "v2" in result.note
    assert V2_LINE not in pcie(tree)
    assert "Avoid migration abortion" not in pcie(tree)
    # byte-identical to the tree that never had the fix
    assert git(tree.repo, "rev-parse", f"HEAD:{PCIE_C}") == \
        git(fake_tree.repo, "rev-parse", f"HEAD:{PCIE_C}")
    assert git(tree.repo, "log", "-1", "--format=%s") == "patchcheck: revert v2"
    clean_and_committed(git, tree.repo)


def test_v2_on_a_tree_with_v2_is_already_present(fake_tree_with_v2: Tree, git: Git) -> None:
    result = fixes.apply_fix(fake_tree_with_v2.repo, "v2")
    assert (result.applied, result.patch, result.has_fix) == ("already-present", "v2", True)
    assert git(fake_tree_with_v2.repo, "rev-parse", "HEAD") == fake_tree_with_v2.commit
    assert pcie(fake_tree_with_v2).count(V2_LINE) == 1


def test_v1_is_found_as_present_fix_and_reverted(fake_tree: Tree, git: Git) -> None:
    fixes.apply_fix(fake_tree.repo, "v1")
    assert fixes.present_fix(fake_tree.repo) == shipped("v1")
    result = fixes.apply_fix(fake_tree.repo, "reverted")
    assert (result.patch, result.applied, result.has_fix) == ("v1", "reverted", False)
    assert V1_LINE not in pcie(fake_tree)
    assert git(fake_tree.repo, "rev-parse", "HEAD^{tree}") == \
        git(fake_tree.repo, "rev-parse", f"{fake_tree.commit}^{{tree}}")


def test_patch_that_does_not_apply_names_file_and_hunk(fake_tree_with_v2: Tree, git: Git) -> None:
    # v1's context (hpev_notified right after the w1cmask statement) is gone in a v2 tree,
    # and the blob its index line names is not in the repository: no 3-way either.
    with pytest.raises(UsageError) as err:
        fixes.apply_fix(fake_tree_with_v2.repo, "v1")
    message = str(err.value)
    assert "v1.patch" in message
    assert f"{PCIE_C}:652" in message
    assert "does not apply" in message
    assert git(fake_tree_with_v2.repo, "rev-parse", "HEAD") == fake_tree_with_v2.commit
    clean_and_committed(git, fake_tree_with_v2.repo)


# --- user patches ---------------------------------------------------------------------

def _patch(path: Path) -> fixes.Patch:
    patch = fixes.resolve(str(path))
    assert patch is not None
    return patch


def _v1_style_diff(git: Git, repo: Path, out: Path) -> Path:
    path = repo / PCIE_C
    original = path.read_text()
    changed = original.replace("PCI_EXP_HP_EV_SUPPORTED);\n\n    dev->exp.hpev",
                               "PCI_EXP_HP_EV_SUPPORTED | PCI_EXP_SLTSTA_PDS);\n\n    dev->exp.hpev")
    assert changed != original
    path.write_text(changed)
    git(repo, "diff", "--full-index", "--output", str(out))
    path.write_text(original)
    assert git(repo, "status", "--porcelain") == ""
    return out


def test_user_patch_file_applies_clean(fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    patch = _v1_style_diff(git, fake_tree.repo, tmp_path / "my-fix.patch")
    result = fixes.apply_fix(fake_tree.repo, str(patch))
    assert (result.state, result.patch, result.applied, result.has_fix) == \
        (str(patch), "my-fix.patch", "clean", True)
    assert V1_LINE in pcie(fake_tree)
    clean_and_committed(git, fake_tree.repo)


def test_three_way_fallback(fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    """Upstream changed a context line of the hunk after the patch was written: plain
    `git apply` fails, `--3way` merges it using the preimage blob named in the patch."""
    repo = fake_tree.repo
    patch = _v1_style_diff(git, repo, tmp_path / "fix.patch")
    path = repo / PCIE_C
    text = path.read_text()
    # two lines above the changed line, inside the hunk's leading context
    assert text.count("PCI_EXP_SLTCTL_EIC);\n\n    pci_word_test_and_set_mask(dev->w1cmask") == 1
    path.write_text(text.replace(
        "PCI_EXP_SLTCTL_EIC);\n\n    pci_word_test_and_set_mask(dev->w1cmask",
        "PCI_EXP_SLTCTL_EIC); /* upstream */\n\n    pci_word_test_and_set_mask(dev->w1cmask"))
    git(repo, "commit", "-q", "-am", "upstream: touch the context")
    assert not fixes.applies(repo, _patch(patch))  # plain apply really fails

    result = fixes.apply_fix(repo, str(patch))
    assert (result.applied, result.has_fix) == ("3way", True)
    text = path.read_text()
    assert V1_LINE in text and "PCI_EXP_SLTCTL_EIC); /* upstream */" in text
    assert "<<<<<<<" not in text
    clean_and_committed(git, repo)


def test_conflicting_user_patch_is_rejected_and_tree_reset(fake_tree: Tree, git: Git,
                                                          tmp_path: Path) -> None:
    repo = fake_tree.repo
    patch = _v1_style_diff(git, repo, tmp_path / "fix.patch")
    path = repo / PCIE_C
    path.write_text(path.read_text().replace(
        "PCI_EXP_HP_EV_SUPPORTED);\n\n    dev->exp.hpev",
        "PCI_EXP_HP_EV_SUPPORTED | 0x8000);\n\n    dev->exp.hpev"))
    git(repo, "commit", "-q", "-am", "upstream: the same line, differently")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(UsageError, match=rf"fix\.patch.*{PCIE_C}:\d+"):
        fixes.apply_fix(repo, str(patch))
    assert git(repo, "rev-parse", "HEAD") == head
    clean_and_committed(git, repo)
    assert "<<<<<<<" not in path.read_text()


def test_mbox_is_applied_with_git_am(fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    repo = fake_tree.repo
    path = repo / PCIE_C
    path.write_text(path.read_text().replace(
        "PCI_EXP_HP_EV_SUPPORTED);\n\n    dev->exp.hpev",
        "PCI_EXP_HP_EV_SUPPORTED | PCI_EXP_SLTSTA_PDS);\n\n    dev->exp.hpev"))
    git(repo, "commit", "-q", "-am", "pcie: make PDS w1c\n\nBody of the message.")
    mbox = tmp_path / "0001-pcie-make-PDS-w1c.patch"
    mbox.write_text(git(repo, "format-patch", "-1", "--stdout") + "\n")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert _patch(mbox).is_mbox

    result = fixes.apply_fix(repo, str(mbox))
    assert (result.applied, result.has_fix, result.patch) == \
        ("clean", True, "0001-pcie-make-PDS-w1c.patch")
    assert "git am" in result.note
    assert git(repo, "log", "-1", "--format=%s|%an") == "pcie: make PDS w1c|Test Author"
    assert git(repo, "rev-parse", "HEAD~1") == fake_tree.commit
    assert V1_LINE in path.read_text()
    clean_and_committed(git, repo)


def test_mbox_that_does_not_apply_aborts_git_am(fake_tree_with_v2: Tree, git: Git,
                                                tmp_path: Path) -> None:
    repo = fake_tree_with_v2.repo
    mbox = tmp_path / "v1.mbox"
    mbox.write_bytes(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                     + shipped("v1").text)
    with pytest.raises(UsageError, match="v1.mbox"):
        fixes.apply_fix(repo, str(mbox))
    assert git(repo, "rev-parse", "HEAD") == fake_tree_with_v2.commit
    assert not (repo / ".git" / "rebase-apply").exists()  # no am session left behind
    clean_and_committed(git, repo)


def test_mbox_that_does_not_apply_names_the_hunk(fake_tree_with_v2: Tree, tmp_path: Path) -> None:
    mbox = tmp_path / "v1.mbox"
    mbox.write_bytes(b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                     + shipped("v1").text)
    with pytest.raises(UsageError, match=f"{PCIE_C}:652"):
        fixes.apply_fix(fake_tree_with_v2.repo, str(mbox))


def test_missing_patch_file(fake_tree: Tree, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such patch file"):
        fixes.apply_fix(fake_tree.repo, str(tmp_path / "nope.patch"))
    with pytest.raises(UsageError, match="no such patch file"):
        fixes.resolve("v3")  # not a known name and not a file


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"  \n\n\t\n", "empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00--- a\n+++ b\n", "binary"),
    (b"Hello,\n\nplease apply my fix, it makes PDS w1c.\n", "not a patch"),
])
def test_bad_patch_files(fake_tree: Tree, git: Git, tmp_path: Path, content: bytes,
                         message: str) -> None:
    path = tmp_path / "bad.patch"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message) as err:
        fixes.apply_fix(fake_tree.repo, str(path))
    assert str(path) in str(err.value)
    assert git(fake_tree.repo, "rev-parse", "HEAD") == fake_tree.commit


def test_header_only_patch_changes_no_file(fake_tree: Tree, tmp_path: Path) -> None:
    path = tmp_path / "headers.patch"
    path.write_text("--- a/hw/pci/pcie.c\n+++ b/hw/pci/pcie.c\n")
    with pytest.raises(UsageError, match="headers.patch"):
        fixes.apply_fix(fake_tree.repo, str(path))


@pytest.mark.parametrize("target", ["../outside", "hw/../../outside", "../../etc/evil"])
def test_patch_outside_the_tree(fake_tree: Tree, tmp_path: Path, target: str) -> None:
    path = tmp_path / "escape.patch"
    path.write_text(f"diff --git a/{target} b/{target}\nnew file mode 100644\n--- /dev/null\n"
                    f"+++ b/{target}\n@@ -0,0 +1 @@\n+owned\n")
    with pytest.raises(UsageError, match=f"touches '{re.escape(target)}', outside the tree"):
        fixes.apply_fix(fake_tree.repo, str(path))
    assert not (fake_tree.repo.parent / "outside").exists()
    assert not (tmp_path / "outside").exists()


# --- fix_key --------------------------------------------------------------------------

def test_fix_key_names() -> None:
    known = fixes.known_fixes()
    for state in ("none", "reverted"):  # they revert the scenario's fixes: keyed by them too
        assert fixes.fix_key(state) == f"pds-{state}-{known.digest[:12]}"
    assert fixes.fix_key("none", fixes.KnownFixes("nofix", ())) == "none"
    for state in ("v1", "v2"):  # a known fix is its scenario's: pds-v2 and aer-v2 never mix
        assert fixes.fix_key(state) == f"pds-{state}-{shipped(state).digest[:12]}"
    # a fix judged on the tree without any known fix: both parts in the key
    assert fixes.fix_key("none+v2") == f"{fixes.fix_key('none')}+{fixes.fix_key('v2')}"


def test_an_edited_known_fix_is_another_tree(tmp_path: Path) -> None:
    """Tree (and so build) keys follow a patch's content, not its name."""
    old = fixes.KnownFixes("pds", (fixes.Patch("v2", shipped("v2").path),))
    edited = tmp_path / "v2.patch"
    edited.write_bytes(shipped("v2").text.replace(b"Avoid migration", b"Avoid a migration"))
    new = fixes.KnownFixes("pds", (fixes.Patch("v2", edited),))
    assert fixes.fix_key("v2", old) != fixes.fix_key("v2", new)
    assert fixes.fix_key("none", old) != fixes.fix_key("none", new)


def test_fix_key_files_are_content_hashed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.patch", tmp_path / "sub" / "b.patch", tmp_path / "c.patch"
    b.parent.mkdir()
    body = shipped("v1").text
    a.write_bytes(body)
    b.write_bytes(body)
    c.write_bytes(body.replace(b"[PATCH v1]", b"[PATCH v1 RESEND]"))
    key = fixes.fix_key(str(a))
    assert key.startswith("file-") and len(key) == len("file-") + 16
    assert fixes.fix_key(str(a)) == key  # stable
    assert fixes.fix_key(str(b)) == key  # name and place do not matter
    assert fixes.fix_key(str(c)) != key  # content does
    assert key != fixes.fix_key("v1")


# --- trees.prepare --------------------------------------------------------------------

@pytest.fixture
def count_apply(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = fixes.apply_fix

    def counting(tree: Path, state: str, known: fixes.KnownFixes | None = None
                 ) -> fixes.FixResult:
        calls.append(state)
        return real(tree, state, known)

    monkeypatch.setattr(fixes, "apply_fix", counting)
    return calls


def test_prepare_applies_and_records(fake_tree: Tree, git: Git, tmp_path: Path,
                                     count_apply: list[str]) -> None:
    cache = tmp_path / "cache"
    prepared = trees.prepare(fake_tree, "v2", cache)
    assert count_apply == ["v2"]
    assert prepared.path.is_dir() and prepared.path.parent == cache / "worktrees"
    assert prepared.fix.applied == "clean"
    assert V2_LINE in (prepared.path / PCIE_C).read_text()
    assert prepared.tree_id == git(prepared.path, "rev-parse", "HEAD^{tree}")
    record = json.loads(prepared.path.with_suffix(".json").read_text())
    assert record["tree_id"] == prepared.tree_id and record["fix"]["state"] == "v2"
    # the source repository itself is untouched
    assert git(fake_tree.repo, "rev-parse", "HEAD") == fake_tree.commit
    assert V2_LINE not in (fake_tree.repo / PCIE_C).read_text()


def test_prepare_is_cached(fake_tree: Tree, tmp_path: Path, count_apply: list[str]) -> None:
    cache = tmp_path / "cache"
    first = trees.prepare(fake_tree, "v1", cache)
    second = trees.prepare(fake_tree, "v1", cache)
    assert count_apply == ["v1"]
    assert second == first


def test_a_cached_tree_is_named_by_the_patch_file_asked_for(fake_tree: Tree, tmp_path: Path,
                                                            count_apply: list[str]) -> None:
    """Patch files are keyed by content: a second file with the same content reuses the tree,
    but the record names the file asked for (it named the first one's file)."""
    a, b = tmp_path / "first.patch", tmp_path / "my-fix.patch"
    a.write_bytes(shipped("v2").text)
    b.write_bytes(shipped("v2").text)
    cache = tmp_path / "cache"
    first = trees.prepare(fake_tree, str(a), cache)
    second = trees.prepare(fake_tree, str(b), cache)
    assert count_apply == [str(a)] and second.path == first.path
    assert (first.fix.patch, second.fix.patch) == ("first.patch", "my-fix.patch")
    assert second.fix.state == str(b) and second.fix.has_fix


def test_prepare_keys_by_fix(fake_tree: Tree, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    none = trees.prepare(fake_tree, "none", cache)
    v1 = trees.prepare(fake_tree, "v1", cache)
    v2 = trees.prepare(fake_tree, "v2", cache)
    assert len({none.path, v1.path, v2.path}) == 3
    assert len({none.tree_id, v1.tree_id, v2.tree_id}) == 3


def test_prepare_content_key_of_reverted_tree(fake_tree: Tree, fake_tree_with_v2: Tree,
                                              git: Git, tmp_path: Path) -> None:
    """Reverting v2 and applying v2 give the same content as the other tree's fix state."""
    cache = tmp_path / "cache"
    reverted = trees.prepare(fake_tree_with_v2, "none", cache)
    fixed = trees.prepare(fake_tree, "v2", cache)
    assert reverted.fix.applied == "reverted"
    assert git(reverted.path, "rev-parse", f"HEAD:{PCIE_C}") == \
        git(fake_tree.repo, "rev-parse", f"HEAD:{PCIE_C}")
    assert git(fixed.path, "rev-parse", f"HEAD:{PCIE_C}") == \
        git(fake_tree_with_v2.repo, "rev-parse", f"HEAD:{PCIE_C}")


@pytest.mark.parametrize("damage", ["untracked", "modified", "commit", "record", "no-git"])
def test_prepare_redoes_a_damaged_worktree(fake_tree: Tree, git: Git, tmp_path: Path,
                                           count_apply: list[str], damage: str) -> None:
    cache = tmp_path / "cache"
    first = trees.prepare(fake_tree, "v2", cache)
    target = first.path / PCIE_C
    if damage == "untracked":
        (first.path / "stray.o").write_text("junk")
    elif damage == "modified":
        target.write_text(target.read_text().replace(V2_LINE, "/* gone */"))
    elif damage == "commit":
        target.write_text("corrupted\n")
        git(first.path, "commit", "-q", "-am", "someone committed in the cache")
    elif damage == "record":
        first.path.with_suffix(".json").write_text("{truncated")
    elif damage == "no-git":
        (first.path / ".git").unlink()

    second = trees.prepare(fake_tree, "v2", cache)
    assert count_apply == ["v2", "v2"]
    assert second.tree_id == first.tree_id
    assert V2_LINE in target.read_text()
    assert not (first.path / "stray.o").exists()
    clean_and_committed(git, second.path)


def test_prepare_failure_leaves_no_worktree(fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(UsageError):
        trees.prepare(fake_tree, "reverted", cache)
    leftovers = [p for p in (cache / "worktrees").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    assert git(fake_tree.repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_prepare_after_cache_dir_wiped(fake_tree: Tree, tmp_path: Path,
                                       count_apply: list[str]) -> None:
    cache = tmp_path / "cache"
    first = trees.prepare(fake_tree, "v1", cache)
    shutil.rmtree(cache)
    second = trees.prepare(fake_tree, "v1", cache)
    assert count_apply == ["v1", "v1"]
    assert second.tree_id == first.tree_id and second.path.is_dir()


# --- a patch judged on the tree that has the bug (check --patch) ---------------------------

NOOP = ("diff --git a/README b/README\nnew file mode 100644\nindex 0000000..e69de29\n"
        "--- /dev/null\n+++ b/README\n@@ -0,0 +1 @@\n+A change that fixes nothing.\n")


def test_a_patch_on_the_bug_tree_reverts_the_known_fix_first(fake_tree_with_v2: Tree,
                                                              tmp_path: Path, git: Git) -> None:
    """`none+PATCH` on a tree that carries v2: v2 is reverted, then the patch applied, so a
    patch that changes nothing leaves the bug in the tree (it was the "fix" before)."""
    noop = tmp_path / "noop.patch"
    noop.write_text(NOOP)
    result = fixes.apply_fix(fake_tree_with_v2.repo, f"none+{noop}")
    assert (result.state, result.patch, result.applied, result.has_fix) == \
        (f"none+{noop}", "noop.patch", "clean", True)
    assert "reverted" in result.note and "v2" in result.note
    assert V2_LINE not in pcie(fake_tree_with_v2)  # the bug is back: the patch is judged on it
    assert (fake_tree_with_v2.repo / "README").read_text() == "A change that fixes nothing.\n"
    assert git(fake_tree_with_v2.repo, "log", "-2", "--format=%s").splitlines() == \
        ["patchcheck: apply noop.patch", "patchcheck: revert v2"]
    clean_and_committed(git, fake_tree_with_v2.repo)


def test_the_known_fix_as_a_patch_on_the_bug_tree_puts_it_back(fake_tree_with_v2: Tree,
                                                                git: Git) -> None:
    result = fixes.apply_fix(fake_tree_with_v2.repo, f"none+{shipped('v2').path}")
    assert (result.applied, result.has_fix) == ("clean", True)
    assert pcie(fake_tree_with_v2).count(V2_LINE) == 1
    clean_and_committed(git, fake_tree_with_v2.repo)


def test_a_patch_that_does_not_apply_to_the_bug_tree_names_file_and_hunk(
        fake_tree: Tree, tmp_path: Path) -> None:
    bad = tmp_path / "bad.patch"
    bad.write_bytes(shipped("v2").text.replace(b"dev->exp.hpev_notified = false;",
                                               b"dev->exp.something_else = 1;"))
    with pytest.raises(UsageError, match=r"does not apply: hunk at hw/pci/pcie\.c:\d+"):
        fixes.apply_fix(fake_tree.repo, f"none+{bad}")


# --- detection: ancestry first, then text; unknown refuses ------------------------------------

def _moved(repo: Path, git: Git) -> None:
    """Change the lines around the fix, so that no known fix applies either way."""
    path = repo / PCIE_C
    text = path.read_text().replace("dev->exp.hpev_notified = false;",
                                    "dev->exp.hpev_notified = false; /* moved */")
    text = text.replace("PCI_EXP_HP_EV_SUPPORTED);", "PCI_EXP_HP_EV_SUPPORTED); /* moved */")
    path.write_text(text)
    git(repo, "commit", "-q", "-am", "move the context of the fix")


def test_a_fix_known_by_its_upstream_commit_is_found_when_its_text_moved(
        fake_tree_with_v2: Tree, git: Git) -> None:
    repo = fake_tree_with_v2.repo
    fix_commit = git(repo, "rev-parse", "HEAD")  # the fixture's commit: "upstream's" fix
    _moved(repo, git)
    known = fixes.KnownFixes("pds", (shipped("v2"), shipped("v1")), (("v2", fix_commit),))
    assert not fixes.applies(repo, shipped("v2"), reverse=True)  # text cannot tell any more
    found = fixes.detect(repo, known)
    assert (found.state, found.patch, found.how) == ("present", shipped("v2"),
                                                     f"ancestry ({fix_commit[:12]})")
    result = fixes.apply_fix(repo, fixes.AS_IS, known)
    assert (result.applied, result.patch, result.has_fix) == ("already-present", "v2", True)


def test_ancestry_that_does_not_hold_falls_back_to_text(fake_tree: Tree, git: Git) -> None:
    before = fake_tree.commit  # an ancestor of nothing that carries the fix
    git(fake_tree.repo, "commit", "-q", "--allow-empty", "-m", "later")
    known = fixes.KnownFixes("pds", (shipped("v2"),), (("v2", "0" * 40),))  # not here
    assert fixes.detect(fake_tree.repo, known).state == "absent"
    known = fixes.KnownFixes("pds", (shipped("v2"),), (("v2", before),))
    assert fixes.detect(fake_tree.repo, known).state == "present"  # an ancestor: present


def test_a_fix_whose_context_moved_is_found_by_its_lines(fake_tree_with_v2: Tree,
                                                          git: Git) -> None:
    """No upstream commit to ask: the lines v2 adds are there, the code around them moved.
    The tree carries v2; `none` says it cannot revert it (never an unchanged "without")."""
    repo = fake_tree_with_v2.repo
    _moved(repo, git)
    head = git(repo, "rev-parse", "HEAD")
    found = fixes.detect(repo)
    assert (found.state, found.patch, found.how) == ("present", shipped("v2"),
                                                     "text (its lines, moved)")
    assert fixes.apply_fix(repo, fixes.AS_IS).has_fix
    with pytest.raises(UsageError, match="cannot revert v2"):
        fixes.apply_fix(repo, "none")
    assert git(repo, "rev-parse", "HEAD") == head


def test_a_fix_for_code_the_tree_does_not_have_is_absent(fake_tree: Tree) -> None:
    """AER's compat entry on a tree without hw/core/machine.c's hw_compat_7_2 (as QEMU 7.2,
    which predates the bug): neither applies nor reverts, and none of its lines is there."""
    known = fixes.known_fixes("aer")
    assert fixes.detect(fake_tree.repo, known).state == "absent"
    assert fixes.apply_fix(fake_tree.repo, "none", known).applied == "unchanged"


def test_a_fix_state_nobody_can_tell_is_unknown_and_refused(fake_tree: Tree, tmp_path: Path,
                                                            git: Git) -> None:
    """A fix of two blocks of which the tree holds one, its context moved: neither
    ancestry nor text tells. Nothing is built from a guess."""
    repo = fake_tree.repo
    path = repo / PCIE_C
    text = path.read_text()
    first = "    uint32_t pos = dev->exp.exp_cap;\n"
    last = "    dev->exp.hpev_notified = false;\n"
    path.write_text(text.replace(first, first + "    /* block one of the fix */\n")
                    .replace(last, last + "    /* block two of the fix */\n"))
    fix = tmp_path / "two-blocks.patch"
    fix.write_text(git(repo, "diff") + "\n")
    path.write_text(text.replace(first, "    uint32_t pos = dev->exp.exp_cap; /* moved */\n"
                                 "    /* block one of the fix */\n"))
    git(repo, "commit", "-q", "-am", "half of the fix, its context moved")
    head = git(repo, "rev-parse", "HEAD")
    known = fixes.KnownFixes("pds", (fixes.Patch("two-blocks", fix),))
    assert fixes.detect(repo, known).state == "unknown"
    for state in ("none", fixes.AS_IS):
        with pytest.raises(fixes.FixStateUnknown, match="fix state unknown"):
            fixes.apply_fix(repo, state, known)
    assert git(repo, "rev-parse", "HEAD") == head  # nothing was committed
    assert issubclass(fixes.FixStateUnknown, BuildFailed)  # check: 125, series: untestable
