"""One migration of a group: the source QEMU started paused with the group's members, the
guest action done, its stream taken once (patchcheck.run.stream) and given to each
destination QEMU started with the same members; each destination's own answer (loaded and
running, or its exit and its error lines) is the trial's answer for it. The source's word
on its own migration decides nothing (see docs/sweep.md, "How a cell is judged")."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from patchcheck.guests.image import GuestError, GuestImage
from patchcheck.guests.linux import LinuxAction
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import QMP_LOST, Machine, MachineError
from patchcheck.qemu.pciconf import PciError
from patchcheck.result.cells import CellOutcome, SweepSide
from patchcheck.run.migrate import KILLED_STATUS_WAIT, pauses
from patchcheck.run.replay import RecordingMonitor
from patchcheck.run.stream import Capture, StreamError, deliver
from patchcheck.run.sweep.attribute import Fault, Trial, instance_of
from patchcheck.run.sweep.members import Member
from patchcheck.run.sweep.slot import power_cycle
from patchcheck.scenarios.base import LOAD_ERROR_MARKERS

GUEST_ALIVE_S = 30.0  # a migrated guest prints a heartbeat within this (it prints ten a second)
REJECTED_EXIT = 1  # QEMU's exit status when it refuses an argument or an incoming stream
# A QEMU that ends by one of these signals crashed: a bug of the QEMU with these devices, a
# failure of the migration (a kill, as by the kernel for memory, is no answer: an error).
CRASHES = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}


def crash(code: int | None) -> str:
    """The signal's name when `code` (a shell's 128+N) says the process crashed."""
    return CRASHES.get(code - 128, "") if code is not None and code > 128 else ""
# The scenarios' load-error markers, and the stream's own (a section or footer QEMU did not
# expect, a length or version that does not fit).
MARKERS = (*LOAD_ERROR_MARKERS, "Unknown", "Missing", "mismatch", "invalid")


def error_lines(log: str) -> tuple[str, ...]:
    """QEMU's own error lines (warnings left out, the program's name taken off), the lines
    about loading the migration first."""
    lines = [ln.split(": ", 1)[1] if ln.startswith("qemu-system") and ": " in ln else ln
             for ln in (raw.strip() for raw in log.splitlines()) if ln]
    lines = [ln for ln in lines if not ln.startswith("warning:")]
    loading = [ln for ln in lines if any(m in ln for m in MARKERS)]
    return tuple(loading + [ln for ln in lines if ln not in loading])


@dataclass
class Setting:
    """What every QEMU of one trial shares."""

    machine: str
    hosts: Hosts
    scratch: Path
    ram_mib: int = 128
    accel: str = "tcg"
    timeout: float = 60.0  # a migration's
    start_timeout: float = 10.0  # a QEMU's, from its start until its monitor answers

    def base_args(self) -> list[str]:
        return ["-nodefaults", "-machine", self.machine, "-accel", self.accel,
                "-m", f"{self.ram_mib}M"]


class Migration:
    """A `Migrate` (patchcheck.run.sweep.attribute) for one source side and its
    destinations, with the slot action or none; keeps the action's monitor commands."""

    def __init__(self, setting: Setting, source: SweepSide, sides: dict[str, SweepSide],
                 slot_action: bool, guest: GuestImage | None = None) -> None:
        self.setting = setting
        self.source = source
        self.sides = sides
        self.slot_action = slot_action
        self.guest = guest  # the Linux guest boots on the source (the linux action)
        self.hmp: dict[str, list[str]] = {}  # member ident -> the action's monitor commands
        self.starts = 0  # QEMUs started, and the seconds from their start to their monitor
        self.start_seconds = 0.0

    def _launch(self, machine: Machine) -> Fault | None:
        begun = time.monotonic()
        try:
            return launch(machine)
        finally:
            self.starts += 1
            self.start_seconds += time.monotonic() - begun

    def __call__(self, members: Sequence[Member], destinations: Sequence[str]) -> Trial:
        rundir = Path(tempfile.mkdtemp(prefix="sw-", dir=self.setting.scratch))
        args = [*self.setting.base_args(), *(a for m in members for a in m.args)]
        linux = LinuxAction(self.guest) if self.guest is not None else None
        booted = linux.qemu_args(rundir, "source") if linux is not None else []
        src = self._machine(self.source, [*args, *booted, "-S"], rundir, "source")
        try:
            fault = self._launch(src)
            stream = b""
            if fault is None:
                fault = self._act(src, members) if linux is None else _boot(src, linux)
            if fault is None:
                stream, fault = _capture(src, rundir, self.setting.timeout)
            if fault is not None:
                return Trial(source=killed_for_memory(fault, src, "source"))
            return Trial(destinations={d: self._land(d, args, stream, rundir, linux)
                                       for d in destinations})
        finally:
            src.shutdown()
            shutil.rmtree(rundir, ignore_errors=True)

    def _machine(self, side: SweepSide, args: list[str], rundir: Path, name: str) -> Machine:
        return self.setting.hosts.machine(side.image_id, side.binary, args, rundir, name,
                                          timeout=self.setting.start_timeout)

    def _act(self, src: Machine, members: Sequence[Member]) -> Fault | None:
        if not self.slot_action:
            return None
        for m in members:
            if not m.slot_port:
                continue
            monitor = RecordingMonitor(src)
            try:
                power_cycle(monitor, m.slot_port)
            except (PciError, MachineError) as exc:
                return Fault(CellOutcome.ERROR, (f"slot action on {m.ident}: {exc}",))
            self.hmp[m.ident] = monitor.writes
        return None

    def _land(self, name: str, args: list[str], stream: bytes, rundir: Path,
              linux: LinuxAction | None) -> Fault | None:
        sock = rundir / f"in-{name}.sock"
        own = rundir / name  # the destination's console, when a guest runs
        own.mkdir()
        console = linux.qemu_args(own, "destination") if linux is not None else []
        dst = self._machine(self.sides[name], [*args, *console, "-incoming", f"unix:{sock}"],
                            rundir, f"dst-{name}")
        try:
            fault = self._launch(dst)
            if fault is None:
                deliver(stream, sock, self.setting.timeout)
                fault = _judge(dst, time.monotonic() + self.setting.timeout)
            if fault is None and linux is not None:
                lost = linux.verify_destination(dst, own, GUEST_ALIVE_S)
                if lost:
                    fault = Fault(CellOutcome.FAILED, (f"the guest did not run on: {lost}",))
            return killed_for_memory(fault, dst, "destination")
        finally:
            dst.shutdown()


