"""trees.prepare through patchcheck.tree.link on the fake QEMU tree: a tree made from a nearby
prepared tree shares its unchanged files (inodes), holds exactly its own commit, and leaves
the template and both trees' git indexes as they were."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from patchcheck.build import incremental
from patchcheck.source import gitcmd
from patchcheck.source.specs import Tree
from patchcheck.tree import link as treelink
from patchcheck.tree import prepare as trees
from patchcheck.tree.prepared import PreparedTree

from ..conftest import PCIE_C, V2_LINE, Git

pytestmark = pytest.mark.usefixtures("isolated_env")
OTHER = "include/qemu/osdep.h"


def made_from(prepared: PreparedTree) -> str:
    return str(json.loads(prepared.path.with_suffix(".json").read_text())["made_from"])


def stat_clean(git: Git, tree: Path) -> str:
    """What git's stat data does not vouch for, without hashing anything (diff-files does
    not refresh): empty when the index describes the files as they are."""
    return git(tree, *gitcmd.SHARED_INODES, "diff-files", "--name-only")


def child(git: Git, tree: Tree, path: str, text: str, message: str) -> Tree:
    target = tree.repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(tree.repo, "add", "-A")
    git(tree.repo, "commit", "-q", "-m", message)
    return Tree(tree.spec, tree.repo, git(tree.repo, "rev-parse", "HEAD"), tree.qemu_version)


def test_the_fix_tree_is_linked_from_the_tree_without_it(fake_tree: Tree, git: Git,
                                                          tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    with_fix = trees.prepare(fake_tree, "v2", cache)
    assert made_from(without) == "" and made_from(with_fix) == without.path.name
    assert os.stat(with_fix.path / OTHER).st_ino == os.stat(without.path / OTHER).st_ino
    assert os.stat(with_fix.path / PCIE_C).st_ino != os.stat(without.path / PCIE_C).st_ino
    assert V2_LINE in (with_fix.path / PCIE_C).read_text()
    assert V2_LINE not in (without.path / PCIE_C).read_text()
    for tree in (without, with_fix):
        assert trees._clean(tree.path)
        assert stat_clean(git, tree.path) == ""
        assert {os.stat(tree.path / f).st_mtime for f in git(tree.path, "ls-files").split()} \
            == {treelink.OLD_MTIME}


def test_a_child_commit_is_linked_from_its_parent_and_holds_exactly_itself(
        fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    parent = trees.prepare(fake_tree, "none", cache)
    (fake_tree.repo / "VERSION").unlink()
    second = child(git, fake_tree, OTHER, "/* changed */\n", "osdep: change, drop VERSION")
    third = child(git, second, "hw/new/added.c", "int added;\n", "add a file")
    tree = trees.prepare(third, "none", cache)
    assert made_from(tree) == parent.path.name  # the nearest prepared ancestor
    assert git(tree.path, "rev-parse", "HEAD") == third.commit
    assert (tree.path / OTHER).read_text() == "/* changed */\n"
    assert (tree.path / "hw/new/added.c").read_text() == "int added;\n"
    assert not (tree.path / "VERSION").exists() and (parent.path / "VERSION").is_file()
    assert (parent.path / OTHER).read_text() != "/* changed */\n"  # the template untouched
    assert git(tree.path, "status", "--porcelain", "--untracked-files=all") == ""
    assert stat_clean(git, parent.path) == "" and stat_clean(git, tree.path) == ""


def test_a_changed_template_does_not_leak_into_the_new_tree(fake_tree: Tree, git: Git,
                                                            tmp_path: Path) -> None:
    """Somebody wrote into a prepared tree (they should not): the new tree still holds the
    commit, because the reset rewrites what the index does not vouch for."""
    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    target = without.path / OTHER
    target.unlink()  # a new inode: the edit stays in the template
    target.write_text("edited by hand\n")
    (without.path / "stray.c").write_text("untracked\n")
    with_fix = trees.prepare(fake_tree, "v2", cache)
    assert made_from(with_fix) == without.path.name
    assert (with_fix.path / OTHER).read_text().strip() == \
        git(fake_tree.repo, "show", f"HEAD:{OTHER}")
    assert not (with_fix.path / "stray.c").exists()
    assert git(with_fix.path, "status", "--porcelain", "--untracked-files=all") == ""


def test_a_template_in_use_is_not_waited_for(fake_tree: Tree, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    with open(without.path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another run is preparing it again
        with_fix = trees.prepare(fake_tree, "v2", cache)
    assert made_from(with_fix) == ""
    assert V2_LINE in (with_fix.path / PCIE_C).read_text()


def test_an_incremental_build_ages_only_what_changed(fake_tree: Tree, git: Git,
                                                     tmp_path: Path) -> None:
    """age_sources leaves old files alone: the shared inodes keep their times, so both trees'
    indexes stay valid; only the changed file is new."""
    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    with_fix = trees.prepare(fake_tree, "v2", cache)
    before = os.stat(without.path / OTHER).st_ctime_ns
    incremental.age_sources(with_fix.path, [PCIE_C])
    assert os.stat(without.path / OTHER).st_ctime_ns == before
    assert os.stat(with_fix.path / PCIE_C).st_mtime > treelink.OLD_MTIME
    assert stat_clean(git, without.path) == ""
    assert stat_clean(git, with_fix.path) == PCIE_C


def test_a_build_never_changes_the_times_of_a_file_another_tree_shares(
        fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    """A build of one tree (incremental across commits: its pcie.c is "changed") while the
    next tree of the same commit is being made from it (linked, not yet patched): the
    changed file gets an inode of its own before its time moves, so the other tree's index
    still vouches for its pcie.c and the fix goes in with `git apply --index`."""
    from patchcheck.tree import fixes

    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    other = tmp_path / "other"
    template = treelink.Template(without.path.name, without.path)
    assert treelink.link(fake_tree.repo, other, fake_tree.commit, template)
    shared = os.stat(other / PCIE_C)
    assert shared.st_ino == os.stat(without.path / PCIE_C).st_ino
    incremental.age_sources(without.path, [PCIE_C])
    assert os.stat(without.path / PCIE_C).st_mtime > treelink.OLD_MTIME
    assert os.stat(other / PCIE_C).st_mtime_ns == shared.st_mtime_ns
    assert (without.path / PCIE_C).read_text() == (other / PCIE_C).read_text()
    assert stat_clean(git, other) == ""
    assert fixes.apply_fix(other, "v2").applied == "clean"


def test_making_a_new_tree_old_leaves_a_building_tree_s_new_file_new(
        fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    """The other order: the build has aged its tree (pcie.c new) and a `git status` of a
    later run has refreshed that tree's index (it now vouches for the new pcie.c) when the
    next tree is linked from it, sharing that pcie.c. Making the new tree old must not make
    the building tree's pcie.c old again (ninja would not recompile it)."""
    cache = tmp_path / "cache"
    without = trees.prepare(fake_tree, "none", cache)
    incremental.age_sources(without.path, [PCIE_C])
    assert trees._clean(without.path)  # refreshes its index
    aged = os.stat(without.path / PCIE_C).st_mtime_ns
    other = tmp_path / "other"
    template = treelink.Template(without.path.name, without.path)
    assert treelink.link(fake_tree.repo, other, fake_tree.commit, template)
    treelink.make_old(other)
    assert os.stat(without.path / PCIE_C).st_mtime_ns == aged
    assert os.stat(other / PCIE_C).st_mtime == treelink.OLD_MTIME
    assert git(other, "status", "--porcelain", "--untracked-files=all") == ""
    assert stat_clean(git, other) == ""


