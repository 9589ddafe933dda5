"""Run one migration case and judge it from the destination QEMU.

The trap (docs/, "How a case is judged"): the source often says
`completed` although the destination rejected the stream and exited. So the verdict is
the destination's: its process is alive, its own migration status is completed, and it
runs after `cont`. The source's status is recorded for the report but never decides
anything.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from patchcheck.build.record import BuildRecord
from patchcheck.errors import InfraError, PatchcheckError
from patchcheck.guests.action import Action, GuestState
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import Machine, MachineError
from patchcheck.qemu.pciconf import PciError
from patchcheck.result.files import copy_whole, write_whole
from patchcheck.result.model import Case, CaseResult, Side
from patchcheck.result.outcome import Observed
from patchcheck.run.replay import RecordingMonitor, portable, reproduce_command
from patchcheck.run.stream import Capture, deliver
from patchcheck.scenarios.base import Scenario

FINAL = ("completed", "failed", "cancelled")
REJECTED_EXIT = 1  # QEMU's exit status when the incoming migration fails to load
# Seconds between monitor polls while a migration runs: the first after POLL, each next
# one 1.5 times later, at most POLL_MAX apart. A synthetic case's stream loads in tens of
# milliseconds, a Linux guest's in hundreds: each is seen soon after it ends, and a long
# one is not asked about 200 times a second (each round trip costs both sides CPU).
POLL = 0.005
POLL_MAX = 0.05
# Seconds a case that errored waits for a QEMU's exit status, once its monitor was lost: the
# launcher's word on why it ended (killed for memory) comes with the status, a few ms later.
KILLED_STATUS_WAIT = 0.5


def pauses() -> Iterator[float]:
    """The pauses between the polls of one wait."""
    pause = POLL
    while True:
        yield pause
        pause = min(POLL_MAX, pause * 1.5)


def side(record: BuildRecord) -> Side:
    return Side(record.name, record.qemu_version, record.fix_state, str(record.fix["applied"]),
                record.has_fix, record.binary)


def globals_args(scenario: Scenario, case: Case, role: str, build: Side) -> list[str]:
    """The case's -globals that the scenario sends to this side."""
    return [arg for g in scenario.globals_for(case.globals, role, build) for arg in ("-global", g)]


def run_cases(cases: Sequence[Case], builds: Mapping[str, BuildRecord], hosts: Hosts,
              scenario: Scenario, scratch: Path, logdir: Callable[[Case], Path], *,
              ram_mib: int = 128, accel: str = "tcg", timeout: float = 60.0,
              action: Action | None = None) -> Generator[CaseResult, None, None]:
    """Cases that differ only in their destination, yielded as each finishes.

    Each case gets a fresh destination QEMU. The source QEMU is launched once, does the
    guest action once (`perform`) and is migrated to each destination in turn; before each
    later migration the action's `again` resumes it and reads the guest state anew (a Linux
    guest boots once for all of them: its boot is most of a case's time). A source whose
    guest `stays_paused` migrates once, into patchcheck.run.stream's Capture, and each
    destination gets that stream (QEMU refuses to migrate a paused source twice). A source
    that died or misbehaved is replaced by a fresh one for the next case. An action whose
    `shares_source` is false allows one case per source.

    `action` overrides the scenario's guest action of that name (a Linux guest needs its
    image); an action may add QEMU arguments per role (`qemu_args`), check the destination
    after a pass (`verify_destination`) and keep console logs (`console_logs`)."""
    action = action or scenario.action(cases[0].guest)
    if len(cases) > 1 and not action.shares_source:
        raise ValueError("only an action that shares its source runs several cases from one")
    if len({(c.source, c.machine, c.guest, c.globals) for c in cases}) > 1:
        raise ValueError("cases of one source must share source build, machine, guest, globals")
    src_b = builds[cases[0].source]
    args = scenario.machine_args(cases[0].machine, max(ram_mib, action.min_ram_mib), accel)
    srcdir = Path(tempfile.mkdtemp(prefix="src-", dir=scratch))  # 0700, short socket paths
    src_extra = [*globals_args(scenario, cases[0], "source", side(src_b)),
                 *action.qemu_args(srcdir, "source")]
    shared = _Shared(builds, hosts, scenario, action, args, src_extra, srcdir, scratch, timeout,
                     capture=action.stays_paused and len(cases) > 1)
    source: _Source | None = None
    try:
        for case in cases:
            if hosts.closed:  # interrupted: the rest of the group does not start
                return
            if source is not None and not source.usable():
                source.machine.shutdown()  # died between cases: close its monitor, then replace
                source = None
            if source is None:
                source = _Source(hosts.machine(src_b.image_id, src_b.binary,
                                               [*args, *src_extra, "-S"], srcdir, "source",
                                               timeout=min(timeout, 30)))
            result = _attempts(shared, source, case, logdir(case))
            if result.observed == Observed.ERROR:
                source.machine.shutdown()  # the next case starts from a fresh source
                source = None
            yield result
    finally:
        if source is not None:
            source.machine.shutdown()
        shutil.rmtree(srcdir, ignore_errors=True)


