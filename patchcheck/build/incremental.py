"""Incremental builds: a build that starts from a copy of another build's directory, and
the guards against ninja's timestamp trap (docs/builds.md, "Incremental builds").

The base is a cached build with the same configure options, devices, optimisation rules and
builder image: of the same commit (a fix build: the tree without the fix), else of another
commit of the same repository, the one whose tree differs in the fewest files (an ancestor,
a descendant or the parent's build in the same fix state). The cache is shared by every
repository: a build made in another clone's mirror may have a tree this repository lacks
(its fix is a commit of that mirror); it is read from the repository that has it (one that
prepared trees in the cache), and a tree that none has is no base: it cannot be compared
with this one. A change to the build system (meson.build, configure, Kconfig, device lists,
subprojects) builds from scratch: ninja would re-run meson, and what the regenerated build
compiles cannot be planned beforehand.

ninja compares modification times: a changed source whose mtime is older than the copied
objects is silently not rebuilt. So every source of the tree is made old, the changed
files new, `ninja -n -d explain` must name every changed C file, and the binary must
differ; otherwise the build is not trusted (IncrementalUnsafe) and runs from scratch.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchcheck.source import gitcmd
from patchcheck.tree.link import make_file_old, set_mtime
from patchcheck.tree.prepared import PreparedTree

PCH_DIR = "patchcheck-pch"  # precompiled headers, in the build directory


def copy_build_dir(source: Path, target: Path) -> None:
    """The build directory of an incremental build: a copy, except the precompiled headers,
    hard links (the wrapper never writes into a finished one: it renames new files in)."""
    shutil.copytree(source, target, symlinks=True,
                    ignore=lambda d, names: [PCH_DIR] if Path(d) == source else [])
    if (source / PCH_DIR).is_dir():
        shutil.copytree(source / PCH_DIR, target / PCH_DIR, symlinks=True,
                        copy_function=os.link)


def drop_stale_pch(build_dir: Path, changed: Sequence[str], source: str) -> list[str]:
    """Remove the precompiled headers that read a changed file (their dependency list names
    it, under `source`): the wrapper makes them anew. The flags hashes of what was removed."""
    wanted = {f"{source}/{rel}" for rel in changed}
    dropped = []
    for deps in sorted((build_dir / PCH_DIR).glob("*/*/**/*.gch.d")):
        key = deps.relative_to(build_dir / PCH_DIR).parts[0]
        if key in dropped:
            continue
        listed = set(deps.read_text().split())
        if listed & wanted:
            shutil.rmtree(build_dir / PCH_DIR / key)
            dropped.append(key)
    return dropped


class IncrementalUnsafe(Exception):
    """The incremental build cannot be shown to contain the change: build from scratch."""


def changed_files(tree: PreparedTree, base_tree_id: str) -> list[str]:
    """The paths that differ between the base's git tree and this one. A base's tree that is
    not in this tree's repository is read from the repository that has it, among those that
    prepared trees in the same cache (`lenders`: nothing is written, nothing is kept);
    IncrementalUnsafe when none has it."""
    out = gitcmd.run(tree.path, "diff", "--name-only", base_tree_id, tree.tree_id)
    if out.returncode != 0:
        lenders = _lenders(tree)
        if lenders:
            out = gitcmd.run(tree.path, "diff", "--name-only", base_tree_id, tree.tree_id,
                             env=_lent(lenders))
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or [f"git exited {out.returncode}"])[-1]
        raise IncrementalUnsafe(f"tree {base_tree_id[:12]} cannot be compared with "
                                f"{tree.tree_id[:12]} here ({reason})")
    return [line for line in out.stdout.splitlines() if line.strip()]


def in_repository(records: Sequence[Mapping[str, Any]], family: str, lineage: str,
                  tree: PreparedTree) -> list[Mapping[str, Any]]:
    """The build records of this commit (`family`) or lineage whose git tree git can read
    beside this tree. The cache is shared by every repository: a build made in another
    clone's mirror has a tree (of a fix: a commit of that mirror alone) that this tree's
    repository may lack; it is a base only when a repository that prepared trees in the
    cache has it (`changed_files` reads it there), else git could not compare the trees."""
    related = [r for r in records if r.get("family") == family
               or (lineage and r.get("lineage") == lineage)]
    wanted = {str(r.get("tree_id")) for r in related}
    here = present_trees(tree, wanted)
    if wanted - here:
        here |= present_trees(tree, wanted - here, _lenders(tree))
    return [r for r in related if r.get("tree_id") in here]


def present_trees(tree: PreparedTree, tree_ids: Iterable[str],
                  lenders: Sequence[Path] = ()) -> set[str]:
    """Those of `tree_ids` that are git trees in the repository of `tree` (or in the object
    stores `lenders`): one `git cat-file --batch-check` for them all."""
    wanted = sorted({t for t in tree_ids if re.fullmatch(r"[0-9a-f]{40}", t)})
    if not wanted:
        return set()
    out = gitcmd.run(tree.path, "cat-file", "--batch-check",
                     stdin="".join(f"{t}\n" for t in wanted), env=_lent(lenders))
    found = set()
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = line.split()
        if len(parts) == 3 and parts[1] == "tree":
            found.add(parts[0])
    return found


def _lenders(tree: PreparedTree) -> list[Path]:
    """The object stores of the other repositories that prepared trees beside this one (each
    prepared tree is a worktree: its .git file names <repository>/worktrees/<name>)."""
    own = gitcmd.common_dir(tree.path)
    mine = own.resolve() if own is not None else None
    stores: list[Path] = []
    for gitfile in sorted(tree.path.parent.glob("*/.git")):
        try:
            text = gitfile.read_text() if gitfile.is_file() else ""
        except OSError:
            continue
        if not text.startswith("gitdir:"):
            continue
        repo = Path(text.removeprefix("gitdir:").strip()).parent.parent
        objects = repo / "objects"
        if repo.resolve() != mine and objects.is_dir() and objects not in stores:
            stores.append(objects)
    return stores


def _lent(lenders: Sequence[Path]) -> dict[str, str]:
    """Read-only: git looks in the lenders' object stores for what this repository lacks."""
    return {"GIT_ALTERNATE_OBJECT_DIRECTORIES": os.pathsep.join(str(p) for p in lenders)
            } if lenders else {}


