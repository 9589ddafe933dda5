"""Issue 27: a damaged build entry is said in one line and built again (a damaged base's
directory dropped, never used); a build stopped by a full cache is a DiskFull (exit 3), never
a commit that does not build, and leaves nothing behind. A fake runtime compiles."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from patchcheck.build import builder as builder_mod
from patchcheck.build import damage, space
from patchcheck.build.builder import Builder
from patchcheck.build.record import BINARY, RECORD, BuildRecord
from patchcheck.commands import tasks as commands
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.errors import BuildFailed, DiskFull
from patchcheck.exit_codes import CHECK_NO_VERDICT, EXIT_INFRA
from patchcheck.source.specs import GitSources, GitSpec
from patchcheck.tree import prepare as trees
from patchcheck.tree.prepared import PreparedTree

from ..conftest import FAKE_QEMU, Git, make_repo
from .test_build_incremental import CompilingRuntime


def _builder(runtime: Any, cache: Path, log: list[str]) -> Builder:
    return Builder(runtime, cache, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                   log=log.append)


def _tree(tmp_path: Path, git: Git, fix: str) -> PreparedTree:
    origin = tmp_path / "origin"
    if not origin.exists():
        make_repo(FAKE_QEMU, origin)
    cache = tmp_path / "cache"
    return trees.prepare(GitSources(cache).resolve(GitSpec(str(origin), "main")), fix, cache)


def _build(tmp_path: Path, git: Git, log: list[str], fix: str = "none",
           runtime: Any = None) -> BuildRecord:
    return _builder(runtime or CompilingRuntime(), tmp_path / "cache", log).build(
        fix, _tree(tmp_path, git, fix), "bookworm", "img", "sha256:1")


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "builds").iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("how, words", [
    ("not-json", "(build.json is not JSON)"),
    ("empty", "(build.json is not JSON)"),
    ("no-record", "(it has no build.json)"),
    ("lacks", "(build.json lacks binary_sha256)"),
    ("list", "(build.json is not a build record)"),
    ("truncated", "(its binary is not the one built: 3 bytes, sha256 "),
    ("no-binary", f"(its binary {BINARY} is missing)"),
])
def test_a_damaged_entry_is_said_and_built_again(tmp_path: Path, git: Git, how: str,
                                                 words: str) -> None:
    log: list[str] = []
    first = _build(tmp_path, git, log)
    entry = tmp_path / "cache" / "builds" / first.key
    record, binary = entry / RECORD, Path(first.binary)
    data = json.loads(record.read_text())
    damaged = {"not-json": lambda: record.write_text(record.read_text()[:40]),
               "empty": lambda: record.write_text(""),
               "no-record": record.unlink,
               "lacks": lambda: record.write_text(json.dumps(
                   {k: v for k, v in data.items() if k != "binary_sha256"})),
               "list": lambda: record.write_text("[1, 2]"),
               "truncated": lambda: binary.write_bytes(binary.read_bytes()[:3]),
               "no-binary": binary.unlink}
    damaged[how]()
    log.clear()
    again = _build(tmp_path, git, log)
    said = [line for line in log if "is damaged" in line]
    assert len(said) == 1, log
    assert said[0].startswith(f"[none] cache entry {first.key} is damaged {words}")
    assert said[0].endswith("; building it again")
    assert not again.cached and again.binary_sha256 == first.binary_sha256  # rebuilt, whole
    assert damage.examine(entry)[1] == ""
    log.clear()
    assert _build(tmp_path, git, log).cached and not [ln for ln in log if "damaged" in ln]
    assert _leftovers(tmp_path / "cache") == []


def test_an_entry_whose_build_directory_lost_build_ninja_keeps_its_binary(
        tmp_path: Path, git: Git) -> None:
    """Asked for itself: said, its directory dropped, its (intact) binary used; the next fix
    build of that commit finds no base and builds afresh, keeping a directory of its own."""
    log: list[str] = []
    first = _build(tmp_path, git, log)
    entry = tmp_path / "cache" / "builds" / first.key
    (entry / "build" / "build.ninja").unlink()
    log.clear()
    again = _build(tmp_path, git, log)
    assert again.cached and again.binary_sha256 == first.binary_sha256
    assert log[0] == (f"[none] cache entry {first.key} is damaged (its build directory has no "
                      "build.ninja); its binary is intact: dropped that directory, no "
                      "incremental build starts from it")
    assert not (entry / "build").exists() and _leftovers(tmp_path / "cache") == []
    fixed = _build(tmp_path, git, log, "v2")
    assert fixed.incremental_from == "" and (Path(fixed.binary).parents[1] / "build").is_dir()


def test_a_damaged_base_is_said_and_not_used(tmp_path: Path, git: Git) -> None:
    """Met as the base of a fix build: said, not used, its directory dropped; the fix is
    built afresh, and the entry's own binary is still served."""
    log: list[str] = []
    first = _build(tmp_path, git, log)
    entry = tmp_path / "cache" / "builds" / first.key
    (entry / "build" / "build.ninja").unlink()
    log.clear()
    fixed = _build(tmp_path, git, log, "v2")
    assert fixed.incremental_from == "" and not fixed.cached
    assert [line for line in log if "damaged" in line] == [
        f"[none] cache entry {first.key} is damaged (its build directory has no build.ninja); "
        "not used as the base of an incremental build: dropped that directory"]
    assert not (entry / "build").exists()
    log.clear()
    assert _build(tmp_path, git, log).cached and not [ln for ln in log if "damaged" in ln]


