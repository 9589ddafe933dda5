"""Files written whole or not at all: under a temporary name, renamed into place. A write
that fails (a full disk: ENOSPC) removes its temporary file and raises, so a reader finds
the previous version of the file or none, never half of one."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


def _temporary(path: Path) -> Path:
    """A name of this process and thread: two writers of one file never share it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def write_whole(path: Path, text: str, mode: int | None = None) -> Path:
    """`text` at `path`, whole or not at all."""
    tmp = _temporary(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def copy_whole(source: Path, path: Path) -> Path:
    """A copy of the file `source` at `path`, whole or not at all."""
    tmp = _temporary(path)
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
