"""A prepared tree: a git work tree of a resolved source with its fix state committed, keyed by
its git tree id (made by prepare.py; what a build takes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patchcheck.source.specs import Tree
    from patchcheck.tree.fixes import FixResult


@dataclass(frozen=True)
class PreparedTree:
    source: Tree
    path: Path
    fix: FixResult
    tree_id: str  # git tree object id of the prepared tree: the content key
    # subprojects copied in before configure (patchcheck.source.subprojects): name, path, revision,
    # where from. Their revisions are pinned by the tree, so tree_id stays the content key.
    subprojects: tuple[dict[str, str], ...] = ()
