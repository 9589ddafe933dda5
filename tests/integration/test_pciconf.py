"""pciconf and the PDS scenario against the project's own QEMU 7.2 build (`7.2-none`).

QEMU runs the way `invoke matrix` runs it: exec'ed in one long-lived builder container
(patchcheck.run.migrate.Hosts) that mounts a private scratch directory and the build cache
read-only at the same paths, driven through patchcheck.qemu.machine.Machine (which implements
pciconf.Monitor), with the arguments from patchcheck.run.migrate (Scenario.machine_args and the source's
globals_args), paused (-S).

Full migrations are not repeated here: tests/integration/test_matrix.py runs them through
run_matrix (6.0 unpatched -> unpatched fails with the expected error, the `none` action and
7.2 pass, the forced -global brings the failure back). This file checks the register
level underneath: where the capability is, what the slot registers hold before and after
the synthetic guest action, and what QEMU does to the xHCI behind the slot.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import Settings
from patchcheck.engine.docker import DockerRuntime
from patchcheck.engine.runtime import Mount
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import Machine
from patchcheck.qemu.pciconf import PCI_CAP_ID_EXP, PciAddress, PciConfig, find_capability, find_device
from patchcheck.result.model import Case
from patchcheck.run.migrate import globals_args, side
from patchcheck.scenarios.pds.scenario import SCENARIO
from patchcheck.scenarios.pds.slot import (
    ROOT_PORT_ID,
    XHCI_ID,
    SyntheticAction,
    read_slot_state,
)

from ..unit.helpers import expected_destination_error
from .conftest import Builds

pytestmark = pytest.mark.integration

BUILD = "7.2-none"

Start = Callable[..., Machine]


@pytest.fixture(scope="module")
def record(builds: Builds) -> BuildRecord:
    return builds[BUILD]


@pytest.fixture(scope="module")
def qemu_host(runtime: DockerRuntime, settings: Settings) -> Iterator[tuple[Hosts, Path]]:
    """The product's QEMU host container and its scratch dir (short: unix socket paths)."""
    scratch = Path(tempfile.mkdtemp(prefix="pc-"))
    cache_builds = str(settings.cache_dir / "builds")
    hosts = Hosts(runtime, (Mount(str(scratch), str(scratch)),
                            Mount(cache_builds, cache_builds, read_only=True)))
    try:
        yield hosts, scratch
    finally:
        hosts.close()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def start(qemu_host: tuple[Hosts, Path], record: BuildRecord,
          settings: Settings) -> Iterator[Start]:
    """Start a paused QEMU of the build with the PDS topology; shut all down afterwards."""
    hosts, scratch = qemu_host
    started: list[Machine] = []

    def _start(machine: str, *globals_: str) -> Machine:
        case = Case(machine, record.name, record.name, "synthetic", tuple(globals_))
        args = [*SCENARIO.machine_args(case.machine, settings.matrix.ram_mib, settings.matrix.accel),
                *globals_args(SCENARIO, case, "source", side(record)), "-S"]
        rundir = Path(tempfile.mkdtemp(prefix="vm-", dir=scratch))
        qemu = Machine(hosts.get(record.image_id), record.binary, args, rundir,
                       f"vm{len(started)}", timeout=30)
        started.append(qemu)
        qemu.launch()
        return qemu

    try:
        yield _start
    finally:
        for qemu in reversed(started):
            try:
                qemu.shutdown()
            finally:
                log = qemu.log_tail()
                if log:
                    print(f"--- {qemu.name} ({qemu.log_path}):\n{log}")  # shown on failure
                shutil.rmtree(qemu.rundir, ignore_errors=True)


def _walk_bytes(image: bytes, cap_id: int) -> int | None:
    """An independent capability walk over a dumped image."""
    pointer, seen = image[0x34] & 0xFC, set()
    while pointer and pointer not in seen:
        seen.add(pointer)
        if image[pointer] == cap_id:
            return pointer
        pointer = image[pointer + 1] & 0xFC
    return None


def _peripherals(qemu: Machine) -> set[str]:
    return {entry["name"] for entry in qemu.qmp("qom-list", path="/machine/peripheral")}


def test_q35_60_pds_set_at_start_and_cleared_by_the_synthetic_action(start: Start) -> None:
    qemu = start("pc-q35-6.0")
    address = find_device(qemu, ROOT_PORT_ID)
    assert address == PciAddress(0, 0x12, 0)
    cfg = PciConfig(qemu, address)
    image = cfg.dump()
    assert int.from_bytes(image[0:4], "little") == 0x000C1B36  # 1b36:000c pcie-root-port
    cap = find_capability(cfg, PCI_CAP_ID_EXP)
    assert cap == _walk_bytes(image, PCI_CAP_ID_EXP)
    # The model's expected destination error, at the offset measured on this build.
    assert expected_destination_error(cap) == "Bad config data: i=0x6e read: 0 device: 40"

    before = read_slot_state(qemu)
    assert before.cap_offset == cap
    assert before.presence_detected and before.powered_off  # reset: slot off, PDS from plug
    assert {ROOT_PORT_ID, XHCI_ID} <= _peripherals(qemu)

    after = SyntheticAction().perform(qemu)
    assert after.cap_offset == cap
    assert after.slot_control == 0x0700
    assert after.slot_status == 0x0000  # PDS cleared by QEMU's unplug, PDC|CC acked
    assert XHCI_ID not in _peripherals(qemu)  # power-off unplugged the xHCI
    assert qemu.running()


def test_q35_72_pds_not_set(start: Start) -> None:
    qemu = start("pc-q35-7.2")
    before = read_slot_state(qemu)
    assert not before.presence_detected
    after = SyntheticAction().perform(qemu)
    assert after.cap_offset == before.cap_offset
    assert after.slot_control == 0x0700 and not after.presence_detected
    assert XHCI_ID in _peripherals(qemu)  # nothing was unplugged


def test_q35_72_forced_native_hotplug_sets_pds(start: Start) -> None:
    qemu = start("pc-q35-7.2", SCENARIO.force_global)
    assert read_slot_state(qemu).presence_detected
    after = SyntheticAction().perform(qemu)
    assert after.slot_control == 0x0700 and not after.presence_detected
    assert XHCI_ID not in _peripherals(qemu)
