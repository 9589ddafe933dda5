"""The Linux guest as a guest action: QEMU boots the kernel of the guest image (image.py)
(`qemu_args`), the source is continued and its serial console watched for the readiness
marker the init prints once the kernel's hotplug drivers have settled (`perform`), and
after the migration the destination's console must show heartbeats again
(`verify_destination`): the guest survived, not only the device. A scenario subclasses
`LinuxAction` for what it reads of its device before and after (`before`, `after`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcheck.guests.action import Action, GuestState, Monitor
from patchcheck.guests.image import GuestError, GuestImage

if TYPE_CHECKING:
    from patchcheck.qemu.machine import Machine

# RAM for the guest: 96 MiB boots, 80 MiB panics (out of memory), 64 MiB does not start;
# 128 MiB (the matrix default) leaves a margin.
MIN_RAM_MIB = 128
# `quiet`: printing the boot log through the emulated UART costs seconds under TCG.
# `edd=off`: skip the real-mode BIOS disk probe. `no_timer_check`: skip the IO-APIC timer
# check, which counts timer ticks against a busy loop and panics ("IO-APIC + timer doesn't
# work!") when a loaded host starves the TCG vCPU (seen with 8 parallel cases on 2 cores);
# virtual machines commonly boot with it. `printk.devkmsg=on`: init's heartbeats go to
# /dev/kmsg ten times a second, more than its default rate limit lets through.
# `cryptomgr.notests`: skip the self-tests of the kernel's crypto algorithms, which the
# guest never uses (~0.5 s of TCG CPU per boot, 13 % of a boot; docs/performance.md).
# `pc_settle`: init's settle timeout.
SETTLE_SECONDS = 60
KERNEL_APPEND = ("console=ttyS0 quiet edd=off no_timer_check printk.devkmsg=on "
                 f"cryptomgr.notests pc_settle={SETTLE_SECONDS}")
READY_TIMEOUT = 90.0  # boot (~5 s under TCG on 2 cores, slower with parallel cases) + settle

READY_MARKER = "PATCHCHECK-READY"
HEARTBEAT_MARKER = "PATCHCHECK-HEARTBEAT"
PANIC = "Kernel panic"
_READY_RE = re.compile(
    READY_MARKER + r" settled=(yes|no) uptime=([0-9.]+) slots=(none|\S+)")
_SLOT_RE = re.compile(r"([0-9a-fA-F:.]+):ctl=0x([0-9a-fA-F]{4}):sta=0x([0-9a-fA-F]{4})$")
_HEARTBEAT_RE = re.compile(HEARTBEAT_MARKER + r" (\d+)\b")

# --- The serial console: readiness and heartbeats -------------------------------------------


@dataclass(frozen=True)
class GuestSlot:
    """One slot pciehp drives, as the guest read its registers when it declared readiness."""

    port: str
    control: int
    status: int


@dataclass(frozen=True)
class Readiness:
    settled: bool
    uptime: float
    slots: tuple[GuestSlot, ...]

    @property
    def pciehp(self) -> bool:
        """Whether pciehp drives any slot (native PCIe hotplug granted to the OS)."""
        return bool(self.slots)


def complete_lines(text: str) -> list[str]:
    """The lines of a console that the guest has finished writing. The serial console is
    a file QEMU writes byte by byte while it is read, so a last line without its newline
    may still grow (`...ctl=` becomes `...ctl=0x07c0:sta=0x0000`, `HEARTBEAT 1` becomes
    `HEARTBEAT 12`): it is not read until its newline is there."""
    lines = text.splitlines()
    return lines if text.endswith("\n") else lines[:-1]


def parse_ready(text: str) -> Readiness | None:
    """The first complete readiness marker on a console, or None."""
    for line in complete_lines(text):
        match = _READY_RE.search(line)
        if not match:
            continue
        slots: list[GuestSlot] = []
        if match.group(3) != "none":
            for item in match.group(3).split(","):
                slot = _SLOT_RE.fullmatch(item)
                if slot is None:
                    raise GuestError(f"unreadable readiness marker: {line.strip()!r}")
                slots.append(GuestSlot(slot.group(1), int(slot.group(2), 16),
                                       int(slot.group(3), 16)))
        return Readiness(match.group(1) == "yes", float(match.group(2)), tuple(slots))
    return None


def heartbeats(text: str) -> list[int]:
    """The heartbeat counters of the complete lines of a console, in order."""
    return [int(m.group(1)) for line in complete_lines(text)
            if (m := _HEARTBEAT_RE.search(line))]


def console_path(rundir: Path, role: str) -> Path:
    return rundir / f"{role}-console.log"


def read_console(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail(text: str, lines: int = 5) -> str:
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:])


# --- The guest action ------------------------------------------------------------------------


class LinuxAction(Action):
    """Boot the Linux guest and let its drivers act on the device (a scenarios.base.Action).

    Per source QEMU: `qemu_args(rundir, role)` for both QEMUs (same arguments apart from
    the console file), `perform(monitor)` on the paused source, `verify_destination(...)`
    once the destination runs; `again(machine)` before each further migration of the same
    source (patchcheck.run.migrate.run_cases). One instance per source (it remembers the
    console paths and the readiness). A scenario subclasses it for what it reads of the
    device before the guest runs (`before`) and once the guest is ready (`after`).
    """

    name = "linux"
    shares_source = True
    min_ram_mib = MIN_RAM_MIB

    def __init__(self, image: GuestImage, *, ready_timeout: float = READY_TIMEOUT,
                 poll: float = 0.05) -> None:
        self.image = image
        self.ready_timeout = ready_timeout
        self.poll = poll
        self.consoles: dict[str, Path] = {}
        self.readiness: Readiness | None = None
        self.source_heartbeat = 0  # last one on the source console when verifying
        self.destination_heartbeat = 0  # first one on the destination console

    # Hooks of the scenario, with the defaults of one that reads nothing.
    def before(self, monitor: Monitor) -> None:
        """On the paused source, before the guest runs."""

    def after(self, monitor: Monitor, ready: Readiness) -> GuestState | None:
        """With the guest ready (and stopped for the moment): what it did to the device."""
        return None

    def qemu_args(self, rundir: Path, role: str) -> list[str]:
        console = console_path(rundir, role)
        self.consoles[role] = console
        return ["-kernel", str(self.image.boot_kernel), "-initrd", str(self.image.initrd),
                "-append", KERNEL_APPEND, "-serial", f"file:{console}"]

    def replay_note(self) -> str:
        return ("# in the source monitor: `cont`, wait for PATCHCHECK-READY in "
                "/tmp/pc/source-console.log, then migrate")

    def perform(self, monitor: Monitor) -> GuestState | None:
        """On the paused source: `before`, run the guest until it is ready (its drivers have
        settled), then `after` with the guest stopped for that moment."""
        console = self.consoles.get("source")
        if console is None:
            raise GuestError("LinuxAction: qemu_args(rundir, 'source') was not used for the source")
        self.before(monitor)
        monitor.qmp("cont")
        self.readiness = self.wait_ready(monitor, console)
        return self._after(monitor, self.readiness)

    def again(self, machine: Machine) -> GuestState | None:
        """The source after an earlier migration of the same guest: let it run again
        (after a completed migration it waits in `postmigrate`), wait for a heartbeat newer
        than the last one (the guest runs on), and read the device with the guest stopped."""
        if self.readiness is None:
            raise GuestError("LinuxAction.again: the guest has not been booted (perform)")
        console = self.consoles["source"]
        beats = heartbeats(read_console(console))
        last = beats[-1] if beats else 0
        if str((machine.qmp("query-status") or {}).get("status", "")) != "running":
            machine.qmp("cont")
        deadline = time.monotonic() + self.ready_timeout
        while not [b for b in heartbeats(read_console(console)) if b > last]:
            if time.monotonic() > deadline:
                raise GuestError(f"source guest printed no heartbeat after {last} within "
                                 f"{self.ready_timeout:g} s when resumed for another migration")
            time.sleep(self.poll)
        return self._after(machine, self.readiness)

    def _after(self, monitor: Monitor, ready: Readiness) -> GuestState | None:
        monitor.qmp("stop")  # config access is not atomic: read while the guest is stopped
        try:
            return self.after(monitor, ready)
        finally:
            monitor.qmp("cont")  # migrate a running guest, as in the report

    def wait_ready(self, monitor: Monitor, console: Path) -> Readiness:
        deadline = time.monotonic() + self.ready_timeout
        next_check = 0.0
        while True:
            text = read_console(console)
            ready = parse_ready(text)
            if ready is not None:
                return ready
            if PANIC in text:
                raise GuestError(f"source guest panicked: {tail(text, 3)}")
            now = time.monotonic()
            if now >= next_check:  # QEMU alive and the guest not dead (MachineError if gone)
                status = str((monitor.qmp("query-status") or {}).get("status", ""))
                if status in ("shutdown", "guest-panicked", "internal-error", "io-error"):
                    raise GuestError(f"source guest {status} before it was ready: "
                                     f"{tail(read_console(console))}")
                next_check = now + 0.5
            if now > deadline:
                raise GuestError(f"source guest not ready within {self.ready_timeout:g} s "
                                 f"(console: {tail(read_console(console)) or 'empty'})")
            time.sleep(self.poll)

    def verify_destination(self, machine: Machine, rundir: Path, timeout: float) -> str | None:
        """After the destination runs (after `cont`): None if its console shows a heartbeat
        (the guest survived the migration), else why not."""
        src_beats = heartbeats(read_console(self.consoles.get("source",
                                                             console_path(rundir, "source"))))
        self.source_heartbeat = src_beats[-1] if src_beats else 0
        console = console_path(rundir, "destination")
        deadline = time.monotonic() + timeout
        while True:
            beats = heartbeats(read_console(console))
            if beats:
                self.destination_heartbeat = beats[0]
                return None
            if not machine.running():
                return "destination QEMU exited before the guest printed a heartbeat"
            if time.monotonic() > deadline:
                return (f"no heartbeat on the destination console within {timeout:g} s after "
                        f"migration (last on the source: {self.source_heartbeat}; destination "
                        f"console: {tail(read_console(console)) or 'empty'}; "
                        f"{guest_cpu_state(machine)})")
            time.sleep(self.poll)

    def console_logs(self) -> dict[str, Path]:
        """role -> console file, e.g. {"source": .../source-console.log, ...}."""
        return dict(self.consoles)


_RIP_RE = re.compile(r"RIP=([0-9a-f]+)")
_HLT_RE = re.compile(r"HLT=(\d)")


def guest_cpu_state(machine: Any, interval: float = 0.5) -> str:
    """What the vCPU of a guest that printed nothing is doing: its instruction pointer twice,
    `interval` apart (moving: the guest runs; the same and halted: it waits for an
    interrupt that does not come), from the monitor's `info registers`."""
    samples = []
    try:
        for pause in (interval, 0.0):
            regs = machine.hmp("info registers")
            rip, hlt = _RIP_RE.search(regs), _HLT_RE.search(regs)
            samples.append((rip.group(1) if rip else "?", hlt.group(1) if hlt else "?"))
            time.sleep(pause)
    except Exception as exc:  # noqa: BLE001 - a diagnosis only: never hides the verdict
        return f"vCPU state unreadable: {type(exc).__name__}"
    (rip1, hlt1), (rip2, hlt2) = samples
    what = ("halted, waiting for an interrupt" if rip1 == rip2 and hlt1 == hlt2 == "1"
            else "running" if rip1 != rip2 else "stuck at one instruction")
    return f"vCPU {what}: RIP {rip1} HLT={hlt1}, {interval:g} s later RIP {rip2} HLT={hlt2}"


__all__ = [
    "GuestSlot", "LinuxAction", "Readiness", "KERNEL_APPEND", "MIN_RAM_MIB", "console_path",
    "heartbeats", "parse_ready",
]
