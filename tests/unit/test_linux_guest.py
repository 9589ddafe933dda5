"""The Linux guest's pure parts: init script, console parsing, the action against fakes,
the image cache with a fake container runtime, and the --accel decision.

The init script's functions run here under the host's /bin/sh on a fake config space;
the whole script runs in the real guest in tests/integration/test_linux_guest.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from patchcheck.config.settings import MatrixSettings, Settings
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.errors import InfraError, UsageError
from patchcheck.guests import image as guest_image
from patchcheck.guests import linux
from patchcheck.guests.action import Action
from patchcheck.guests.image import INIT_SCRIPT, GuestError, GuestImage, ensure_image, image_key
from patchcheck.guests.linux import (
    HEARTBEAT_MARKER,
    KERNEL_APPEND,
    READY_MARKER,
    GuestSlot,
    Readiness,
    console_path,
    heartbeats,
    parse_ready,
)
from patchcheck.result.model import Side
from patchcheck.run import accel
from patchcheck.scenarios.pds.linux import GuestSlotState
from patchcheck.scenarios.pds.linux import PdsLinuxAction as LinuxAction
from patchcheck.scenarios.pds.scenario import SCENARIO

from .. import fakes
from ..fakes import ROOT_PORT_Q35_60, SLTSTA_W1C, PortIoMonitor


def _side(has_fix: bool) -> Side:
    return Side("b", "7.2.0", "v2" if has_fix else "none", "", has_fix, "/qemu")


# A source console as the guest printed it on pc-q35-6.0 (QEMU 7.2, TCG), trimmed.
CONSOLE_Q35_60 = """\
PATCHCHECK-READY settled=yes uptime=3.94 slots=0000:00:12.0:ctl=0x0771:sta=0x0000
PATCHCHECK-KLOG [    1.128584] pcieport 0000:00:12.0: pciehp: Slot #0 AttnBtn+ PwrCtrl+
PATCHCHECK-KLOG [    1.130306] pcieport 0000:00:12.0: pciehp: Slot(0): Card present
PATCHCHECK-KLOG [    2.843944] pcieport 0000:00:12.0: pciehp: Slot(0): No device found
PATCHCHECK-HEARTBEAT 1 uptime=4.01
PATCHCHECK-HEARTBEAT 2 uptime=5.02
[    5.500000] some kernel warning PATCHCHECK-HEARTBEAT 3 uptime=6.03
"""
CONSOLE_Q35_72 = "PATCHCHECK-READY settled=yes uptime=2.94 slots=none\nPATCHCHECK-HEARTBEAT 1 uptime=2.98\n"


# --- the init script ---------------------------------------------------------------------------


def _functions() -> str:
    text = INIT_SCRIPT.read_text()
    start = text.index("# --- functions")
    end = text.index("# --- end of functions ---")
    return text[start:end]


def _sh(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script, "sh", *args], capture_output=True, text=True,
                          check=False, timeout=30)


def test_init_script_is_valid_shell_and_a_busybox_init() -> None:
    text = INIT_SCRIPT.read_text()
    assert text.startswith("#!/bin/busybox sh\n")
    assert _sh(f"set -n\n{text}").returncode == 0  # parses (POSIX sh, as busybox ash does)
    for needed in ("mount -t proc proc /proc", "mount -t sysfs sysfs /sys",
                   "mount -t devtmpfs devtmpfs /dev", "exec </dev/console >/dev/console 2>&1",
                   "/sys/bus/pci_express/drivers/pciehp/"):
        assert needed in text
    assert f'echo "{READY_MARKER} settled=$ok' in text
    # heartbeats through the kernel log (its console output polls the UART, no tty wait)
    assert f'echo "<2>{HEARTBEAT_MARKER} $n uptime=$up" >/dev/kmsg' in text


def test_init_script_waits_on_the_slot_registers_not_on_fixed_sleeps() -> None:
    text = INIT_SCRIPT.read_text()
    before_ready = text[: text.index(READY_MARKER + " settled=$ok")]
    # The only pause before readiness is the 0.1 s poll of the registers; no sleep process.
    assert re.findall(r"^\s*pause\s+(\S+)$", before_ready, re.M) == ["0.1"]
    after_ready = text[text.index(READY_MARKER + " settled=$ok"):]
    assert re.findall(r"^\s*pause\s+(\S+)$", after_ready, re.M) == ["0.1"]
    loop = text[text.rindex("while :; do"):]  # the heartbeat loop
    assert not re.search(r"\b(u?sleep)\b|\$\([^(]", loop)  # no process per heartbeat


def test_pause_waits_without_a_process(tmp_path: Path) -> None:
    fifo = tmp_path / "pause"
    script = _functions() + f"""
