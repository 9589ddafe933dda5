"""The incremental-build guard: trust a plan only when it recompiles every changed C file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from patchcheck.build.builder import Builder
from patchcheck.build.incremental import (
    IncrementalUnsafe,
    age_sources,
    changed_files,
    check_incremental_plan,
)
from patchcheck.build.record import BINARY, BuildRecord
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.source.specs import GitSources, GitSpec
from patchcheck.tree import prepare as trees
from patchcheck.tree.link import OLD_MTIME
from patchcheck.tree.prepared import PreparedTree

from ..conftest import FAKE_QEMU, Git, make_repo

PLAN = """ninja explain: output libcommon.fa.p/hw_pci_pcie.c.o older than most recent input
[1/3] Compiling C object libcommon.fa.p/hw_pci_pcie.c.o
[2/3] Compiling C object libcommon.fa.p/softmmu_vl.c.o
[3/3] Linking target qemu-system-x86_64
"""


def test_plan_recompiling_the_changed_file_is_trusted():
    compiled = check_incremental_plan(PLAN, ["hw/pci/pcie.c"])
    assert compiled == ["libcommon.fa.p/hw_pci_pcie.c.o", "libcommon.fa.p/softmmu_vl.c.o"]


def test_plan_missing_the_changed_file_is_not_trusted():
    stale = "[1/1] Linking target qemu-system-x86_64\n"
    with pytest.raises(IncrementalUnsafe, match="hw/pci/pcie.c"):
        check_incremental_plan(stale, ["hw/pci/pcie.c"])


def test_plan_rebuilding_everything_is_not_trusted():
    plan = "".join(f"[{i}/99] Compiling C object lib.p/hw_pci_pcie{i}.c.o\n" for i in range(99))
    plan += "[99/99] Compiling C object libcommon.fa.p/hw_pci_pcie.c.o\n"
    with pytest.raises(IncrementalUnsafe, match="recompile"):
        check_incremental_plan(plan, ["hw/pci/pcie.c"])


def test_change_without_c_files_is_built_from_scratch():
    with pytest.raises(IncrementalUnsafe, match="no C file"):
        check_incremental_plan(PLAN, ["docs/index.rst"])


def test_age_sources_makes_only_changed_files_new(tmp_path):
    (tmp_path / "hw" / "pci").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    for name in ("hw/pci/pcie.c", "hw/pci/pci.c", ".git/index"):
        (tmp_path / name).write_text("x")
    age_sources(tmp_path, ["hw/pci/pcie.c"])
    assert os.stat(tmp_path / "hw/pci/pci.c").st_mtime == OLD_MTIME
    assert os.stat(tmp_path / "hw/pci/pcie.c").st_mtime > OLD_MTIME + 10**8
    assert os.stat(tmp_path / ".git/index").st_mtime > OLD_MTIME + 10**8  # git's own files untouched


def test_minimal_device_list_is_part_of_the_build_key(tmp_path):
    from patchcheck.build.builder import Builder, build_key
    from patchcheck.build.configure import device_options, devices_mak

    full = Builder(None, tmp_path, ["--disable-docs"])
    minimal = Builder(None, tmp_path, ["--disable-docs"], devices=["CONFIG_Q35=y"])
    assert full._keyed != minimal._keyed
    assert build_key("t", full._keyed, "i") != build_key("t", minimal._keyed, "i")
    assert device_options() == ["--without-default-devices",
                                "--with-devices-x86_64=../../../../build/patchcheck-devices"]
    # configure resolves NAME under /src/configs/devices/x86_64-softmmu/: four levels up is /
    assert os.path.normpath("/src/configs/devices/x86_64-softmmu/" + device_options()[1]
                            .split("=", 1)[1] + ".mak") == "/build/patchcheck-devices.mak"
    assert devices_mak(["CONFIG_Q35=y", "CONFIG_PCIE_PORT=y"]).splitlines()[1:] == [
        "CONFIG_Q35=y", "CONFIG_PCIE_PORT=y"]


# --- a cache shared by two clones (issue 25) --------------------------------------------

class CompilingRuntime:
    """Builds as ninja would, as far as the Builder can tell: configure writes build.ninja,
    `ninja -n` plans pcie.c, ninja writes a binary that is a function of the tree's pcie.c
    (so a build with another fix is another binary, and an incremental build and one from
    scratch of the same tree are the same binary)."""

    def __new__(cls) -> Any:
        from ..fakes import FakeRuntime

        class Runtime(FakeRuntime):
            def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
                mounts = {m.target: Path(m.source) for m in spec.mounts}
                if argv[-1] == "--help":
                    return 0, HELP_72
                if argv[0].endswith("/configure"):
                    (mounts["/build"] / "build.ninja").write_text("# configured\n")
                elif argv[:2] == ["ninja", "-n"]:
                    return 0, PLAN
                elif argv[0] == "ninja":
                    pcie = (mounts["/src"] / "hw" / "pci" / "pcie.c").read_bytes()
                    digest = hashlib.sha256(pcie).hexdigest()
                    (mounts["/build"] / BINARY).write_text(f"qemu built from {digest}\n")
                elif argv[-2:] == ["-machine", "help"]:
                    return 0, "pc-q35-7.2  Standard PC (Q35 + ICH9, 2009)\n"
                return 0, ""

        return Runtime()


HELP_72 = (FAKE_QEMU.parent / "configure-help" / "qemu-7.2.txt").read_text()


def _builder(runtime: Any, cache: Path, log: list[str]) -> Builder:
    return Builder(runtime, cache, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                   log=log.append)


def _clones(tmp_path: Path, git: Git) -> tuple[Path, Path]:
    origin = tmp_path / "origin"
    make_repo(FAKE_QEMU, origin)
    for name in ("first", "second"):
        git(tmp_path, "clone", "-q", str(origin), str(tmp_path / name))
    return tmp_path / "first", tmp_path / "second"


def _first_clones_fix_build(tmp_path: Path, git: Git, runtime: Any, log: list[str]
                            ) -> tuple[Path, BuildRecord, PreparedTree]:
    """The cache after the first clone's build with v2 (kept: a full build), and the second
    clone's tree of the same commit without the fix, whose repository lacks that build's tree
    (v2 is a commit of the first clone's mirror alone)."""
    first, second = _clones(tmp_path, git)
    cache = tmp_path / "cache"
    gs = GitSources(cache)
    one = trees.prepare(gs.resolve(GitSpec(str(first), "main")), "v2", cache)
    fixed = _builder(runtime, cache, log).build("with", one, "bookworm", "img", "sha256:1")
    assert fixed.incremental_from == "" and (cache / "builds" / fixed.key / "build").is_dir()
    two = gs.resolve(GitSpec(str(second), "main"))
    assert two.repo != one.source.repo and two.commit == one.source.commit
    without = trees.prepare(two, "none", cache)
    assert not _git_ok(without.path, "cat-file", "-e", fixed.tree_id)  # not in its mirror
    return cache, fixed, without


def test_a_base_from_another_clones_mirror_is_read_there(tmp_path: Path, git: Git) -> None:
    """Two clones of one repository share the cache: the first's fix build is the second's
    base, its tree read from the first clone's mirror (nothing copied); the binary is the
    one an empty cache gives, and there is no exception."""
    runtime, log = CompilingRuntime(), []
    cache, fixed, without = _first_clones_fix_build(tmp_path, git, runtime, log)
    assert changed_files(without, fixed.tree_id) == ["hw/pci/pcie.c"]
    builder = _builder(runtime, cache, log)
    base = builder.incremental_base(fixed.family, fixed.lineage, without)
    assert base is not None and base.key == fixed.key
    record = builder.build("without", without, "bookworm", "img", "sha256:1")
    assert record.incremental_from == fixed.key and record.compiled
    assert not [line for line in log if "not trusted" in line], log
    alone = _builder(runtime, tmp_path / "empty-cache", []).build(
        "without", without, "bookworm", "img", "sha256:1")
    assert record.binary_sha256 == alone.binary_sha256 != fixed.binary_sha256
    assert not _git_ok(without.path, "cat-file", "-e", fixed.tree_id)  # still not copied


def test_a_base_whose_tree_no_repository_has_is_no_base(tmp_path: Path, git: Git) -> None:
    """The first clone's prepared tree is gone (and with it the only pointer to its
    mirror): its build is no base for the second clone, which builds as with an empty
    cache, without an exception."""
    runtime, log = CompilingRuntime(), []
    cache, fixed, without = _first_clones_fix_build(tmp_path, git, runtime, log)
    for gone in cache.glob(f"worktrees/{fixed.commit[:16]}-*"):
        if gone.is_dir() and gone != without.path:
            shutil.rmtree(gone)
    assert [p for p in cache.glob("worktrees/*/.git") if "/first-" in p.read_text()] == []
    with pytest.raises(IncrementalUnsafe, match="cannot be compared"):
        changed_files(without, fixed.tree_id)  # what the build would have run into
    builder = _builder(runtime, cache, log)
    assert builder.incremental_base(fixed.family, fixed.lineage, without) is None
    record = builder.build("without", without, "bookworm", "img", "sha256:1")
    assert record.incremental_from == "" and record.family == fixed.family
    assert not [line for line in log if "not trusted" in line], log
    alone = _builder(runtime, tmp_path / "empty-cache", []).build(
        "without", without, "bookworm", "img", "sha256:1")
    assert record.binary_sha256 == alone.binary_sha256 != fixed.binary_sha256
    # the second clone's own build of the commit is its next fix build's base
    v1 = trees.prepare(GitSources(cache).resolve(GitSpec(str(tmp_path / "second"), "main")),
                       "v1", cache)
    assert builder.incremental_base(fixed.family, fixed.lineage, v1).key == record.key
    built = builder.build("v1", v1, "bookworm", "img", "sha256:1")
    assert built.incremental_from == record.key and built.compiled


def test_a_base_from_another_mirror_whose_tree_is_here_is_a_base(tmp_path: Path,
                                                                 git: Git) -> None:
    first, second = _clones(tmp_path, git)
    cache, runtime, log = tmp_path / "cache", CompilingRuntime(), []
    gs = GitSources(cache)
    plain = trees.prepare(gs.resolve(GitSpec(str(first), "main")), "none", cache)
    base = _builder(runtime, cache, log).build("without", plain, "bookworm", "img", "sha256:1")
    fixed = trees.prepare(gs.resolve(GitSpec(str(second), "main")), "v2", cache)
    assert _git_ok(fixed.path, "cat-file", "-e", base.tree_id)  # the commit's own tree
    record = _builder(runtime, cache, log).build("with", fixed, "bookworm", "img", "sha256:1")
    assert record.incremental_from == base.key


def _git_ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True,
                          check=False).returncode == 0