def test_a_template_from_another_mirror_is_taken_only_when_its_objects_are_here(
        fake_tree: Tree, git: Git, tmp_path: Path) -> None:
    """Two clones of one repository share the worktrees cache. The first clone's fix tree
    (its fix a commit of that mirror alone) is no template for the second clone's mirror;
    its tree of the commit as it is, whose objects both have, is."""
    from patchcheck.source.specs import GitSources, GitSpec

    cache = tmp_path / "cache"
    root = cache / "worktrees"
    clones = [tmp_path / "first", tmp_path / "second"]
    for clone in clones:
        git(tmp_path, "clone", "-q", str(fake_tree.repo), str(clone))
    first, second = (GitSources(cache).resolve(GitSpec(str(c), "main")) for c in clones)
    fixed = trees.prepare(first, "v2", cache)
    key = f"{second.commit[:16]}-other"
    assert treelink.find(root, first.repo, first.commit, key) is not None  # its own mirror
    assert treelink.find(root, second.repo, second.commit, key) is None
    without = trees.prepare(second, "none", cache)
    assert made_from(without) == ""  # checked out, not linked from the first's fix tree
    assert V2_LINE not in (without.path / PCIE_C).read_text()
    assert git(without.path, "status", "--porcelain", "--untracked-files=all") == ""
    found = treelink.find(root, second.repo, second.commit, key)
    assert found is not None and found.key == without.path.name  # its own, never the fix tree
    # the second clone's tree of the commit as it is holds nothing the first's mirror lacks:
    # a template there too; the tree made from it is the commit's, with its fix
    fixed.path.with_suffix(".json").rename(fixed.path.with_suffix(".json.away"))
    assert treelink.find(root, first.repo, first.commit, key) == \
        treelink.Template(without.path.name, without.path)
    v1 = trees.prepare(first, "v1", cache)
    assert made_from(v1) == without.path.name
    assert git(v1.path, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(v1.path, "rev-parse", "HEAD~1") == first.commit
