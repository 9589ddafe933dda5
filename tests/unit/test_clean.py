"""`invoke clean`: half-written entries of dead writers go, live ones stay; pruning."""

from __future__ import annotations

import fcntl
import os
import time

from patchcheck.commands.clean import STALE_SECONDS, clean, entries, leftovers


def _cache(tmp_path):
    cache = tmp_path / "cache"
    (cache / "builds" / "aaa" / "bin").mkdir(parents=True)
    (cache / "builds" / "aaa" / "bin" / "qemu").write_bytes(b"x" * 1000)
    (cache / "builds" / "aaa.lock").touch()
    (cache / "builds" / ".bbb.tmp").mkdir()
    (cache / "builds" / "bbb.lock").touch()
    (cache / "ccache").mkdir()
    (cache / "ccache" / "f").write_bytes(b"y" * 10)
    return cache


def test_unlocked_half_written_build_is_a_leftover(tmp_path):
    cache = _cache(tmp_path)
    assert leftovers(cache) == [cache / "builds" / ".bbb.tmp"]


def test_a_build_being_written_is_left_alone(tmp_path):
    cache = _cache(tmp_path)
    with open(cache / "builds" / "bbb.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert leftovers(cache) == []


def test_unlockable_leftovers_only_when_stale(tmp_path):
    cache = _cache(tmp_path)
    fetch = cache / "debian" / "bookworm" / ".fetch-123"
    fetch.mkdir(parents=True)
    assert fetch not in leftovers(cache)
    old = time.time() - STALE_SECONDS - 60
    os.utime(fetch, (old, old))
    assert fetch in leftovers(cache)


def test_prune_older_than_keeps_recent_and_ccache(tmp_path):
    cache = _cache(tmp_path)
    (cache / "builds" / "old").mkdir()
    old = time.time() - 10 * 86400
    os.utime(cache / "builds" / "old", (old, old))
    os.utime(cache / "ccache", (old, old))
    out = clean(cache, 5, False, None, log=lambda line: None)
    assert not (cache / "builds" / "old").exists() and (cache / "builds" / "aaa").exists()
    assert (cache / "ccache").exists() and not (cache / "builds" / ".bbb.tmp").exists()
    assert any("old" in r for r in out["removed"])


def test_clean_all_empties_the_cache(tmp_path):
    cache = _cache(tmp_path)
    clean(cache, None, True, None, log=lambda line: None)
    assert [e.area for e in entries(cache)] == []
