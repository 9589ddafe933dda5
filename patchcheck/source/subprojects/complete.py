"""Subprojects: what a git tree of QEMU pins of other repositories, made present before
configure, which then runs with network `none` (`--disable-download` where it knows it).

pins.py reads the pins from the commit (submodules up to 8.0, meson wraps from 8.1),
needs.py chooses those the configured build reads (never the ROMs), store.py fetches
each (name, revision) once into the cache, or takes a vendored copy, and verifies it.
`complete` copies them into a prepared work tree.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from patchcheck.locks import file_lock
from patchcheck.paths import inside
from patchcheck.source import gitcmd
from patchcheck.source.subprojects.needs import BuildKind, configure_meson_minimum, needed
from patchcheck.source.subprojects.pins import Pin, read_pins
from patchcheck.source.subprojects.store import SubprojectStore, SubprojectUnavailable

__all__ = ["BuildKind", "Pin", "SubprojectStore", "SubprojectUnavailable", "complete",
           "needed", "pins_of", "read_pins"]

STAMP = ".patchcheck-subproject"  # in each copied subproject: the revision it holds


def pins_of(repo_path: Path, commit: str) -> list[Pin]:
    origin = gitcmd.run(repo_path, "config", "--get", "remote.origin.url")
    return read_pins(repo_path, commit, origin.stdout.strip() if origin.returncode == 0 else "")


def complete(tree_path: Path, repo_path: Path, commit: str, configure: tuple[str, ...],
             builder_meson: Callable[[], tuple[int, ...]], store: SubprojectStore
             ) -> list[dict[str, str]]:
    """Copy every subproject this build reads into the work tree (once: a stamp says which
    revision a directory holds). What went in, for the build record."""
    pins = pins_of(repo_path, commit)
    if not pins:
        return []
    configure_text = (tree_path / "configure").read_text(errors="replace") \
        if (tree_path / "configure").is_file() else ""
    minimum = configure_meson_minimum(configure_text)
    uses_meson_pin = any(p.name == "meson" for p in pins) and bool(minimum)
    kind = BuildKind(configure, builder_meson() if uses_meson_pin else (), minimum)
    done = []
    carried = _carried(repo_path, commit, [p.path for p in pins])
    with file_lock(tree_path.parent / f"{tree_path.name}.subprojects.lock"):
        for pin in needed(pins, kind):
            if pin.path in carried:  # the commit vendors it (a Debian tree): its own copy
                done.append({"name": pin.name, "path": pin.path, "revision": pin.revision,
                             "from": "the tree's own copy"})
                continue
            content, record = store.get(pin)
            _place(tree_path, pin, content)
            done.append({"name": pin.name, "path": pin.path, "revision": pin.revision,
                         "from": record.get("from", "")})
    return done


def _carried(repo_path: Path, commit: str, paths: list[str]) -> set[str]:
    """The subproject directories the commit itself holds as files (a source package that
    vendors them, with its own build files in them). Such a copy is never replaced by the
    store's: the store's raw upstream copy lacks the meson.build that such a tree keeps in
    the directory instead of subprojects/packagefiles/."""
    listing = gitcmd.out(repo_path, "ls-tree", commit, "--", *paths) if paths else ""
    return {line.split("\t", 1)[1] for line in listing.splitlines()
            if "\t" in line and line.split()[1] == "tree"}


def _place(tree_path: Path, pin: Pin, content: Path) -> None:
    dest = inside(tree_path, pin.path)  # a wrap's `directory` is the tree's word: stay in it
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text().strip() == pin.revision:
        return
    shutil.rmtree(dest, ignore_errors=True)  # a gitlink's empty directory, or an old copy
    shutil.copytree(content, dest, symlinks=True)
    if pin.patch_directory:  # meson's overlay: the tree's own build files for the subproject
        overlay = inside(tree_path / "subprojects" / "packagefiles", pin.patch_directory)
        if overlay.is_dir():
            shutil.copytree(overlay, dest, symlinks=True, dirs_exist_ok=True)
    stamp.write_text(pin.revision + "\n")