def killed_for_memory(fault: Fault | None, machine: Machine, role: str) -> Fault | None:
    """A QEMU the kernel killed for memory (its launcher said so) is an error that says so,
    whatever it looked like: a cut stream, a lost guest or a failed start is no finding."""
    if fault is None:
        return None
    if fault.outcome == CellOutcome.ERROR:  # its monitor went before its exit status came
        machine.wait_exit(KILLED_STATUS_WAIT)
    why = machine.end_reason()
    if not why:
        return fault
    return Fault(CellOutcome.ERROR, (f"{role} QEMU was {why}",
                                     *(line for line in fault.lines if why not in line)))


def _boot(src: Machine, linux: LinuxAction) -> Fault | None:
    """The linux action: the source's guest boots with the group's devices, its drivers
    program them, and it runs until it is ready (a guest that does not is no answer)."""
    try:
        linux.perform(src)
        return None
    except (GuestError, MachineError) as exc:
        return Fault(CellOutcome.ERROR, (f"source guest: {exc}",))


def launch(machine: Machine) -> Fault | None:
    try:
        machine.launch()
        return None
    except MachineError as exc:
        code = machine.wait_exit(5.0)
        lines = error_lines(machine.log_text()) or (str(exc),)
        outcome = CellOutcome.NOT_STARTED if code == REJECTED_EXIT else CellOutcome.ERROR
        return Fault(outcome, lines)


def _capture(src: Machine, rundir: Path, timeout: float) -> tuple[bytes, Fault | None]:
    capture = Capture(rundir / "stream.sock")
    deadline = time.monotonic() + timeout
    try:
        src.let_in(capture.path)  # the source connects to it
        try:
            src.cmd("migrate", uri=f"unix:{capture.path}")
        except MachineError as exc:  # a migration blocker: the device that set it is named
            if QMP_LOST in str(exc):  # not QEMU's answer: the source died (see below)
                raise
            return b"", Fault(CellOutcome.UNMIGRATABLE, (str(exc).split(": ", 2)[-1],))
        wait = pauses()
        while time.monotonic() < deadline:
            info = src.cmd("query-migrate")
            status = str(info.get("status", ""))
            if status == "completed":
                return capture.result(max(1.0, deadline - time.monotonic())), None
            if status in ("failed", "cancelled"):
                desc = str(info.get("error-desc", "")) or f"source: migration {status}"
                return b"", Fault(CellOutcome.UNMIGRATABLE, (desc,))
            time.sleep(next(wait))
        return b"", Fault(CellOutcome.ERROR, ("source: timeout while migrating",))
    except (MachineError, StreamError) as exc:  # the source died while it migrated
        code = src.wait_exit(2.0)
        lines = error_lines(src.log_text())
        if crash(code):
            return b"", Fault(CellOutcome.FAILED, (f"source QEMU crashed while saving its state "
                                                   f"({crash(code)})", *lines))
        return b"", Fault(CellOutcome.ERROR, (f"source QEMU ended while migrating (exit {code})"
                                              if code is not None else f"source: {exc}", *lines))
    finally:
        capture.close()


def _judge(dst: Machine, deadline: float) -> Fault | None:
    """None when the destination loaded the stream and runs after `cont`; else its fault."""
    wait = pauses()
    try:
        while dst.running() and dst.cmd("query-status").get("status") == "inmigrate":
            if time.monotonic() > deadline:
                return Fault(CellOutcome.ERROR, ("destination: timeout while loading",))
            time.sleep(next(wait))
        if dst.running():
            migration = str(dst.cmd("query-migrate").get("status", ""))
            dst.cmd("cont")
            state = str(dst.cmd("query-status").get("status", ""))
            if migration == "completed" and state == "running":
                return None
            lines = error_lines(dst.log_text())
            return Fault(CellOutcome.FAILED, (*lines, f"destination: migration {migration}, "
                                                       f"state {state}"), instance_of(lines))
    except MachineError:
        if dst.wait_exit(5.0) is None:
            return Fault(CellOutcome.ERROR, ("destination: monitor lost, QEMU still runs",))
    code = dst.wait_exit(5.0)
    lines = error_lines(dst.log_text())
    if crash(code):
        return Fault(CellOutcome.FAILED, (f"destination QEMU crashed while loading ({crash(code)})",
                                          *lines), instance_of(lines))
    if code != REJECTED_EXIT:
        return Fault(CellOutcome.ERROR, (f"destination QEMU crashed or was killed (exit {code})",
                                         *lines))
    return Fault(CellOutcome.FAILED, lines or ("destination exited",), instance_of(lines))
