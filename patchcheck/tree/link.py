"""A prepared tree made from a nearby one: its files hard-linked, only the difference written.

A checkout of QEMU writes ~20,000 files (~290 MB). A prepared tree of the same commit in
another fix state, or of an ancestor commit, already holds nearly all of them. So a new
tree links the files of such a "template", takes a copy of its git index (whose stat data
describes those very inodes), and lets `git reset --hard` write only the paths that differ.

Why sharing inodes between trees is safe:
- git never writes into an existing file: checkout, reset, apply and am unlink a path and
  create it anew, so a file git changes in one tree is a new inode the other never sees;
- builds mount a prepared tree read-only; subprojects are copied in as new files;
- the times are shared too, so every prepared tree is made "old" (`make_old`): its tracked
  files carry incremental.OLD_MTIME, the time the incremental builds need anyway. A build
  then only touches the files its change names, and the trees' indexes stay valid. Times
  are never set on a shared inode: a file is given an inode of its own first (`set_mtime`);
- link() changes an inode's ctime, so git runs on prepared trees with core.trustctime=false
  (`gitcmd.SHARED_INODES`): size, mtime and inode still have to match before git trusts a file, and
  a file whose stat data does not match is hashed as usual.

Whatever the template holds, the new tree ends as git's own checkout of the commit would:
the reset rewrites every path the index does not vouch for, and `trees.prepare` checks the
result with `git status` before it records it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from patchcheck.source import gitcmd

OLD_MTIME = 946684800  # 2000-01-01: see incremental.age_sources
ANCESTORS = 64  # how far back along first parents a template is looked for
GITLINK = "160000"


@dataclass(frozen=True)
class Template:
    key: str  # the prepared tree's cache key, <commit16>-<fix key>
    path: Path


def find(root: Path, repo: Path, commit: str, key: str) -> Template | None:
    """The prepared tree nearest to `commit` under `root` (the worktrees cache): of the same
    commit in another fix state, else of the nearest first-parent ancestor (in the same fix
    state first). None when there is none. The worktrees cache is shared by the mirrors of
    every repository: a tree whose objects are not in `repo` is no template (`_objects_here`)."""
    fix_key = key.split("-", 1)[1]
    for other in [commit, *_ancestors(repo, commit)]:
        found = sorted(root.glob(f"{other[:16]}-*.json"),
                       key=lambda p: (p.stem.split("-", 1)[1] != fix_key, p.stem))
        for record in found:
            if record.stem != key and _usable(record) and \
                    _objects_here(repo, record.with_suffix("")):
                return Template(record.stem, record.with_suffix(""))
    return None


def _objects_here(repo: Path, tree: Path) -> bool:
    """Whether the git tree the prepared tree holds is in `repo`: the template's index,
    copied into the new tree, names that tree's blobs. A template made in another mirror
    (another clone of the same project) whose fix is a commit of that mirror alone is not."""
    head = gitcmd.run(tree, "rev-parse", "--verify", "--quiet", "HEAD^{tree}")
    if head.returncode != 0 or not head.stdout.strip():
        return False
    return gitcmd.run(repo, "cat-file", "-e", head.stdout.strip()).returncode == 0


def _ancestors(repo: Path, commit: str) -> list[str]:
    out = gitcmd.run(repo, "rev-list", "--first-parent", f"--max-count={ANCESTORS + 1}",
                     commit)
    return out.stdout.split()[1:] if out.returncode == 0 else []


def _usable(record: Path) -> bool:
    path = record.with_suffix("")
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(data, dict) and bool(data.get("old")) and (path / ".git").is_file()
            and _index(path) is not None)


def _index(tree: Path) -> Path | None:
    """The worktree's index file, when it is a plain one (a split index is not copied)."""
    index = gitcmd.git_path(tree, "index")
    if not index.is_file():
        return None
    if any(index.parent.glob("sharedindex.*")):
        return None
    return index


def link(repo: Path, path: Path, commit: str, template: Template) -> bool:
    """Make `path` a worktree of `repo` at `commit` from `template`'s files. False (and
    nothing left at `path`) when it cannot: the caller checks the commit out instead."""
    with _try_lock(template.path.with_suffix(".lock")) as locked:
        if not locked:  # the template is being prepared again right now
            return False
        index = _index(template.path)
        listing = gitcmd.run(template.path, "ls-files", "-s", "-z")
        if index is None or listing.returncode != 0:
            return False
        made = gitcmd.run(repo, "worktree", "add", "--no-checkout", "--force", "--detach",
                    str(path), commit)
        if made.returncode != 0:
            return False
        try:
            _link_files(template.path, path, listing.stdout)
            shutil.copyfile(index, gitcmd.git_path(path, "index"))
        except OSError:
            return False
    reset = gitcmd.run(path, *gitcmd.SHARED_INODES, "reset", "-q", "--hard", commit)
    return reset.returncode == 0


def _link_files(source: Path, target: Path, listing: str) -> None:
    src, dst = str(source), str(target)  # plain strings: ~20,000 paths
    made: set[str] = set()
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, rel = entry.split("\t", 1)
        parent = os.path.dirname(rel)
        if parent and parent not in made:
            os.makedirs(os.path.join(dst, parent), exist_ok=True)
            made.add(parent)
        if meta.split(" ", 1)[0] == GITLINK:  # a submodule: its empty directory, as checkout
            os.makedirs(os.path.join(dst, rel), exist_ok=True)
            made.add(rel)
            continue
        try:
            os.link(os.path.join(src, rel), os.path.join(dst, rel), follow_symlinks=False)
        except FileNotFoundError:
            pass  # not in the template's work tree: the reset writes it


def make_old(tree: Path) -> None:
    """Give every tracked file of the tree OLD_MTIME (those that have it keep their ctime),
    then let git refresh the index's stat data (it hashes only the files whose times moved)."""
    listing = gitcmd.run(tree, "ls-files", "-z").stdout
    for rel in listing.split("\0"):
        if not rel:
            continue
        target = tree / rel
        try:
            make_file_old(str(target))
        except FileNotFoundError:
            continue
    gitcmd.run(tree, *gitcmd.SHARED_INODES, "update-index", "-q", "--refresh")


def make_file_old(path: str) -> None:
    """OLD_MTIME on a regular file that lacks it; one that has it is left alone (its ctime,
    shared with the trees that link it, stays as their indexes recorded it)."""
    set_mtime(path, OLD_MTIME)


def set_mtime(path: str, when: float) -> None:
    """`when` as a regular file's times (anything else, and a file that has them, is left
    alone). A file other trees link gets an inode of its own first (`_unshare`): a time set
    on a shared inode is every linking tree's. (A build ages the changed files of its tree
    while the next tree of its commit is linked from it; that tree's index would no longer
    vouch for them, and a file made old under a running build would not be recompiled.)"""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and st.st_mtime != when:
        if st.st_nlink > 1:
            _unshare(path)
        os.utime(path, (when, when))


def _unshare(path: str) -> None:
    """Replace a hard-linked file by a copy of it: same bytes and mode, a new inode."""
    tmp = f"{path}.patchcheck-unshare"
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """The template's entry lock if it is free (never waits: the caller holds its own)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