class _FullDisk:
    """A runtime whose ninja fails: with `said` as its output, exit 1."""

    def __new__(cls, said: str) -> Any:
        base = CompilingRuntime()
        respond = base.respond

        def failing(spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
            if argv[0] == "ninja" and argv[1] != "-n":
                return 1, said
            return respond(spec, argv)
        base.respond = failing
        return base


NINJA_ENOSPC = ("[812/1930] Compiling C object libqemu-x86_64-softmmu.fa.p/tcg_tcg.c.o\n"
                "FAILED: libqemu-x86_64-softmmu.fa.p/tcg_tcg.c.o\n"
                "/usr/bin/ld: final link failed: No space left on device\n"
                "ninja: build stopped: subcommand failed.")


def test_a_build_stopped_by_a_full_cache_is_disk_full_not_a_failed_build(
        tmp_path: Path, git: Git) -> None:
    log: list[str] = []
    with pytest.raises(DiskFull) as caught:
        _build(tmp_path, git, log, runtime=_FullDisk(NINJA_ENOSPC))
    assert not isinstance(caught.value, BuildFailed)
    assert str(caught.value) == (
        f"no space left on device in the cache ({tmp_path / 'cache'}): the build of none "
        "stopped at `ninja` (the build said 'No space left on device'); free space and run "
        "again")
    builds = tmp_path / "cache" / "builds"
    assert _leftovers(tmp_path / "cache") == [] and not (builds / "failed").exists()
    assert [p.name for p in builds.iterdir() if not p.name.endswith(".lock")] == []
    assert _build(tmp_path, git, log).key  # the same command, once there is room


def test_a_failure_on_a_nearly_full_disk_is_the_disk_s(tmp_path: Path, git: Git,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool that fails without the words: the free space after the failure tells."""
    quiet = "FAILED: hw/pci/pcie.c.o\nninja: build stopped: subcommand failed."
    with pytest.raises(BuildFailed, match="failed at `ninja`"):  # room enough: the commit's
        _build(tmp_path, git, [], runtime=_FullDisk(quiet))
    assert (tmp_path / "cache" / "builds" / "failed").is_dir()
    monkeypatch.setattr(space, "free_bytes", lambda path: 4096)
    with pytest.raises(DiskFull, match=r"stopped at `ninja` \(4 KiB free in "):
        _build(tmp_path, git, [], runtime=_FullDisk(quiet))
    assert _leftovers(tmp_path / "cache") == []


def test_patchcheck_s_own_write_into_a_full_cache_is_disk_full(
        tmp_path: Path, git: Git, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy of a base's directory (or the binary, or build.json) finds no room."""
    _build(tmp_path, git, [])

    def no_room(source: Path, target: Path) -> None:  # as shutil.copytree says it
        target.mkdir()
        (target / "half").write_text("x")
        raise shutil.Error([(str(source / "half"), str(target / "half"),
                             "[Errno 28] No space left on device: 'half'")])
    monkeypatch.setattr(builder_mod, "copy_build_dir", no_room)
    with pytest.raises(DiskFull, match=r"in the cache \(.*\): the build of v2 stopped; free"):
        _build(tmp_path, git, [], "v2")
    assert _leftovers(tmp_path / "cache") == []


def test_space_words_and_free_bytes(tmp_path: Path) -> None:
    assert space.out_of_space("cc1: error: Disk quota exceeded", [tmp_path]) == \
        "the build said 'Disk quota exceeded'"
    assert space.out_of_space("error: expected ';'", [tmp_path], low=0) == ""
    free = space.free_bytes(tmp_path / "not" / "there")  # its nearest existing parent's
    assert free is not None and free > 0


@pytest.mark.parametrize("error, code", [(OSError(errno.ENOSPC, "No space left on device",
                                                  "/r/x"), EXIT_INFRA),
                                         (OSError(errno.EDQUOT, "Disk quota exceeded"),
                                          EXIT_INFRA)])
def test_a_write_refused_for_want_of_space_is_one_line_and_no_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], error: OSError, code: int,
        isolated_env: None) -> None:
    def command(settings: object) -> int:
        raise error
    config = {"patchcheck": {"cache_dir": str(tmp_path / "cache")}}
    assert commands.guarded(command, config) == code
    assert commands.guarded(command, config, no_verdict=CHECK_NO_VERDICT) == CHECK_NO_VERDICT
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("patchcheck: error: no space left on device")
    assert lines[0].endswith(": free space and run again")
    assert not (tmp_path / "cache" / "crashes").exists()  # no traceback: not a bug of ours
