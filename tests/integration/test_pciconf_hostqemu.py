"""pciconf and the PDS scenario against the host's QEMU (skipped when it is not installed).

Measured with Debian bookworm's QEMU 7.2: each QEMU starts in ~0.1 s, a 256-byte
config dump takes ~0.08 s, a migration of 128 MiB ~0.03 s; the whole file runs in ~2 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from qemu.qmp.legacy import QEMUMonitorProtocol

from patchcheck.pciconf import PCI_CAP_ID_EXP, PciAddress, PciConfig, find_capability, find_device
from patchcheck.scenarios.pds import (
    ROOT_PORT_ID,
    GuestAction,
    NoAction,
    SyntheticAction,
    expected_destination_error,
    expected_to_fail,
    force_native_hotplug_args,
    qemu_args,
    read_slot_state,
)

QEMU = "/usr/bin/qemu-system-x86_64"
FIRMWARE_DIRS = ("/usr/share/qemu", "/usr/share/seabios")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.access(QEMU, os.X_OK), reason=f"{QEMU} not installed"),
]


class HostQemu:
    """A paused host QEMU with the PDS topology and a QMP monitor (implements Monitor)."""

    def __init__(self, machine: str, extra: list[str], incoming: str | None, base: str) -> None:
        sock = base + ".qmp"  # unix socket paths are limited to 107 bytes
        self.stderr_path = base + ".stderr"
        self._qmp = QEMUMonitorProtocol(sock, server=True)  # listens now; QEMU connects
        self._qmp.settimeout(10)
        argv = [QEMU, "-S", "-nodefaults", "-machine", machine, "-accel", "tcg"]
        argv += ["-display", "none", *qemu_args(128), *extra]
        for directory in FIRMWARE_DIRS:
            if os.path.isdir(directory):
                argv += ["-L", directory]
        argv += ["-chardev", f"socket,id=mon,path={sock}", "-mon", "chardev=mon,mode=control"]
        if incoming:
            argv += ["-incoming", incoming]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        try:
            self._qmp.accept(timeout=10)
        except Exception as exc:
            self.close()
            raise RuntimeError(f"QEMU did not connect to QMP: {self.stderr()}") from exc

    def hmp(self, command: str) -> str:
        result = self._qmp.cmd("human-monitor-command", **{"command-line": command})
        assert isinstance(result, str)
        return result

    def qmp(self, command: str, **args: object) -> Any:
        return self._qmp.cmd(command, **args)

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._qmp.cmd("quit")
            except Exception:
                pass  # the connection may drop before the reply
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            self._qmp.close()  # raises EOFError when QEMU hung up first
        except Exception:
            pass


Start = Callable[..., HostQemu]


@pytest.fixture
def start() -> Iterator[Start]:
    workdir = tempfile.mkdtemp(prefix="pcq-")  # not tmp_path: keep socket paths short
    started: list[HostQemu] = []

    def _start(machine: str, *extra: str, incoming: str | None = None) -> HostQemu:
        base = os.path.join(workdir, f"vm{len(started)}")
        started.append(HostQemu(machine, list(extra), incoming, base))
        return started[-1]

    yield _start
    for qemu in reversed(started):
        qemu.close()
    shutil.rmtree(workdir, ignore_errors=True)


def _walk_bytes(image: bytes, cap_id: int) -> int | None:
    """An independent capability walk over a dumped image."""
    pointer, seen = image[0x34] & 0xFC, set()
    while pointer and pointer not in seen:
        seen.add(pointer)
        if image[pointer] == cap_id:
            return pointer
        pointer = image[pointer + 1] & 0xFC
    return None


def _peripherals(qemu: HostQemu) -> set[str]:
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

    before = read_slot_state(qemu)
    assert before.cap_offset == cap
    assert before.presence_detected and before.powered_off  # reset: slot off, PDS from plug
    assert {ROOT_PORT_ID, "nex-usb-xhci0"} <= _peripherals(qemu)

    after = SyntheticAction().perform(qemu)
    assert after.cap_offset == cap
    assert after.slot_control == 0x0700
    assert after.slot_status == 0x0000  # PDS cleared by QEMU's unplug, PDC|CC acked
    assert "nex-usb-xhci0" not in _peripherals(qemu)  # power-off unplugged the xHCI


def test_q35_72_pds_not_set(start: Start) -> None:
    qemu = start("pc-q35-7.2")
    before = read_slot_state(qemu)
    assert not before.presence_detected
    after = SyntheticAction().perform(qemu)
    assert after.cap_offset == before.cap_offset
    assert after.slot_control == 0x0700 and not after.presence_detected
    assert "nex-usb-xhci0" in _peripherals(qemu)  # nothing was unplugged


def test_q35_72_forced_native_hotplug_sets_pds(start: Start) -> None:
    qemu = start("pc-q35-7.2", *force_native_hotplug_args())
    assert read_slot_state(qemu).presence_detected
    assert not SyntheticAction().perform(qemu).presence_detected


def _destination_verdict(dst: HostQemu, timeout: float = 30.0) -> bool:
    """True if the destination loaded the stream; decided on the destination only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dst.proc.poll() is not None:
            return False
        try:
            status = dst.qmp("query-migrate").get("status")
        except Exception:
            status = None  # QMP gone: the process is exiting
        if status in ("completed", "failed"):
            return status == "completed" and dst.proc.poll() is None
        time.sleep(0.02)
    raise AssertionError(f"no destination verdict within {timeout} s: {dst.stderr()}")


@pytest.mark.parametrize("action", [SyntheticAction(), NoAction()], ids=lambda a: a.name)
def test_q35_60_migration_unpatched_to_unpatched(start: Start, action: GuestAction) -> None:
    src = start("pc-q35-6.0")
    uri = "unix:" + os.path.join(os.path.dirname(src.stderr_path), f"mig-{action.name}.sock")
    dst = start("pc-q35-6.0", incoming=uri)
    state = action.perform(src)
    src.qmp("migrate", uri=uri)
    passed = _destination_verdict(dst)
    assert passed is not expected_to_fail("pc-q35-6.0", False, False, action.powers_off_slot)
    error = expected_destination_error(state.cap_offset)
    assert error == "Bad config data: i=0x6e read: 0 device: 40"
    if passed:
        assert "Bad config data" not in dst.stderr()
    else:
        assert dst.proc.wait(timeout=10) != 0
        assert error in dst.stderr()
