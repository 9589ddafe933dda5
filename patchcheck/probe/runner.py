"""Drive paused QEMUs to record register traces, one experiment per (register, bit).

Every experiment must start from the state of a freshly started QEMU. Writing back the
original value alone does not restore a device: status event bits are RW1C (a write-back of
a set bit clears it), a control register write can be a "command" that sets a completion
bit, and a write can unplug devices or change state that no register write brings back.
Two methods give that start:

- `fresh`: a new paused QEMU per experiment (~0.1 s to start and answer QMP).
- `reuse` (the default): one QEMU per worker, and between two experiments `system_reset`
  (waiting for its RESET event), then the probed and context registers the reset did not
  restore written back to the values a fresh QEMU has. The experiment's first snapshot
  must then equal the fresh QEMU's, register for register, or the experiment runs again on
  a new QEMU; so does every experiment after one that unplugged a device, failed, or left
  the QEMU unable to reset. A QEMU's hidden state (what no probed register shows) could
  still differ: tests/integration/test_probe_reuse.py runs both methods on every build and
  asserts identical per-bit results.

One experiment, for bit b of register R (the scenario's topology, paused, -S):

    read every probed and context register          (values after reset)
    optional arm: a guest-realistic action that sets the bit, where one exists,
                  then every register again
    read R
    write R with b = 0, read R; b = 1, read R; b = 0, read R; b = 1, read R
    read every register again                       (side effects on other registers)

The other bits of the written value follow the register's style (classify.Register):
read-modify-write for capability and control registers, only the tested bit for status
registers. Everything goes through legacy port-I/O configuration access (pciconf), like
a guest driver. The trace of each experiment is kept: classify.py turns it into the
bit's behaviour and the reports keep it for anyone who wants to check.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import PROBE_METHODS
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import InfraError, PatchcheckError
from patchcheck.jobs import in_background
from patchcheck.probe import classify
from patchcheck.probe.assemble import assemble
from patchcheck.probe.classify import Op
from patchcheck.probe.experiment import Experiment, Outcome, experiments
from patchcheck.probe.model import BuildProbe
from patchcheck.qemu import ecam
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import Machine, MachineError, reproducer
from patchcheck.qemu.pciconf import (
    ConfigSpace,
    Monitor,
    PciConfig,
    PciError,
    find_capability,
    find_device,
)
from patchcheck.qemu.registers import Register, RegisterSet
from patchcheck.result.model import Case
from patchcheck.scenarios.base import Scenario

STEPS = (0, 1, 0, 1)  # the values written to the tested bit, in order



METHODS = PROBE_METHODS  # patchcheck.matrix.probe_method, checked where it is read


class Drifted(PatchcheckError):
    """A reused QEMU did not start an experiment where a fresh one does."""


class _Tracer:
    """Register-level access to the probed capability, recording every op."""

    def __init__(self, cfg: ConfigSpace, cap: int, registers: RegisterSet) -> None:
        self.cfg = cfg
        self.cap = cap
        self.registers = registers
        self.by_key = registers.registers
        self.trace: list[Op] = []

    def read(self, key: str) -> int:
        reg = self.by_key[key]
        value = self.cfg.read(self.cap + reg.offset, reg.size)
        self.trace.append(classify.read(key, value))
        return value

    def write(self, key: str, value: int) -> None:
        reg = self.by_key[key]
        self.trace.append(classify.write(key, value))
        self.cfg.write(self.cap + reg.offset, reg.size, value)

    def snapshot(self) -> dict[str, int]:
        return {reg.key: self.read(reg.key)
                for reg in (*self.registers.probed, *self.registers.context)}


def written_value(register: Register, current: int, bit: int, value: int) -> int:
    """The register value that writes `value` to `bit` in the register's style."""
    if register.style == "bit":
        return value << bit
    return (current & ~(1 << bit)) | (value << bit)


def _peripherals(monitor: Monitor) -> set[str]:
    return {str(e["name"]) for e in monitor.qmp("qom-list", path="/machine/peripheral") or []}


def open_capability(machine: Monitor, registers: RegisterSet,
                    qtest: ecam.Qtest | None = None) -> tuple[ConfigSpace, int]:
    """The probed device's configuration space and the capability's offset (walked, never
    assumed): through port I/O, or through ECAM for an extended capability."""
    address = find_device(machine, registers.device)
    if not registers.extended:
        cfg = PciConfig(machine, address, io=qtest)  # port I/O over qtest when there is one
        return cfg, find_capability(cfg, registers.capability)
    if qtest is None:
        raise PciError("an extended capability needs a QEMU started with a qtest socket")
    ecam.enable(qtest)
    ext = ecam.EcamConfig(qtest, address)
    return ext, ecam.find_extended_capability(ext, registers.capability)


