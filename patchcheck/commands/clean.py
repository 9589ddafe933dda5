"""`invoke clean`: report what the caches hold, prune them, remove leftovers of dead runs.

Leftovers are half-written entries (`.*.tmp`, `.fetch-*`, `.clone-*`) and containers
labelled by patchcheck whose run process is gone (a run killed with SIGKILL cannot clean up
after itself). Containers of a run that is still alive are never touched.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchcheck.engine.runtime import LABEL_PID, LABEL_RUN, OwnContainer, Runtime

AREAS = ("builds", "worktrees", "debian", "git", "guests", "ccache")


@dataclass
class Entry:
    area: str
    path: Path
    size: int
    mtime: float


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def entries(cache: Path) -> list[Entry]:
    found = []
    for area in AREAS:
        base = cache / area
        if not base.is_dir():
            continue
        children = [base] if area == "ccache" else [
            p for p in base.iterdir() if not p.name.endswith(".lock")]
        if area == "debian":
            children = [p for suite in children if suite.is_dir() for p in suite.iterdir()]
        for p in children:
            found.append(Entry(area, p, _size(p), p.stat().st_mtime))
    return found


STALE_SECONDS = 6 * 3600  # a half-written entry without a lock is left alone this long


def _locked(lock: Path) -> bool:
    """Is another process holding this cache entry's lock (i.e. still writing it)?"""
    import fcntl

    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def leftovers(cache: Path, now: float | None = None) -> list[Path]:
    """Half-written entries no live process is writing: an unlocked `.<key>.tmp` next to its
    `<key>.lock`, or an unlockable one (fetch, clone) older than STALE_SECONDS."""
    if not cache.is_dir():
        return []
    now = now or time.time()
    found = []
    for p in cache.rglob(".*"):
        if not (p.name.endswith(".tmp") or p.name.startswith((".fetch-", ".clone-"))):
            continue
        lock = p.with_name(p.name[1:].removesuffix(".tmp") + ".lock")
        if lock.exists():
            if not _locked(lock):
                found.append(p)
        elif now - p.lstat().st_mtime > STALE_SECONDS:
            found.append(p)
    return found


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def dead_run_containers(runtime: Runtime) -> list[OwnContainer]:
    """Containers patchcheck labelled whose run process is gone (never a live run's)."""
    return [c for c in runtime.own_containers()
            if c.labels.get(LABEL_PID, "") and not _alive(c.labels[LABEL_PID])]


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def clean(cache: Path, older_than_days: float | None, everything: bool,
          runtime: Runtime | None, log: Callable[[str], None] = print) -> dict[str, Any]:
    removed: list[str] = []
    for path in leftovers(cache):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(str(path))
    if runtime is not None:
        for c in dead_run_containers(runtime):
            runtime.remove(c.id)
            removed.append(f"container {c.short_id} (run {c.labels.get(LABEL_RUN, '?')})")
    now = time.time()
    kept = []
    for e in entries(cache):
        old = older_than_days is not None and now - e.mtime > older_than_days * 86400
        if everything or (old and e.area != "ccache"):
            if e.area == "worktrees" and e.path.is_dir():
                _drop_worktree(e.path)
            shutil.rmtree(e.path, ignore_errors=True) if e.path.is_dir() else \
                e.path.unlink(missing_ok=True)
            removed.append(f"{e.area}: {e.path.name} ({human(e.size)})")
        else:
            kept.append(e)
    by_area: dict[str, int] = {}
    for e in kept:
        by_area[e.area] = by_area.get(e.area, 0) + e.size
    for line in removed:
        log(f"removed {line}")
    for area in AREAS:
        if area in by_area:
            count = sum(1 for e in kept if e.area == area)
            log(f"{area:10} {count:4} entries {human(by_area[area]):>10}")
    return {"removed": removed, "kept": {a: by_area.get(a, 0) for a in AREAS}}


def _drop_worktree(path: Path) -> None:
    """Tell the owning repository its worktree is gone (the .git file names its gitdir)."""
    try:
        gitdir = Path((path / ".git").read_text().split(":", 1)[1].strip())
        shutil.rmtree(gitdir, ignore_errors=True)
    except (OSError, IndexError):
        pass