mkfifo {fifo} && exec 3<>{fifo}
start=$(date +%s%N); pause 0.2; end=$(date +%s%N)
echo $(( (end - start) / 1000000 ))
"""
    # bash: dash has no `read -t`; the guest's busybox ash takes fractions as bash does (the
    # integration test checks the heartbeats' spacing on a real console)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 150 <= int(result.stdout) < 1000


@pytest.mark.parametrize(("sltcap", "ctl", "sta", "settled"), [
    (0x7B, 0x07C0, 0x0040, False),  # reset: slot off, PDS from the cold plug: pciehp will act
    (0x7B, 0x07F1, 0x0040, False),  # pciehp bound, interrupts on, not yet powered on
    (0x7B, 0x02F1, 0x0040, False),  # powered on, indicator blinking: waiting for a link
    (0x7B, 0x06F1, 0x0040, False),  # powered off, indicator still blinking (pciehp sleeps 1 s)
    (0x7B, 0x0771, 0x0018, False),  # off, PDS cleared by QEMU; PDC|CC not acknowledged yet
    (0x7B, 0x0771, 0x0000, True),  # off and empty, nothing pending: what pc-q35-6.0 ends in
    (0x7B, 0x07C0, 0x0000, True),  # pc-q35-7.2 with pciehp bound: empty, off, untouched
    (0x7B, 0x01F1, 0x0040, True),  # a real card: powered on, indicator on
    (0x7B, 0x01F1, 0x0000, False),  # on but empty: pciehp would power it off
    (0x79, 0x01F1, 0x0000, True),  # no power controller: only pending events count
    (0x79, 0x01F1, 0x0100, False),  # ... DLLSC pending
])
def test_settled_predicate(sltcap: int, ctl: int, sta: int, settled: bool) -> None:
    result = _sh(_functions() + '\nsettled "$1" "$2" "$3"', str(sltcap), str(ctl), str(sta))
    assert result.returncode == (0 if settled else 1), result.stderr


def test_rd_and_expcap_on_a_fake_config_space(tmp_path: Path) -> None:
    device = tmp_path / "0000:00:12.0"
    device.mkdir()
    (device / "config").write_bytes(ROOT_PORT_Q35_60)
    script = _functions() + f'\npci={tmp_path}\n' + r'''
cap=$(expcap 0000:00:12.0) || exit 3
echo "$cap $(rd 0000:00:12.0 $((cap + 24)) 2) $(rd 0000:00:12.0 $((cap + 26)) 2) $(rd 0000:00:12.0 0 4)"
echo "$(slot 0000:00:12.0 "$cap")"
'''
    result = _sh(script)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    cap, ctl, sta, ids = (int(x) for x in first.split())
    assert (cap, ctl, sta, ids) == (0x54, 0x07C0, 0x0040, 0x000C1B36)
    sltcap = int.from_bytes(ROOT_PORT_Q35_60[cap + 20:cap + 24], "little")
    assert sltcap and [int(x) for x in second.split()] == [sltcap, ctl, sta]


def test_expcap_fails_without_an_express_capability(tmp_path: Path) -> None:
    device = tmp_path / "0000:00:01.0"
    device.mkdir()
    space = bytearray(256)
    space[0x34], space[0x40], space[0x41] = 0x40, 0x05, 0x00  # only MSI
    (device / "config").write_bytes(bytes(space))
    result = _sh(_functions() + f"\npci={tmp_path}\nexpcap 0000:00:01.0")
    assert result.returncode == 1 and result.stdout == ""


def test_kernel_command_line() -> None:
    words = KERNEL_APPEND.split()
    assert "console=ttyS0" in words and "quiet" in words
    assert not any(w.startswith("pcie_ports") for w in words)  # the firmware decides, as in the report
    assert any(w.startswith("pc_settle=") for w in words)  # init's settle timeout (environment)
    assert "no_timer_check" in words  # no timer-check panic when the host is loaded
    assert "printk.devkmsg=on" in words  # ten heartbeats a second through /dev/kmsg
    assert "cryptomgr.notests" in words  # no self-tests of crypto the guest never uses


# --- console parsing ---------------------------------------------------------------------------


def test_parse_ready_with_pciehp() -> None:
    ready = parse_ready(CONSOLE_Q35_60)
    assert ready == Readiness(True, 3.94, (GuestSlot("0000:00:12.0", 0x0771, 0x0000),))
    assert ready.pciehp


def test_parse_ready_without_pciehp_and_unsettled() -> None:
    ready = parse_ready(CONSOLE_Q35_72)
    assert ready == Readiness(True, 2.94, ()) and not ready.pciehp
    text = ("noise\nPATCHCHECK-READY settled=no uptime=61.20 "
            "slots=0000:00:12.0:ctl=0x07f1:sta=0x0040,0000:00:13.0:ctl=0x07c0:sta=0x0000\n")
    ready = parse_ready(text)
    assert ready is not None and not ready.settled
    assert [s.port for s in ready.slots] == ["0000:00:12.0", "0000:00:13.0"]
    assert ready.slots[0].status == 0x40


def test_parse_ready_absent_partial_and_garbled() -> None:
    assert parse_ready("") is None
    assert parse_ready("PATCHCHECK-HEARTBEAT 1 uptime=1\n") is None
    assert parse_ready("PATCHCHECK-READY settled=y") is None  # cut off mid-line: not yet
    with pytest.raises(GuestError, match="unreadable readiness marker"):
        parse_ready("PATCHCHECK-READY settled=yes uptime=1.0 slots=0000:00:12.0:ctl=0x7:sta=0\n")


def test_parse_ready_waits_for_the_whole_marker_line() -> None:
    """QEMU writes the console byte by byte while patchcheck reads it: a marker cut off at
    any byte is not yet a marker (seen: a read that ended at `...ctl=`)."""
    line = "PATCHCHECK-READY settled=yes uptime=7.29 slots=0000:00:12.0:ctl=0x07c0:sta=0x0000\r\n"
    for cut in range(len(line) - 1):
        assert parse_ready("boot noise\r\n" + line[:cut]) is None, line[:cut]
    ready = parse_ready("boot noise\r\n" + line)
    assert ready is not None and ready.slots == (GuestSlot("0000:00:12.0", 0x07C0, 0),)


def test_heartbeats() -> None:
    assert heartbeats(CONSOLE_Q35_60) == [1, 2, 3]
    assert heartbeats("PATCHCHECK-HEARTB") == []  # a line split by the migration
    assert heartbeats("EAT 5 uptime=9.1\nPATCHCHECK-HEARTBEAT 6 uptime=10.1\n") == [6]
    # the last line is still being written: `HEARTBEAT 1` may become `HEARTBEAT 12`
    assert heartbeats("PATCHCHECK-HEARTBEAT 11 uptime=3.1\r\nPATCHCHECK-HEARTBEAT 1") == [11]


# --- the action against a fake source --------------------------------------------------------


def _image(tmp_path: Path, pvh: bool = True) -> GuestImage:
    directory = tmp_path / "guests" / "k3y"
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img", *(["vmlinux"] if pvh else [])):
        (directory / name).write_bytes(b"x")
    return GuestImage(directory, "k3y", "linux-image-6.1.0-50-amd64", "6.1.176-1", "1:1.35.0")


def test_linux_action_is_an_action_and_gives_qemu_args(tmp_path: Path) -> None:
    image = _image(tmp_path)
    action = LinuxAction(image)
    as_action: Action = action  # the scenario seam's protocol (checked by mypy)
    assert as_action.name == "linux"
    assert action.name == "linux" and action.powers_off_slot
    rundir = tmp_path / "case"
    args = action.qemu_args(rundir, "source")
    assert args == ["-kernel", str(image.directory / "vmlinux"), "-initrd",
                    str(image.directory / "initrd.img"), "-append", KERNEL_APPEND,
                    "-serial", f"file:{rundir}/source-console.log"]
    dst = action.qemu_args(rundir, "destination")
    assert dst[:6] == args[:6] and dst[-1] == f"file:{rundir}/destination-console.log"
    assert action.console_logs() == {"source": rundir / "source-console.log",
                                      "destination": rundir / "destination-console.log"}
    # The model: same as synthetic.
    for machine, fails in (("pc-q35-6.0", True), ("pc-q35-6.1", False), ("pc-q35-7.2", False)):
        assert SCENARIO.expected_to_fail(machine, _side(False), _side(False), (), action) is fails
        assert not SCENARIO.expected_to_fail(machine, _side(False), _side(True), (), action)
    assert image.mount().source == image.mount().target == str(tmp_path / "guests")
    assert image.mount().read_only


def test_qemu_args_fall_back_to_the_bzimage_without_a_pvh_kernel(tmp_path: Path) -> None:
    image = _image(tmp_path, pvh=False)
    assert LinuxAction(image).qemu_args(tmp_path, "source")[1] == str(image.directory / "vmlinuz")


class GuestMonitor(PortIoMonitor):
    """The paused source: `cont` lets a fake pciehp act on the slot and print the marker."""

    def __init__(self, console: Path, marker: str | None, after: tuple[int, int] | None) -> None:
        super().__init__(ROOT_PORT_Q35_60, w1c=SLTSTA_W1C)
        self.console = console
        self.marker = marker
        self.after = after
        self.log: list[str] = []
        self.status = "prelaunch"

    def qmp(self, command: str, **args: object) -> Any:
        if command == "query-pci":
            self.log.append("read")
            return super().qmp(command, **args)
        self.log.append(command)
        if command == "cont":
            self.status = "running"
            if self.after is not None and self.log.count("cont") == 1:
                ctl, sta = self.after
                self.space[0x6C:0x6E] = ctl.to_bytes(2, "little")
                self.space[0x6E:0x70] = sta.to_bytes(2, "little")
            if self.marker is not None:
                self.console.write_text(self.marker)
        elif command == "stop":
            self.status = "paused"
        elif command == "query-status":
            return {"status": self.status}
        return {}


def _read_only_while_stopped(log: list[str]) -> bool:
    """The slot is read only while the guest is stopped (a paused source, or after `stop`),
    and the guest runs at the end: what the monitor was asked, as a guest would see it."""
    running = False
    for command in log:
        if command == "read":
            assert not running, log
        elif command in ("cont", "stop"):
            running = command == "cont"
    return running


def test_perform_runs_the_guest_until_ready_and_reads_the_slot(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), poll=0.01)
    action.qemu_args(tmp_path, "source")
    monitor = GuestMonitor(console_path(tmp_path, "source"), CONSOLE_Q35_60, (0x0771, 0x0000))
    state = action.perform(monitor)
    assert _read_only_while_stopped(monitor.log) and monitor.log.count("read") == 2
    assert state == GuestSlotState(0x54, 0x0771, 0x0000, initial_control=0x07C0,
                                   initial_status=0x0040, guest_pciehp="bound",
                                   guest_settled="yes", guest_ready_s=3.94)
    assert state.powered_off and not state.presence_detected and state.presence_cleared
    assert state.powered_off_by_guest
    assert state.summary().startswith("the guest's pciehp powered the slot off")
    assert "Slot Status 0x0040 -> 0x0000" in state.summary()
    assert action.readiness is not None and action.readiness.uptime == 3.94


def test_perform_without_pciehp(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), poll=0.01)
    action.qemu_args(tmp_path, "source")
    monitor = GuestMonitor(console_path(tmp_path, "source"), CONSOLE_Q35_72, None)
    state = action.perform(monitor)
    assert state.guest_pciehp == "not bound" and not state.powered_off_by_guest
    assert "did not drive the slot" in state.summary()


def test_perform_times_out_with_the_console_tail(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), ready_timeout=0.2, poll=0.01)
    action.qemu_args(tmp_path, "source")
    monitor = GuestMonitor(console_path(tmp_path, "source"), "[1.0] stuck somewhere\n", None)
    with pytest.raises(GuestError, match=r"not ready within 0.2 s \(console: \[1.0\] stuck"):
        action.perform(monitor)


def test_perform_fails_fast_on_a_kernel_panic(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), ready_timeout=60, poll=0.01)
    action.qemu_args(tmp_path, "source")
    monitor = GuestMonitor(console_path(tmp_path, "source"),
                           "[1.1] Kernel panic - not syncing: System is deadlocked on memory\n", None)
    with pytest.raises(GuestError, match="source guest panicked: .*deadlocked on memory"):
        action.perform(monitor)


def test_perform_fails_when_the_guest_shuts_down(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), ready_timeout=60, poll=0.01)
    action.qemu_args(tmp_path, "source")
    monitor = GuestMonitor(console_path(tmp_path, "source"), "[1.0] reboot: Power down\n", None)
    monitor.qmp = lambda command, **args: (  # type: ignore[method-assign]
        {"status": "shutdown"} if command == "query-status" else GuestMonitor.qmp(monitor, command))
    with pytest.raises(GuestError, match="source guest shutdown before it was ready: .*Power down"):
        action.perform(monitor)


def test_perform_needs_the_source_args(tmp_path: Path) -> None:
    with pytest.raises(GuestError, match="qemu_args"):
        LinuxAction(_image(tmp_path)).perform(GuestMonitor(tmp_path / "c", None, None))


def _destination(rundir: Path, alive: bool = True) -> fakes.FakeQemu:
    qemu = fakes.FakeQemu(rundir, "destination", fakes.LOADS)
    qemu.launch()
    if not alive:
        qemu.exit(1)  # the process is gone
    return qemu


def test_verify_destination(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), poll=0.01)
    console_path(tmp_path, "source").write_text(CONSOLE_Q35_60 + "PATCHCHECK-HEARTB")
    dst_console = console_path(tmp_path, "destination")
    dst_console.write_text("")
    assert "no heartbeat on the destination console within 0.1 s" in str(
        action.verify_destination(_destination(tmp_path), tmp_path, 0.1))
    assert action.source_heartbeat == 3
    assert action.verify_destination(_destination(tmp_path, alive=False), tmp_path, 5) == (
        "destination QEMU exited before the guest printed a heartbeat")
    timer = threading.Timer(0.1, dst_console.write_text,
                            ("EAT 4 uptime=7.0\nPATCHCHECK-HEARTBEAT 5 uptime=8.0\n",))
    timer.start()
    try:
        assert action.verify_destination(_destination(tmp_path), tmp_path, 5) is None
    finally:
        timer.join()
    assert action.destination_heartbeat == 5


def test_slot_state_summary_variants() -> None:
    def state(control: int, status: int, settled: str = "yes") -> GuestSlotState:
        return GuestSlotState(0x54, control, status, initial_control=0x07C0,
                              initial_status=0x0040, guest_pciehp="bound",
                              guest_settled=settled, guest_ready_s=4.0)

    on = state(0x01F1, 0x0040)
    assert "left the slot powered on" in on.summary() and not on.powered_off_by_guest
    unsettled = state(0x07F1, 0x0040, "no")
    assert "without a power-on/off cycle; pciehp had NOT settled" in unsettled.summary()


# --- the image cache, with a fake container runtime ------------------------------------------


class FakeRuntime(fakes.FakeRuntime):
    """The guest image's two containers: the fetch writes two packages, the assembly checks
    its inputs and writes the image."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_fetch = False

    def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
        work = Path(spec.mounts[0].source)
        if spec.role == "guest-fetch":
            if self.fail_fetch:
                return 100, "Reading package lists...\nE: Unable to locate package busybox-static"
            (work / "linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb").write_bytes(b"k")
            (work / "busybox-static_1.35_amd64.deb").write_bytes(b"b")
        else:
            assert (work / "init").read_text() == INIT_SCRIPT.read_text()
            assert sorted(p.name for p in (work / "debs").iterdir())[0].startswith("busybox")
            image = work / "image"
            image.mkdir()
            for name in ("vmlinuz", "vmlinux", "initrd.img"):
                (image / name).write_bytes(name.encode())
            (image / "versions").write_text("kernel_package=linux-image-6.1.0-50-amd64\n"
                                            "kernel_version=6.1.176-1\nbusybox_version=1:1.35\n")
        return 0, ""


