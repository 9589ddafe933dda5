"""A resolved source + a fix state -> a prepared work tree (a git worktree, fix committed).

Prepared trees live under <cache>/worktrees/<commit>-<fix-key>/ next to a JSON file
recording how the fix went in and which prepared tree its files were linked from
(patchcheck.tree.link); the tree's git tree id is the content key builds use.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from patchcheck.errors import PatchcheckError
from patchcheck.locks import file_lock
from patchcheck.source import gitcmd
from patchcheck.source.specs import Tree
from patchcheck.tree import fixes
from patchcheck.tree import link as treelink
from patchcheck.tree.prepared import PreparedTree


def prepare(tree: Tree, fix_state: str, cache_dir: Path,
            known: fixes.KnownFixes | None = None) -> PreparedTree:
    """`known`: the scenario's fixes (default: the default scenario's)."""
    known = known or fixes.known_fixes()
    key = f"{tree.commit[:16]}-{fixes.fix_key(fix_state, known)}"
    root = cache_dir / "worktrees"
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    record = root / f"{key}.json"
    with file_lock(root / f"{key}.lock"):
        if record.is_file() and path.is_dir():
            try:
                data = json.loads(record.read_text())
                if _clean(path) and gitcmd.tree_id(path) == data["tree_id"]:
                    return PreparedTree(tree, path, _as_asked(fixes.FixResult(**data["fix"]),
                                                              fix_state, known), data["tree_id"])
            except (ValueError, KeyError, TypeError, gitcmd.GitError):
                pass  # damaged entry: prepared again below
        _remove_worktree(tree.repo, path)
        record.unlink(missing_ok=True)
        made_from = _check_out(tree, path, treelink.find(root, tree.repo, tree.commit, key))
        try:
            result = fixes.apply_fix(path, fix_state, known)
        except PatchcheckError:
            _remove_worktree(tree.repo, path)
            raise
        treelink.make_old(path)
        tree_id = gitcmd.tree_id(path)
        tmp = record.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"fix": result.to_dict(), "tree_id": tree_id,
                                   "made_from": made_from, "old": True}, indent=2))
        tmp.rename(record)
        return PreparedTree(tree, path, result, tree_id)


def _check_out(tree: Tree, path: Path, template: treelink.Template | None) -> str:
    """The commit's files at `path`: linked from `template` where that works and gives a
    clean tree (the template's key is returned), else checked out by git ("")."""
    if template is not None:
        if treelink.link(tree.repo, path, tree.commit, template) and _clean(path):
            return template.key
        _remove_worktree(tree.repo, path)
    # checkout.workers=0: write the files with one worker per CPU (QEMU's ~20k files)
    gitcmd.out(tree.repo, "-c", "checkout.workers=0", "worktree", "add", "--force", "--detach",
               str(path), tree.commit)
    return ""


def _clean(path: Path) -> bool:
    """No change to a tracked file and no untracked file. `git status` refreshes the index
    as it looks (`git diff` would re-read every racily clean file of a fresh checkout each
    time: ~1.4 s on QEMU's tree)."""
    return not gitcmd.out(path, *gitcmd.SHARED_INODES, "status", "--porcelain",
                          "--untracked-files=normal").strip()


def _as_asked(result: fixes.FixResult, fix_state: str, known: fixes.KnownFixes
              ) -> fixes.FixResult:
    """A prepared tree found in the cache, as this request names it: a user's patch file is
    keyed by its content, so the entry may have been made from a file of another name."""
    patch = fixes.resolve(fix_state, known) if result.state != fix_state else None
    if patch is None:
        return result
    return dataclasses.replace(result, state=fix_state, patch=patch.name,
                               note=result.note.replace(str(result.patch), patch.name))


def _remove_worktree(repo_path: Path, path: Path) -> None:
    if path.exists():
        if not gitcmd.ok(repo_path, "worktree", "remove", "--force", str(path)):
            shutil.rmtree(path, ignore_errors=True)
    gitcmd.ok(repo_path, "worktree", "prune")
