"""Incremental builds: a build that starts from a copy of another build's directory, and
the guards against ninja's timestamp trap (docs/builds.md, "Incremental fix builds").

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
from collections.abc import Sequence
from pathlib import Path

from .trees import PreparedTree

PCH_DIR = "patchcheck-pch"  # precompiled headers, in the build directory
OLD_MTIME = 946684800  # 2000-01-01: unchanged sources of an incremental build look old to ninja


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
    import git

    out = git.Repo(tree.path).git.diff("--name-only", base_tree_id, tree.tree_id)
    return [line for line in out.splitlines() if line.strip()]


def age_sources(root: Path, changed: Sequence[str]) -> None:
    """The timestamp trap (docs/builds.md, "Incremental fix builds"): ninja compares
    mtimes, so make every source file of the tree older than the copied build outputs, and
    the changed files newer."""
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for f in filenames:
            path = os.path.join(dirpath, f)
            if not os.path.islink(path):
                os.utime(path, (OLD_MTIME, OLD_MTIME))
    now = time.time()
    for rel in changed:
        target = root / rel
        if target.is_file():
            os.utime(target, (now, now))


def check_incremental_plan(plan: str, changed: Sequence[str]) -> list[str]:
    """From `ninja -n -d explain`: what will be compiled. Every changed C file must be, and
    the plan must be small; otherwise the incremental build is not trusted."""
    compiled = sorted(set(re.findall(r"Compiling C(?:\+\+)? object (\S+)", plan)))
    sources = [c for c in changed if c.endswith(".c")]
    for src in sources:
        stem = src.replace("/", "_")
        if not any(stem in obj for obj in compiled):
            raise IncrementalUnsafe(f"ninja would not recompile {src}")
    if not sources:
        raise IncrementalUnsafe("the change touches no C file")
    if len(compiled) > 50:
        raise IncrementalUnsafe(f"ninja would recompile {len(compiled)} objects")
    return compiled