def _settings(cache: Path) -> Settings:
    matrix = MatrixSettings((), (), "", {}, True, 128, "tcg", 60.0, 0)
    return Settings(cache, cache / "reports", "", (), (), 0, {}, matrix)


def test_ensure_image_builds_once_in_two_containers(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    logs: list[str] = []
    image = ensure_image(runtime, _settings(tmp_path), image_id="sha256:builder", log=logs.append)
    assert [(s.role, s.network, s.image) for s in runtime.specs] == [
        ("guest-fetch", "host", "sha256:builder"), ("guest-assemble", "none", "sha256:builder")]
    assert len(runtime.removed) == 2
    assert image.directory == tmp_path / "guests" / image_key(INIT_SCRIPT.read_text())
    assert sorted(p.name for p in image.directory.iterdir()) == [
        "guest.json", "initrd.img", "vmlinux", "vmlinuz"]
    meta = json.loads((image.directory / "guest.json").read_text())
    assert meta["kernel_version"] == "6.1.176-1" and meta["boot"] == "pvh"
    assert image.boot_kernel.name == "vmlinux" and not image.cached
    assert [p.name for p in (tmp_path / "guests").iterdir() if p.is_dir()] == [image.key]
    again = ensure_image(runtime, _settings(tmp_path), image_id="sha256:builder")
    assert again.cached and again.key == image.key and len(runtime.specs) == 2


def test_ensure_image_failure_leaves_nothing(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    runtime.fail_fetch = True
    with pytest.raises(InfraError, match="Unable to locate package busybox-static"):
        ensure_image(runtime, _settings(tmp_path), image_id="i", log=lambda line: None)
    assert [p.name for p in (tmp_path / "guests").iterdir() if p.is_dir()] == []
    assert len(runtime.removed) == 1


def test_image_key_covers_the_init_script() -> None:
    text = INIT_SCRIPT.read_text()
    assert image_key(text) == image_key(text)
    assert image_key(text) != image_key(text + "\n")
    assert re.fullmatch(r"[0-9a-f]{24}", image_key(text))


def test_load_image_rejects_incomplete_directories(tmp_path: Path) -> None:
    assert guest_image.load_image(tmp_path) is None
    (tmp_path / "guest.json").write_text('{"key": "k"}')
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "initrd.img").write_bytes(b"i")
    assert guest_image.load_image(tmp_path) is None  # versions missing
    (tmp_path / "initrd.img").unlink()
    (tmp_path / "guest.json").write_text(json.dumps(
        {"key": "k", "kernel_package": "p", "kernel_version": "v", "busybox_version": "b"}))
    assert guest_image.load_image(tmp_path) is None  # initrd missing


def test_the_linux_guest_asks_for_the_ram_it_boots_with() -> None:
    assert LinuxAction.min_ram_mib == linux.MIN_RAM_MIB == 128


# --- --accel -----------------------------------------------------------------------------------


class Probe:
    def __init__(self, result: accel.ProbeResult) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> accel.ProbeResult:
        self.calls += 1
        return self.result


WORKS = accel.ProbeResult(True, "the Linux guest was ready after 1.2 s")
BROKEN = accel.ProbeResult(False, "the Linux guest printed nothing within 5 s")


def test_accel_tcg_never_probes() -> None:
    probe = Probe(WORKS)
    choice = accel.choose("tcg", kvm_exists=True, probe=probe)
    assert (choice.accel, choice.devices, probe.calls) == ("tcg", (), 0)
    assert choice.describe() == "accelerator: tcg (requested)"


def test_accel_auto() -> None:
    probe = Probe(WORKS)
    choice = accel.choose("auto", kvm_exists=True, probe=probe)
    assert (choice.accel, choice.devices, probe.calls) == ("kvm", ("/dev/kvm",), 1)
    assert "KVM ran a guest: the Linux guest was ready" in choice.describe()
    probe = Probe(BROKEN)
    choice = accel.choose("auto", kvm_exists=True, probe=probe)
    assert (choice.accel, choice.devices, probe.calls) == ("tcg", (), 1)
    assert choice.describe() == ("accelerator: tcg (auto: /dev/kvm exists but KVM did not run a "
                                 "guest: the Linux guest printed nothing within 5 s)")
    probe = Probe(WORKS)
    choice = accel.choose("auto", kvm_exists=False, probe=probe)
    assert (choice.accel, choice.devices, probe.calls) == ("tcg", (), 0)
    assert choice.reason == "auto: no /dev/kvm"


def test_accel_kvm_demands_a_working_kvm() -> None:
    assert accel.choose("kvm", kvm_exists=True, probe=Probe(WORKS)).devices == ("/dev/kvm",)
    with pytest.raises(InfraError, match="does not run a guest here: the Linux guest printed"):
        accel.choose("kvm", kvm_exists=True, probe=Probe(BROKEN))
    with pytest.raises(InfraError, match="/dev/kvm does not exist"):
        accel.choose("kvm", kvm_exists=False, probe=Probe(WORKS))
    with pytest.raises(UsageError, match="unknown accelerator 'hvf' \\(known: auto, kvm, tcg\\)"):
        accel.choose("hvf", kvm_exists=True, probe=Probe(WORKS))


def test_accel_resolve_logs_the_choice(tmp_path: Path) -> None:
    logs: list[str] = []

    def no_guest() -> GuestImage:
        raise AssertionError("no probe without /dev/kvm")

    choice = accel.resolve("auto", object(), "img", "/qemu", no_guest, tmp_path, log=logs.append,
                           kvm_device=str(tmp_path / "kvm"))
    assert choice.accel == "tcg" and logs == ["accelerator: tcg (auto: no /dev/kvm)"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _watch(outputs: Callable[[float], str], alive: bool = True) -> accel.ProbeResult:
    clock = Clock()
    return accel.watch_boot(lambda: outputs(clock.now), lambda: alive, first_output=5, ready=30,
                            poll=0.5, clock=clock, sleep=clock.sleep)


def test_watch_boot() -> None:
    assert _watch(lambda t: "") == accel.ProbeResult(
        False, "the Linux guest printed nothing within 5 s")
    ok = _watch(lambda t: "[0.0] Linux version\n" + (CONSOLE_Q35_72 if t >= 2 else ""))
    assert ok == accel.ProbeResult(True, "the Linux guest was ready after 2.0 s")
    slow = _watch(lambda t: "[0.0] Linux version\n")
    assert not slow.ok and slow.detail.startswith("the Linux guest was not ready within 30 s")
    panic = _watch(lambda t: "[0.1] Kernel panic - not syncing: VFS\n")
    assert not panic.ok and "panicked" in panic.detail
    dead = _watch(lambda t: "", alive=False)
    assert dead == accel.ProbeResult(False, "QEMU exited during the boot: no output")


def test_probe_command_line_shows_the_boot_from_the_start() -> None:
    words = accel.PROBE_APPEND.split()
    assert "earlyprintk=ttyS0" in words and "console=ttyS0" in words and "quiet" not in words


def test_again_resumes_the_source_waits_for_a_new_heartbeat_and_reads_the_slot(
        tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), poll=0.01)
    action.qemu_args(tmp_path, "source")
    console = console_path(tmp_path, "source")
    monitor = GuestMonitor(console, CONSOLE_Q35_60, (0x0771, 0x0000))
    first = action.perform(monitor)
    console.write_text(CONSOLE_Q35_60 + "PATCHCHECK-HEARTBEAT 3 uptime=4.5\n")
    monitor.status = "postmigrate"  # after a completed migration
    monitor.log.clear()
    monitor.marker = CONSOLE_Q35_60 + "PATCHCHECK-HEARTBEAT 3 uptime=4.5\n" \
                                      "PATCHCHECK-HEARTBEAT 4 uptime=4.75\n"
    second = action.again(monitor)
    assert "query-status" in monitor.log and _read_only_while_stopped(monitor.log)
    assert second == first  # the same slot, read anew, with the boot's readiness


def test_again_without_a_new_heartbeat_is_an_error(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), ready_timeout=0.2, poll=0.01)
    action.qemu_args(tmp_path, "source")
    console = console_path(tmp_path, "source")
    monitor = GuestMonitor(console, CONSOLE_Q35_60, (0x0771, 0x0000))
    action.perform(monitor)
    console.write_text(CONSOLE_Q35_60 + "PATCHCHECK-HEARTBEAT 3 uptime=4.5\n")
    monitor.marker = None  # the guest does not run on
    with pytest.raises(GuestError, match="no heartbeat after 3 within 0.2 s"):
        action.again(monitor)


def test_again_needs_a_booted_guest(tmp_path: Path) -> None:
    action = LinuxAction(_image(tmp_path), poll=0.01)
    action.qemu_args(tmp_path, "source")
    with pytest.raises(GuestError, match="has not been booted"):
        action.again(GuestMonitor(console_path(tmp_path, "source"), CONSOLE_Q35_60, None))
