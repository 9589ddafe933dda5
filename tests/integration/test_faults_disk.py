"""Issue 27: a full disk and damaged cache entries, against the real engine and QEMU.

The full file systems are small tmpfs mounts (root only), unmounted at the end. No cold QEMU
build: the cache on tmpfs holds a copy of the session's 7.2-none entry (the base of an
incremental build of a fix no build has seen) and links to the session's sources; the
damaged entries are such fix builds, made for the test in the session's cache."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchcheck.build.record import BINARY, RECORD

from .conftest import PROJECT, invoke
from .test_reliability import _build_of_a_new_fix

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: root only")

MIB = 1 << 20
SHARED = ("debian", "git", "worktrees", "subprojects", "guests", "packaged")


@contextlib.contextmanager
def _tmpfs(path: Path, size: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def _remount(path: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def _du(path: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) + path.lstat().st_blocks * 512


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("patchcheck: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _cache_on_tmpfs(mount: Path, session: Path, entry: Path) -> Path:
    """A cache on the tmpfs `mount`: a copy of the build `entry` (its record's binary path
    made local), an empty ccache, and the session's sources and trees linked."""
    for name in SHARED:
        (mount / name).symlink_to(session / name)
    (mount / "ccache").mkdir()
    copy = mount / "builds" / entry.name
    shutil.copytree(entry, copy, symlinks=True)
    data = json.loads((copy / RECORD).read_text())
    (copy / RECORD).write_text(json.dumps({**data, "binary": str(copy / "bin" / BINARY)}))
    return copy


def _build_filling_the_disk_at_ninja(args: list[str], env: dict[str, str], mount: Path
                                     ) -> tuple[subprocess.CompletedProcess[str], int]:
    """The build, with the tmpfs filled once patchcheck starts ninja (its copy of the base's
    directory is made by then): what ninja, the compiler and the linker write finds no
    room. The old binary in the work directory is held open, so the linker's unlink of it
    frees nothing. The filler's size, and the build's outcome."""
    proc = subprocess.Popen(args, cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err, held, filled = [], [], 0
    for line in proc.stderr:
        err.append(line)
        if "$ ninja -j" in line and not filled:
            held = [open(p, "rb") for p in mount.glob(f"builds/.*.tmp/build/{BINARY}")]
            with open(mount / "filler", "wb") as f:
                free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
                os.posix_fallocate(f.fileno(), 0, free)
                filled = free
    out = proc.stdout.read() if proc.stdout else ""
    proc.wait(timeout=60)
    for f in held:
        f.close()
    return subprocess.CompletedProcess(args, proc.returncode, out, "".join(err)), filled


def test_cache_full_during_a_build_is_exit_3_and_the_same_command_then_builds(
        builds, settings, tmp_path):
    """Full in patchcheck's copy of the base's build directory, then in the container's
    ninja (compiler, linker): each one line, exit 3 (never "failed to build"), no work
    directory, no entry, no failed log; with room, the same command builds."""
    entry = Path(builds["7.2-none"].binary).parents[1]
    size = _du(entry)
    args = _build_of_a_new_fix(tmp_path)
    with _tmpfs(tmp_path / "cache", size + 4 * MIB) as mount:
        _cache_on_tmpfs(mount, settings.cache_dir, entry)
        env = {**os.environ, "INVOKE_PATCHCHECK_CACHE_DIR": str(mount)}
        first = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True,
                               timeout=600)
        line = _one_error_line(first.stderr)
        assert first.returncode == 3, first.stderr[-2000:]
        assert line.startswith(f"patchcheck: error: no space left on device in the cache "
                               f"({mount}): the build of ") and "stopped;" in line, line
        assert "failed at" not in first.stderr
        _nothing_left(mount, entry.name)

        _remount(mount, 2 * size + 64 * MIB)
        second, filled = _build_filling_the_disk_at_ninja(args, env, mount)
        line = _one_error_line(second.stderr)
        assert filled and second.returncode == 3, second.stderr[-3000:]
        # the compiler, under ccache, may fail without a word: the free space tells then
        assert "stopped at `ninja` (the build said 'No space left on device')" in line or \
            re.search(r"stopped at `ninja` \(\d+ KiB free in ", line), second.stderr[-3000:]
        assert "failed at" not in second.stderr and "FAILED: " in second.stderr
        (mount / "filler").unlink()
        _nothing_left(mount, entry.name)

        again = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True,
                               timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
        binary = Path(again.stdout.strip().splitlines()[-1])
        assert binary.is_file() and binary.is_relative_to(mount)


def _nothing_left(mount: Path, base: str) -> None:
    """Only the base's entry (whole) and the locks: no work directory, no failed log."""
    left = sorted(p.name for p in (mount / "builds").iterdir() if not p.name.endswith(".lock"))
    assert left == [base], left
    assert (mount / "builds" / base / "build" / "build.ninja").is_file()


