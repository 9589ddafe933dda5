"""A build stopped by a full file system, told apart from a commit that does not build.

The build container's compiler, meson, ninja and ccache write into the entry's work
directory and the compiler cache, both in patchcheck's cache: when one of them finds no
space it fails as a broken commit would (exit 1). What tells them apart: the step's output
says so ("No space left on device", or "Disk quota exceeded": strerror of ENOSPC and
EDQUOT, as every one of those tools prints it), or after the failure the file system holds
less than LOW bytes (a tool that said nothing, or said it in words of its own).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

WORDS = ("No space left on device", "Disk quota exceeded")
LOW = 32 << 20  # a build of QEMU never starts with less; a failure with less is the disk's


def free_bytes(path: Path) -> int | None:
    """What the file system of `path` (or of its nearest existing parent) has free for an
    unprivileged writer; None when it cannot be told."""
    for candidate in (path, *path.parents):
        try:
            stat = os.statvfs(candidate)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def out_of_space(output: str, directories: Sequence[Path], low: int = LOW) -> str:
    """Why a failed step's failure is the disk's, in words ("" when nothing says so)."""
    for words in WORDS:
        if words in output:
            return f"the build said '{words}'"
    for directory in directories:
        free = free_bytes(directory)
        if free is not None and free < low:
            return f"{free >> 10} KiB free in {directory}"
    return ""