def age_sources(root: Path, changed: Sequence[str]) -> None:
    """The timestamp trap (docs/builds.md, "Incremental builds"): ninja compares
    mtimes, so make every source file of the tree older than the copied build outputs, and
    the changed files newer. A file that is old already is left alone: prepared trees are
    made old (treelink.make_old) and share inodes, whose times they share too.

    A changed file that another tree links (the next tree of the same commit may be being
    made from this one right now, on the preparing thread) gets an inode of its own first:
    a new time on a shared inode would leave the other tree's index not vouching for it,
    and `git apply --index` there would refuse ("does not match index")."""
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for f in filenames:
            make_file_old(os.path.join(dirpath, f))
    now = time.time()
    for rel in changed:
        try:
            set_mtime(str(root / rel), now)
        except FileNotFoundError:
            pass  # deleted by the change


def check_incremental_plan(plan: str, changed: Sequence[str], *, fix: bool = True) -> list[str]:
    """From `ninja -n -d explain`: what will be compiled. Every changed C file must be;
    otherwise the incremental build is not trusted. A fix build (`fix`: same commit) must
    also touch a C file and stay small; a build across commits may compile anything (a
    header change recompiles what includes it) or nothing (a change to documentation)."""
    compiled = sorted(set(re.findall(r"Compiling C(?:\+\+)? object (\S+)", plan)))
    sources = [c for c in changed if c.endswith(".c")]
    for src in sources:
        stem = src.replace("/", "_")
        if not any(stem in obj for obj in compiled):
            raise IncrementalUnsafe(f"ninja would not recompile {src}")
    if fix and not sources:
        raise IncrementalUnsafe("the change touches no C file")
    if fix and len(compiled) > 50:
        raise IncrementalUnsafe(f"ninja would recompile {len(compiled)} objects")
    return compiled


_BUILD_SYSTEM = re.compile(r"(^|/)(meson\.build|meson_options\.txt|meson\.options|Kconfig[^/]*"
                           r"|configure|[^/]+\.mak|[^/]+\.wrap)$|^\.gitmodules$|^subprojects/"
                           r"|^scripts/meson-buildoptions\.sh$")


def build_system_changes(changed: Sequence[str], subproject_dirs: Sequence[str] = ()
                         ) -> list[str]:
    """The changed paths that meson or configure read (or a subproject's pinned directory):
    an incremental build across such a change is not planned, it builds afresh."""
    dirs = tuple(d.rstrip("/") + "/" for d in subproject_dirs)
    return [c for c in changed if _BUILD_SYSTEM.search(c) or c.startswith(dirs)
            or c.rstrip("/") + "/" in dirs]


def distance(tree: PreparedTree, tree_id: str) -> int | None:
    """How many files differ between the tree and another git tree of its repository (None:
    that tree is not in this repository)."""
    try:
        return len(changed_files(tree, tree_id))
    except IncrementalUnsafe:
        return None


def choose_base(records: Sequence[Mapping[str, Any]], family: str, lineage: str,
                tree: PreparedTree) -> Mapping[str, Any] | None:
    """Among build records (whose build directories are kept): one of the same commit (the
    one without a fix first), else one of the same lineage whose tree differs from this one
    in the fewest files, in the same fix state on a tie. The records are those whose tree
    is in this tree's repository (`in_repository`)."""
    candidates = [r for r in records if r.get("tree_id") != tree.tree_id]
    same = [r for r in candidates if r.get("family") == family]
    if same:
        return min(same, key=lambda r: (bool(r.get("fix", {}).get("has_fix")),
                                        bool(r.get("incremental_from")), str(r.get("key"))))
    scored = []
    for record in candidates:
        if not lineage or record.get("lineage") != lineage:
            continue
        files = distance(tree, str(record.get("tree_id")))
        if files is not None:
            state = record.get("fix", {}).get("state")
            scored.append(((files, state != tree.fix.state, str(record.get("key"))), record))
    return min(scored, key=lambda s: s[0])[1] if scored else None