def _attempts(shared: _Shared, source: _Source, case: Case, logdir: Path) -> CaseResult:
    """The case, and once more from the same source when its destination's guest gave no
    sign of life: a pass after such a first attempt is flaky (never a pass for a verdict)."""
    earlier: list[str] = []
    while True:
        result, guest_lost = _migrate_one(shared, source, case, logdir)
        if not guest_lost or earlier or not source.usable():
            break
        earlier.append(_set_aside(result, logdir))  # and once more
    result.earlier_attempts = earlier
    if earlier and result.observed == Observed.PASSED:
        result.observed = Observed.FLAKY
        result.message = f"passed on a second attempt; the first: {earlier[0]}"
    return result


def _set_aside(first: CaseResult, logdir: Path) -> str:
    """A case whose destination loaded the device state and runs, but whose guest printed
    nothing afterwards, runs once more from the same source to a fresh destination
    (run_cases). That is a failure outside the scenario's model (seen rarely, under load,
    7.2 -> 10.0, with a source migrated before): a second attempt tells a guest that never
    survives this migration (the same verdict twice) from a one-off. The first attempt is
    kept: its logs move to `attempt-1/` of the case's logs; the line returned goes into the
    final result's `earlier_attempts`."""
    kept = logdir / "attempt-1"
    kept.mkdir(parents=True, exist_ok=True)
    for path in map(Path, first.logs.values()):
        if path.parent == logdir and path.exists():
            path.replace(kept / path.name)
    return f"{first.observed.value}: {first.message} (logs: {kept})"