def run_experiment(exp: Experiment, machine: Monitor, registers: RegisterSet,
                   qtest: ecam.Qtest | None = None,
                   start: Mapping[str, int] | None = None) -> Outcome:
    """One experiment on a paused QEMU (the caller launches and stops it). `machine` is
    anything with hmp() and qmp(): a patchcheck.qemu.machine.Machine; `qtest` its qtest
    connection when the registers are in extended configuration space. `start`: the first
    snapshot a fresh QEMU gives (a reused QEMU's must equal it, or Drifted)."""
    cfg, cap = open_capability(machine, registers, qtest)
    tracer = _Tracer(cfg, cap, registers)
    outcome = Outcome(exp, tracer.trace, cap, address=cfg.address)
    outcome.start = tracer.snapshot()
    if start is not None and outcome.start != dict(start):
        raise Drifted(f"{exp.slug}: the reset QEMU differs from a fresh one: "
                      + ", ".join(f"{k} {outcome.start.get(k)} != {v}"
                                  for k, v in start.items() if outcome.start.get(k) != v))
    arm = exp.arm
    if arm is not None:
        for key, make in arm.writes:
            tracer.write(key, make(tracer.read(key)))
        tracer.snapshot()  # the state the tested writes start from
    before = _peripherals(machine)
    current = tracer.read(exp.register.key)
    for value in STEPS:
        tracer.write(exp.register.key, written_value(exp.register, current, exp.bit, value))
        current = tracer.read(exp.register.key)
    tracer.snapshot()
    outcome.unplugged = tuple(sorted(before - _peripherals(machine)))
    return outcome


class Resettable(Monitor, Protocol):
    """A monitor that can reset its machine and wait until that is done (machine.Machine)."""

    def reset(self) -> None: ...


def restore(machine: Resettable, registers: RegisterSet, qtest: ecam.Qtest | None,
            fresh: Mapping[str, int]) -> None:
    """Bring a used QEMU back to where a fresh one starts, as far as the registers show:
    system_reset, then every probed or context register the reset left different written
    back: control registers with the fresh value, then status registers (style "bit") with
    1s where a bit is set that a fresh QEMU has clear (write-1-to-clear; a control write may
    have set a status bit such as Command Completed). run_experiment's `start` check
    decides whether that sufficed."""
    machine.reset()
    cfg, cap = open_capability(machine, registers, qtest)
    regs = [reg for reg in (*registers.probed, *registers.context) if reg.key in fresh]
    for status in (False, True):
        for reg in regs:
            if (reg.style == "bit") != status:
                continue
            current = cfg.read(cap + reg.offset, reg.size)
            if current != fresh[reg.key]:
                cfg.write(cap + reg.offset, reg.size,
                          current & ~fresh[reg.key] if status else fresh[reg.key])


@dataclass
class _Live:
    """A launched QEMU kept for the next experiment, with the snapshot it started with."""

    qemu: Machine
    qtest: ecam.Qtest | None
    rundir: Path
    fresh: dict[str, int]

    def close(self) -> None:
        if self.qtest is not None:
            self.qtest.close()
        self.qemu.shutdown()
        shutil.rmtree(self.rundir, ignore_errors=True)


