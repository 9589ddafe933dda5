"""The incremental-build guard: trust a plan only when it recompiles every changed C file."""

from __future__ import annotations

import os

import pytest

from patchcheck.incremental import IncrementalUnsafe, age_sources, check_incremental_plan
from patchcheck.treelink import OLD_MTIME

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
    from patchcheck.build import Builder, build_key
    from patchcheck.configure import device_options, devices_mak

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
