"""The incremental-build guard: trust a plan only when it recompiles every changed C file."""

from __future__ import annotations

import os

import pytest

from patchcheck.build import OLD_MTIME, IncrementalUnsafe, age_sources, check_incremental_plan

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