class ProbeRunner:
    """Runs every experiment of one (build, machine type) and turns them into a BuildProbe."""

    def __init__(self, hosts: Hosts, scratch: Path, scenario: Scenario,
                 registers: RegisterSet, *, ram_mib: int = 128, accel: str = "tcg",
                 timeout: float = 30.0, jobs: int = 2, method: str = "reuse",
                 port_io: str = "qtest") -> None:
        if method not in METHODS:
            raise ValueError(f"probe method {method!r} (known: {', '.join(METHODS)})")
        self.method = method
        # Configuration accesses over a qtest socket (~10x cheaper than an HMP command over
        # QMP); the monitor's HMP `o`/`i` when `port_io` is "hmp" (only legacy port I/O:
        # an extended capability needs qtest for ECAM).
        self.qtest = port_io == "qtest" or registers.extended
        self.hosts = hosts
        self.scratch = scratch
        self.scenario = scenario
        self.registers = registers
        self.ram_mib = ram_mib
        self.accel = accel
        self.timeout = timeout
        self.jobs = max(1, jobs)

    def args(self, record: BuildRecord, machine: str, globals_: Sequence[str] = ()) -> list[str]:
        case = Case(machine, record.name, record.name, "none")
        return [*self.scenario.machine_args(case.machine, self.ram_mib, self.accel),
                *(arg for g in globals_ for arg in ("-global", g)), "-S"]

    def _fresh(self, record: BuildRecord, args: list[str], exp: Experiment,
               launches: list[int], attempts: int = 2) -> tuple[Outcome, _Live | None]:
        """The experiment on a new QEMU; that QEMU, still running, when it can be reused
        (no device unplugged, no error)."""
        started = time.monotonic()
        error = ""
        for _ in range(attempts):  # a QEMU that fails to start is retried once
            rundir = Path(tempfile.mkdtemp(prefix="x-", dir=self.scratch))
            socket = rundir / "qt.sock"
            argv = [*args, *ecam.qtest_args(socket)] if self.qtest else args
            qemu = self.hosts.machine(record.image_id, record.binary, argv, rundir, "probe",
                                      timeout=self.timeout)
            live = _Live(qemu, None, rundir, {})
            launches.append(1)
            try:
                qemu.launch()
                live.qtest = ecam.Qtest(socket, self.timeout) if self.qtest else None
                outcome = run_experiment(exp, qemu, self.registers, live.qtest)
                outcome.seconds = round(time.monotonic() - started, 3)
                if self.method == "reuse" and not outcome.unplugged:
                    live.fresh = outcome.start
                    return outcome, live
                live.close()
                return outcome, None
            except (MachineError, PciError, PatchcheckError) as exc:
                error = f"{exp.slug}: {exc}"
                tail = qemu.log_tail(3)
                if tail and tail not in error:  # a failed start quotes it already
                    error += f" (QEMU: {tail})"
                live.close()
        return Outcome(exp, [], None, (), round(time.monotonic() - started, 3), error), None

    def _reused(self, live: _Live, exp: Experiment) -> Outcome | None:
        """The experiment on a used QEMU brought back to a fresh one's start; None when it
        could not be (the caller closes it and starts a new one)."""
        started = time.monotonic()
        try:
            restore(live.qemu, self.registers, live.qtest, live.fresh)
            outcome = run_experiment(exp, live.qemu, self.registers, live.qtest,
                                     start=live.fresh)
        except (MachineError, PciError, PatchcheckError):
            return None
        outcome.seconds = round(time.monotonic() - started, 3)
        return outcome

    def _worker(self, record: BuildRecord, args: list[str], queue: list[tuple[int, Experiment]],
                lock: threading.Lock, results: dict[int, Outcome], launches: list[int]) -> None:
        """Take experiments from the shared queue until it is empty, on one QEMU at a time."""
        live: _Live | None = None
        try:
            while True:
                with lock:
                    if not queue or self.hosts.closed:  # done, or the run is ending
                        return
                    index, exp = queue.pop(0)
                outcome = None
                if live is not None:
                    outcome = self._reused(live, exp)
                    if outcome is None or outcome.unplugged:
                        live.close()
                        live = None
                if outcome is None:
                    outcome, live = self._fresh(record, args, exp, launches)
                results[index] = outcome
        finally:
            if live is not None:
                live.close()

    def probe(self, record: BuildRecord, machine: str, globals_: Sequence[str] = (),
              selected: Sequence[Experiment] | None = None) -> BuildProbe:
        args = self.args(record, machine, globals_)
        started = time.monotonic()
        todo = list(selected) if selected is not None else experiments(self.registers)
        queue = list(enumerate(todo))
        results: dict[int, Outcome] = {}
        launches: list[int] = []
        lock = threading.Lock()
        # Daemon threads, not an executor (whose workers are joined at exit): an interrupted
        # matrix closes the hosts and returns without waiting for the probe (jobs.parallel).
        workers = [in_background(f"probe-{i}", functools.partial(
            self._worker, record, args, queue, lock, results, launches))
            for i in range(min(self.jobs, len(todo)))]
        for done in workers:
            done()
        if len(results) < len(todo):
            raise InfraError("the run is ending: the probe stopped")
        outcomes = [results[i] for i in range(len(todo))]
        probe = assemble(record, machine, list(globals_), outcomes, self.registers)
        probe.seconds = round(time.monotonic() - started, 2)
        probe.qemus, probe.method = len(launches), self.method
        probe.command = reproduce_command(record, args, self.hosts.runtime.cli)
        return probe


def reproduce_command(record: BuildRecord, args: Sequence[str], cli: str = "docker") -> str:
    """The paused QEMU of an experiment, by hand, with the monitor on stdio."""
    return shlex.join(reproducer(cli, record.image, record.binary, args))


def hosts_for(runtime: Runtime, scratch: Path, cache_dir: Path, memory_mib: int = 0) -> Hosts:
    """QEMU host containers: the scratch dir (sockets, dumps) and the build cache, read-only;
    `memory_mib` each container's memory limit (0: none)."""
    from patchcheck.engine.runtime import Mount

    builds = str(cache_dir / "builds")
    return Hosts(runtime, (Mount(str(scratch), str(scratch)), Mount(builds, builds,
                                                                    read_only=True)),
                 memory_mib=memory_mib)
