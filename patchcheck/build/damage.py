"""A build's cache entry that is there but damaged, told apart from one that is not there:
what is wrong, in words for one line, and the entry (or its build directory) removed.

An entry is <cache>/builds/<key>/ with build.json, bin/<binary> and, for a full build, the
build directory build/ that later incremental builds copy (their base). It is damaged when
build.json is not JSON or not a whole record, when the binary is missing or its sha256 is
not the recorded one (truncated, overwritten), or, as a base only, when build/ has no
build.ninja (ninja could not run in a copy of it). A damaged record or binary makes the
entry unusable: it is removed and built again. A damaged build directory leaves the binary
usable (its sha256 is checked): only the directory goes, and the next build that needs a
base builds without it (from another base, or afresh, keeping its own directory).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from patchcheck.build.record import RECORD, BuildRecord, sha256_file

BUILD_DIR = "build"
NINJA = "build.ninja"


def examine(directory: Path) -> tuple[BuildRecord | None, str]:
    """The entry's record when it is whole; else None and what is wrong with it ("" when
    there is no entry at all)."""
    if not directory.exists():
        return None, ""
    try:
        data = json.loads((directory / RECORD).read_text())
    except FileNotFoundError:
        return None, f"it has no {RECORD}"
    except OSError as exc:
        return None, f"{RECORD} cannot be read: {exc.strerror}"
    except ValueError:  # UnicodeDecodeError too
        return None, f"{RECORD} is not JSON"
    if not isinstance(data, dict):
        return None, f"{RECORD} is not a build record"
    missing = BuildRecord.missing_fields(data)
    if missing:
        return None, f"{RECORD} lacks {', '.join(missing[:3])}"
    try:
        record = BuildRecord.from_dict(data)
        return (record, "") if not (wrong := binary_damage(record)) else (None, wrong)
    except (TypeError, ValueError, AttributeError) as exc:
        return None, f"{RECORD} is not a build record ({type(exc).__name__})"


def binary_damage(record: BuildRecord) -> str:
    """What is wrong with the binary the record names ("" when it is the one built)."""
    binary = Path(record.binary)
    if not binary.is_file():
        return f"its binary {binary.name} is missing"
    try:
        digest = sha256_file(binary)
    except OSError as exc:
        return f"its binary cannot be read: {exc.strerror}"
    if digest != record.binary_sha256:
        return (f"its binary is not the one built: {binary.stat().st_size} bytes, sha256 "
                f"{digest[:12]}, recorded {record.binary_sha256[:12]}")
    return ""


def base_damage(directory: Path) -> str:
    """What is wrong with the entry's build directory as a base ("" when it has none or it
    is whole)."""
    build = directory / BUILD_DIR
    if build.is_dir() and not (build / NINJA).is_file():
        return f"its build directory has no {NINJA}"
    return ""


def said(name: str, key: str, damage: str, then: str) -> str:
    """The one line that says it."""
    return f"[{name}] cache entry {key} is damaged ({damage}); {then}"


def remove(path: Path) -> None:
    """`path` gone: first renamed aside (at once, so no reader finds half of it), then
    removed."""
    aside = path.with_name(f".{path.name}.damaged.{os.getpid()}")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return
    except OSError:
        aside = path
    shutil.rmtree(aside, ignore_errors=True)