def test_reports_dir_full_during_a_run_is_exit_3_with_whole_files(builds, tmp_path):
    """The reports' tmpfs fills after a few cases: one line, exit 3, every file there whole
    (each case's result.json is JSON, no temporary file); with room, the same command
    runs to its verdict."""
    builds["7.2-none"], builds["7.2-v2"]
    command = ["matrix", "--builds", "7.2-none,7.2-v2", "--machines", "6.0..6.1", "--guest",
               "synthetic,none", "--jobs", "2"]
    with _tmpfs(tmp_path / "reports", 96 * 1024) as reports:
        env = {"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports), "CI": "true"}
        full = invoke(*command, env=env, timeout=600)
        line = _one_error_line(full.stderr)
        assert full.returncode == 3, full.stderr[-3000:]
        assert line.startswith("patchcheck: error: no space left on device in the reports "
                               f"directory ({reports}/"), line
        assert not [p for p in reports.rglob(".*") if p.name != ".latest" and
                    p.name.endswith(".tmp")], list(reports.rglob(".*"))
        done = list(reports.glob("*/cases/*/result.json"))
        assert all(json.loads(p.read_text())["observed"] for p in done)
        for path in reports.glob("*/results.json"):
            assert json.loads(path.read_text())["partial"] is True
        _remount(reports, 32 * MIB)
        again = invoke(*command, env=env, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        run_dir = Path([ln for ln in again.stdout.splitlines()
                        if ln.startswith("reports: ")][-1].removeprefix("reports: "))
        assert json.loads((run_dir / "results.json").read_text())["partial"] is False


def _build(args: list[str], env: dict[str, str] | None = None
           ) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done, Path(done.stdout.strip().splitlines()[-1])


def test_a_damaged_entry_is_said_in_one_line_and_built_again(builds, tmp_path):
    """A fix build of the test's own (incremental, in the session's cache), damaged twice:
    build.json cut short, then the binary truncated. Each time the same command says so in
    one line and builds it again; then it is cached, and nothing is said."""
    builds["7.2-none"]
    args = _build_of_a_new_fix(tmp_path)
    _, binary = _build(args)
    entry = binary.parents[1]
    for damage, words in (
            (lambda: (entry / RECORD).write_text((entry / RECORD).read_text()[:100]),
             "(build.json is not JSON)"),
            (lambda: binary.write_bytes(binary.read_bytes()[: 1 << 20]),
             "(its binary is not the one built: 1048576 bytes, sha256 ")):
        damage()
        again, rebuilt = _build(args)
        said = [ln for ln in again.stderr.splitlines() if "is damaged" in ln]
        assert len(said) == 1 and f"] cache entry {entry.name} is damaged {words}" in said[0] \
            and said[0].endswith("; building it again"), again.stderr[-2000:]
        assert "built:" in again.stderr and rebuilt == binary
        assert binary.stat().st_size > 1 << 20 and json.loads((entry / RECORD).read_text())
    third, _ = _build(args)
    assert "cached:" in third.stderr and "is damaged" not in third.stderr


def test_a_build_directory_without_build_ninja_is_said_and_dropped(builds, settings,
                                                                   tmp_path):
    """The 7.2-none entry (a full build: its build directory is the base of fix builds),
    in a cache of the test's own (hard links of the session's entry, its sources linked),
    loses build.ninja: asked for, it is said in one line, its directory is dropped and its
    binary (intact: sha256) is served; nothing else of the entry changes."""
    entry = Path(builds["7.2-none"].binary).parents[1]
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in SHARED:
        (cache / name).symlink_to(settings.cache_dir / name)
    copy = cache / "builds" / entry.name
    shutil.copytree(entry, copy, copy_function=os.link)  # only unlinked below, never written
    data = json.loads((copy / RECORD).read_text())
    (copy / RECORD).unlink()
    (copy / RECORD).write_text(json.dumps({**data, "binary": str(copy / "bin" / BINARY)}))
    (copy / "build" / "build.ninja").unlink()
    env = {**os.environ, "INVOKE_PATCHCHECK_CACHE_DIR": str(cache)}
    done, binary = _build([sys.executable, "-m", "invoke", "build", "--source",
                           "debian:bookworm"], env)
    said = [ln for ln in done.stderr.splitlines() if "is damaged" in ln]
    assert said == [f"[debian:bookworm/none] cache entry {entry.name} is damaged (its build "
                    "directory has no build.ninja); its binary is intact: dropped that "
                    "directory, no incremental build starts from it"], done.stderr[-2000:]
    assert "cached:" in done.stderr and binary == copy / "bin" / BINARY
    assert sorted(p.name for p in copy.iterdir()) == ["bin", "build.json", "build.log"]
    assert (entry / "build" / "build.ninja").is_file()  # the session's entry is untouched