class _Source:
    """The source QEMU of one or more cases: how many migrations it made so far."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.monitor = RecordingMonitor(machine)
        self.migrations = 0  # 0: not launched yet (a source that failed is not reused)
        # A source that stays paused migrates once into a Capture; what it sent and the
        # guest state it had serve every later destination.
        self.stream: bytes | None = None
        self.state: GuestState | None = None

    def usable(self) -> bool:
        """Whether it can serve another destination: its stream is kept, or it runs."""
        return self.stream is not None or self.machine.running()


@dataclass(frozen=True)
class _Shared:
    """What the cases of one source share."""

    builds: Mapping[str, BuildRecord]
    hosts: Hosts
    scenario: Scenario
    action: Action
    args: list[str]  # both QEMUs' arguments (machine, accel, topology)
    src_extra: list[str]  # the source's own: its -globals, the action's arguments
    srcdir: Path  # the source's private directory
    scratch: Path
    timeout: float
    capture: bool = False  # the paused source's stream is taken once for every destination


@dataclass
class _Attempt:
    """One migration of a case: its fresh destination QEMU and the result it fills in."""

    case: Case
    src_b: BuildRecord
    dst_b: BuildRecord
    result: CaseResult
    rundir: Path  # the destination's private directory
    dst_extra: list[str]  # the destination's own arguments: its -globals, the action's
    dst: Machine
    started: float  # time.monotonic() once the destination was made
    deadline: float
    sender: threading.Thread | None = None  # delivers a captured stream to the destination

    @property
    def sock(self) -> Path:
        return self.rundir / "migrate.sock"


def _migrate_one(shared: _Shared, source: _Source, case: Case, logdir: Path
                 ) -> tuple[CaseResult, bool]:
    """The case's result, and whether the destination took the device state but its guest
    did not survive (the action's `verify_destination` found a problem)."""
    attempt = _attempt(shared, case)
    result = attempt.result
    guest_lost = False
    try:
        guest_lost = _migrate(shared, source, attempt)
    except (MachineError, PciError, PatchcheckError) as exc:  # StreamError is one
        result.observed = Observed.ERROR
        result.message = str(exc)
    except Exception as exc:  # the container engine failed under us: no case can run
        raise InfraError(f"container engine failed during {case.id}: "
                         f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    finally:
        _killed_for_memory(result, source.machine, attempt.dst, shared.capture)
        result.reproduce = result.reproduce or _replay(shared, attempt, [])
        attempt.dst.shutdown()
        if attempt.sender is not None:
            attempt.sender.join(5.0)  # the destination is gone: its socket no longer takes data
        result.seconds = round(time.monotonic() - attempt.started, 3)
        _keep_logs(shared, source, attempt, logdir)
        shutil.rmtree(attempt.rundir, ignore_errors=True)
    return result, guest_lost


def _killed_for_memory(result: CaseResult, src: Machine, dst: Machine, captured: bool) -> None:
    """A QEMU of the case that the kernel killed for memory makes it an error that says so,
    whatever the destination answered: a source killed while it sends leaves its destination
    a cut stream to reject (failed-other), a QEMU killed at start or mid-command is no answer."""
    cut = result.observed in (Observed.FAILED, Observed.FAILED_OTHER) and not captured \
        and result.source_status not in FINAL  # the source's migration did not end
    if result.observed == Observed.ERROR:
        for machine in (dst, src):  # its monitor went before its exit status came: wait for it
            machine.wait_exit(KILLED_STATUS_WAIT)
    elif cut:  # a source that died mid-stream: its end comes just after the destination's
        src.wait_exit(0.1)
    killed = [(role, m.end_reason()) for role, m in (("destination", dst), ("source", src))
              if m.end_reason()]
    if not killed:
        return
    roles = " and ".join(role for role, _ in killed)
    why = killed[0][1]
    first = result.message.splitlines()[0] if result.message else ""
    result.observed = Observed.ERROR
    result.message = (f"{roles} QEMU{'s were' if len(killed) > 1 else ' was'} {why}"
                      + (f"; {first}" if first and why not in first else ""))


def _attempt(shared: _Shared, case: Case) -> _Attempt:
    """The case's result to fill in (an error until judged) and its destination QEMU,
    not started yet."""
    src_b, dst_b = shared.builds[case.source], shared.builds[case.destination]
    expected = (Observed.FAILED if shared.scenario.expected_to_fail(
        case.machine, side(src_b), side(dst_b), case.globals, shared.action) else Observed.PASSED)
    result = CaseResult(case.machine, case.guest, list(case.globals), side(src_b), side(dst_b),
                        Observed.ERROR, expected)
    rundir = Path(tempfile.mkdtemp(prefix="case-", dir=shared.scratch))  # 0700, short sockets
    dst_extra = [*globals_args(shared.scenario, case, "destination", side(dst_b)),
                 *shared.action.qemu_args(rundir, "destination")]
    sock = rundir / "migrate.sock"
    dst = shared.hosts.machine(dst_b.image_id, dst_b.binary,
                               [*shared.args, *dst_extra, "-incoming", f"unix:{sock}"], rundir,
                               "destination", timeout=min(shared.timeout, 30))
    started = time.monotonic()
    return _Attempt(case, src_b, dst_b, result, rundir, dst_extra, dst, started,
                    started + shared.timeout)


def _migrate(shared: _Shared, source: _Source, attempt: _Attempt) -> bool:
    """Start both QEMUs, do the guest action, migrate and judge; whether the guest was
    lost after the device state loaded (_after_load)."""
    result, src, dst, deadline = attempt.result, source.machine, attempt.dst, attempt.deadline
    state = _start(shared, source, attempt)
    result.guest_state = state.to_dict() if state is not None else {}
    source.migrations += 1
    result.source_migration = source.migrations
    result.reproduce = _replay(shared, attempt, source.monitor.writes)
    if source.stream is not None:  # the paused source's stream, as it sent it
        attempt.sender = deliver(source.stream, attempt.sock,
                                 max(1.0, deadline - time.monotonic()))
        result.source_status = "completed"  # _capture took it only so
    else:
        src.cmd("migrate", uri=f"unix:{attempt.sock}")
        result.source_status = _wait_source(src, deadline, dst)
    _judge(result, dst, shared.scenario, deadline)
    return _after_load(result, shared, attempt.case, dst, attempt.rundir, deadline, state)


def _start(shared: _Shared, source: _Source, attempt: _Attempt) -> GuestState | None:
    """Start the destination (and the source, on its first migration); the guest state
    the source migrates with: the action performed on a fresh source, done again on one
    that migrated before, or kept from the stream a paused source gave."""
    src, dst = source.machine, attempt.dst
    first = source.migrations == 0
    dst.start()
    if first:
        src.start()
    dst.connect()
    if not first:
        return source.state if shared.capture else shared.action.again(src)
    src.connect()
    state = shared.action.perform(source.monitor)
    if shared.capture:  # the source has nothing more to do once it is taken
        source.stream, source.state = _capture(src, shared.srcdir, attempt.deadline), state
        src.shutdown()
    return state


def _replay(shared: _Shared, attempt: _Attempt, writes: list[str]) -> str:
    """The shell commands that reproduce the case by hand, with the guest's `writes`."""
    return reproduce_command(attempt.src_b, attempt.dst_b, shared.args, writes,
                             portable(shared.src_extra, shared.srcdir),
                             portable(attempt.dst_extra, attempt.rundir),
                             shared.action.replay_note(), shared.hosts.runtime.cli)


def _keep_logs(shared: _Shared, source: _Source, attempt: _Attempt, logdir: Path) -> None:
    """Copy both QEMUs' logs and the consoles into the case's logs, with reproduce.sh."""
    result = attempt.result
    logdir.mkdir(parents=True, exist_ok=True)
    for m in (source.machine, attempt.dst):
        if m.log_path.exists():
            result.logs[m.name] = str(copy_whole(m.log_path, logdir / m.log_path.name))
    for role, path in shared.action.console_logs().items():
        if Path(path).exists():
            result.logs[f"{role}-console"] = str(copy_whole(Path(path),
                                                            logdir / Path(path).name))
    result.logs["reproduce"] = str(write_whole(logdir / "reproduce.sh", "#!/bin/sh\n# "
                                               + attempt.case.id + "\n" + result.reproduce
                                               + "\n"))


def _after_load(result: CaseResult, shared: _Shared, case: Case, dst: Machine, rundir: Path,
                deadline: float, state: GuestState | None) -> bool:
    """What the guest did, once the destination judged the stream: after a pass, the
    action checks that the guest runs on (a guest without a sign of life is an error, tried
    once more: True is returned); a guest state that cannot answer the case makes it an
    error; a deviating case's message gets the state's summary."""
    guest_lost = False
    if result.observed == Observed.PASSED:
        problem = shared.action.verify_destination(
            dst, rundir, min(15.0, max(1.0, deadline - time.monotonic())))
        if problem and _ended_from_outside(dst):  # e.g. the run was interrupted
            raise MachineError(f"destination QEMU was killed, or its container removed, "
                               f"while the guest was checked: {problem}")
        if problem:  # the device state loaded, but the guest gave no sign of life:
            # under load a heartbeat can be late; no verdict, and tried once more
            result.observed = Observed.ERROR
            result.message = f"the destination's guest did not run on: {problem}"
            guest_lost = True
    why = shared.scenario.inconclusive(case.machine, result.source, result.destination,
                                       case.globals, shared.action, state)
    if why:  # the guest did not do what the model assumes: no verdict
        result.observed, result.message = Observed.ERROR, why
    summary = state.summary() if state is not None and result.deviates else ""
    if summary:
        result.message = f"{result.message} ({summary})".strip()
    return guest_lost


def _capture(src: Machine, srcdir: Path, deadline: float) -> bytes:
    """Migrate the paused source once into a Capture: what it sent (its migration must
    complete; anything else is an error of the case)."""
    capture = Capture(srcdir / "stream.sock")
    try:
        src.let_in(capture.path)  # the source connects to it
        src.cmd("migrate", uri=f"unix:{capture.path}")
        status = _wait_source(src, deadline)
        if status != "completed":
            raise MachineError(f"source: migration {status} while its stream was taken")
        return capture.result(max(1.0, deadline - time.monotonic()))
    finally:
        capture.close()


def _wait_source(src: Machine, deadline: float, dst: Machine | None = None) -> str:
    """The source's final migration status (or its last one, once the destination gave
    up)."""
    wait = pauses()
    while time.monotonic() < deadline:
        if not src.running():
            raise MachineError(f"source QEMU exited during migration: {src.log_tail(3)}")
        status = str(src.cmd("query-migrate").get("status", ""))
        if status in FINAL:
            return status
        if dst is not None and not dst.running():  # gave up; the source may not notice yet
            return status or "unknown"
        time.sleep(next(wait))
    raise MachineError("timeout waiting for the migration to finish")


def _ended_from_outside(machine: Machine) -> bool:
    """The process is gone by a signal (a shell's 128+N), or with its container (-1): a QEMU
    killed or crashed, never a verdict on the migration."""
    if machine.running():
        return False
    code = machine.wait_exit(2.0)
    return code is None or code < 0 or code > 128


def _judge(result: CaseResult, dst: Machine, scenario: Scenario, deadline: float) -> None:
    """The verdict, from the destination alone."""
    try:
        mig, run_state = _destination_state(dst, deadline)
    except MachineError:
        # The monitor went away: the destination is exiting (it rejected the stream), or hung.
        if dst.wait_exit(5.0) is None:
            raise
        mig = run_state = ""
    if not dst.running():
        code = dst.wait_exit(2.0)
        lines = scenario.error_lines(dst.log_text())
        result.destination_error = "\n".join(lines)
        result.destination_status = f"exited ({code})"
        if code != REJECTED_EXIT:  # killed by a signal, or an exit QEMU never uses for this
            result.observed = Observed.ERROR
            result.message = f"destination QEMU crashed or was killed (exit {code})"
            return
        result.observed = _rejection(scenario, lines)
        result.message = lines[0] if lines else "destination QEMU exited"
        return
    result.destination_status = f"migration {mig or 'none'}, {run_state}"
    if mig == "completed" and run_state == "running":
        result.observed = Observed.PASSED
        result.message = ""
    else:
        lines = scenario.error_lines(dst.log_text())
        result.observed = _rejection(scenario, lines)
        result.destination_error = "\n".join(lines)
        result.message = f"destination: migration {mig or 'none'}, state {run_state}"


def _rejection(scenario: Scenario, lines: list[str]) -> Observed:
    """A destination that rejected the stream: the scenario's bug when its error is the
    scenario's signature, else another failure (never a reproduction of the bug)."""
    return Observed.FAILED if scenario.signature.matches(lines) else Observed.FAILED_OTHER


def _destination_state(dst: Machine, deadline: float) -> tuple[str, str]:
    """Wait until the destination left `inmigrate`; then its migration status and, after
    `cont`, its run state. ("", "") when the process is gone."""
    wait = pauses()
    while True:
        if not dst.running():
            return "", ""
        if dst.cmd("query-status").get("status", "") != "inmigrate":
            break
        if time.monotonic() > deadline:
            raise MachineError("timeout waiting for the destination to load the migration")
        time.sleep(next(wait))
    mig = str(dst.cmd("query-migrate").get("status", ""))
    dst.cmd("cont")
    return mig, str(dst.cmd("query-status").get("status", ""))
