"""Names that become paths: one safe pattern, and one check that a path stays in its root.

Every name patchcheck turns into a file or directory name is checked here: run ids
(`--run-id`, `--resume RUN`, `--out` of report.merge, nightly and shard runs), the names of
configured builds, and case directories (made from machine types, build names, guest
actions and `-global`s by `slug`). A safe name is a letter or digit followed by letters,
digits, `.`, `_`, `+` or `-`, at most 128 characters (SAFE_NAME): no `/`, no `..`, no
hidden name. `latest` (the link to the newest run) is no run id. A path made from such
names is resolved (symbolic links too) and must stay inside its root: reports_dir or
cache_dir.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from patchcheck.errors import UsageError

MAX_NAME = 128
SAFE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{MAX_NAME - 1}}}")
SAFE_PATTERN = re.compile(r"[A-Za-z0-9._+*?\[\]-]{1,128}")  # a run-id pattern: shard-*
RESERVED_RUN_IDS = frozenset({"latest"})
RULE = ("a letter or digit, then letters, digits, '.', '_', '+' or '-' "
        f"(at most {MAX_NAME} characters)")


def is_safe(name: str) -> bool:
    return bool(SAFE_NAME.fullmatch(name))


def check_name(name: str, what: str) -> str:
    """`name` if it is safe to use as one path component; else a usage error."""
    if not is_safe(name):
        raise UsageError(f"{what} '{name}' is not a valid name: use {RULE}")
    return name


def check_run_id(run_id: str, what: str = "--run-id") -> str:
    check_name(run_id, what)
    if run_id in RESERVED_RUN_IDS:
        raise UsageError(f"{what} '{run_id}' is reserved (reports/{run_id} links to the newest "
                         "run); choose another name")
    return run_id


def check_pattern(pattern: str, what: str) -> str:
    """A shell pattern for run ids under reports_dir (`shard-*`): no `/`, nothing hidden."""
    if not SAFE_PATTERN.fullmatch(pattern) or pattern.startswith("."):
        raise UsageError(f"{what} '{pattern}' is not a valid run-id pattern: use {RULE}, "
                         "with '*', '?' or '[...]'")
    return pattern


def inside(root: Path, *names: str) -> Path:
    """root/names..., once resolved (symbolic links followed) still inside resolved root."""
    path = root.joinpath(*names)
    if not path.resolve().is_relative_to(root.resolve()):
        raise UsageError(f"{path} resolves to {path.resolve()}, outside {root}")
    return path


def run_dir(reports_dir: Path, run_id: str, what: str = "--run-id") -> Path:
    """The directory of run `run_id`: a safe run id, inside reports_dir."""
    return inside(reports_dir, check_run_id(run_id, what))


def slug(text: str) -> str:
    """Any text as a safe name (a case's directory): other characters become '_'; a name too
    long, or starting with neither letter nor digit, is shortened and given a hash."""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text)
    if is_safe(name):
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"x{name[:MAX_NAME - 14]}-{digest}"
