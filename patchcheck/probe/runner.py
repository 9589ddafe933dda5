"""Drive paused QEMUs to record register traces, one fresh QEMU per (register, bit).

Why a fresh QEMU per experiment: writing back the original value does not restore a
device. Status event bits are RW1C (a write-back of a set bit clears it), a control
register write can be a "command" that sets a completion bit, and a write can unplug
devices or change state that no register write brings back. A paused QEMU starts and answers QMP in ~0.1 s, so
every experiment gets its own, and experiments run in parallel.

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

import shlex
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import ecam
from ..build import BuildRecord
from ..errors import PatchcheckError
from ..machine import MachineError, reproducer
from ..migrate import Hosts, base_args
from ..pciconf import (
    ConfigSpace,
    Monitor,
    PciAddress,
    PciConfig,
    PciError,
    find_capability,
    find_device,
)
from ..results import Case
from ..runtime import Runtime
from ..scenarios.base import Scenario
from . import classify
from .classify import Op
from .model import BitResult, BuildProbe, RegisterResult
from .registers import Arm, Register, RegisterSet

STEPS = (0, 1, 0, 1)  # the values written to the tested bit, in order


@dataclass(frozen=True)
class Experiment:
    register: Register
    bit: int
    arm: Arm | None = None

    @property
    def slug(self) -> str:
        return f"{self.register.key}-{self.bit}"


def experiments(registers: RegisterSet) -> list[Experiment]:
    return [Experiment(reg, bit, registers.arms.get((reg.key, bit)))
            for reg in registers.probed for bit in range(reg.bits)]


@dataclass
class Outcome:
    """What one experiment recorded."""

    experiment: Experiment
    trace: list[Op]
    cap_offset: int | None = None
    unplugged: tuple[str, ...] = ()  # by the tested writes (not by the arm)
    seconds: float = 0.0
    error: str = ""
    address: PciAddress | None = None


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
        cfg = PciConfig(machine, address)
        return cfg, find_capability(cfg, registers.capability)
    if qtest is None:
        raise PciError("an extended capability needs a QEMU started with a qtest socket")
    ecam.enable(qtest)
    ext = ecam.EcamConfig(qtest, address)
    return ext, ecam.find_extended_capability(ext, registers.capability)


def run_experiment(exp: Experiment, machine: Monitor, registers: RegisterSet,
                   qtest: ecam.Qtest | None = None) -> Outcome:
    """One experiment on a freshly launched, paused QEMU (the caller launches and stops it).
    `machine` is anything with hmp() and qmp(): a patchcheck.machine.Machine; `qtest` its
    qtest connection when the registers are in extended configuration space."""
    cfg, cap = open_capability(machine, registers, qtest)
    tracer = _Tracer(cfg, cap, registers)
    outcome = Outcome(exp, tracer.trace, cap, address=cfg.address)
    tracer.snapshot()
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


class ProbeRunner:
    """Runs every experiment of one (build, machine type) and turns them into a BuildProbe."""

    def __init__(self, hosts: Hosts, scratch: Path, scenario: Scenario,
                 registers: RegisterSet, *, ram_mib: int = 128, accel: str = "tcg",
                 timeout: float = 30.0, jobs: int = 2) -> None:
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
        return [*base_args(self.scenario, case, self.ram_mib, self.accel),
                *(arg for g in globals_ for arg in ("-global", g)), "-S"]

    def _one(self, record: BuildRecord, args: list[str], exp: Experiment,
             attempts: int = 2) -> Outcome:
        started = time.monotonic()
        error = ""
        for _ in range(attempts):  # a QEMU that fails to start is retried once
            rundir = Path(tempfile.mkdtemp(prefix="x-", dir=self.scratch))
            socket = rundir / "qt.sock"
            argv = [*args, *ecam.qtest_args(socket)] if self.registers.extended else args
            qemu = self.hosts.machine(record.image_id, record.binary, argv, rundir, "probe",
                                      timeout=self.timeout)
            qtest: ecam.Qtest | None = None
            try:
                qemu.launch()
                qtest = ecam.Qtest(socket, self.timeout) if self.registers.extended else None
                outcome = run_experiment(exp, qemu, self.registers, qtest)
                outcome.seconds = round(time.monotonic() - started, 3)
                return outcome
            except (MachineError, PciError, PatchcheckError) as exc:
                error = f"{exp.slug}: {exc}"
                tail = qemu.log_tail(3)
                if tail:
                    error += f" (QEMU: {tail})"
            finally:
                if qtest is not None:
                    qtest.close()
                qemu.shutdown()
                shutil.rmtree(rundir, ignore_errors=True)
        return Outcome(exp, [], None, (), round(time.monotonic() - started, 3), error)

    def probe(self, record: BuildRecord, machine: str, globals_: Sequence[str] = (),
              selected: Sequence[Experiment] | None = None) -> BuildProbe:
        args = self.args(record, machine, globals_)
        started = time.monotonic()
        todo = list(selected) if selected is not None else experiments(self.registers)
        with ThreadPoolExecutor(self.jobs) as pool:
            outcomes = list(pool.map(lambda e: self._one(record, args, e), todo))
        probe = assemble(record, machine, list(globals_), outcomes, self.registers)
        probe.seconds = round(time.monotonic() - started, 2)
        probe.command = reproduce_command(record, args, self.hosts.runtime.cli)
        return probe


def reproduce_command(record: BuildRecord, args: Sequence[str], cli: str = "docker") -> str:
    """The paused QEMU of an experiment, by hand, with the monitor on stdio."""
    return shlex.join(reproducer(cli, record.image, record.binary, args))


def _effects(trace: Sequence[Op], register: str) -> dict[str, list[int]]:
    """Other registers whose value differs between the read just before the tested writes
    and the final snapshot: the side effects of writing the tested bit."""
    last_write = max((i for i, op in enumerate(trace) if op.write and op.register == register),
                     default=-1)
    first_write = min((i for i, op in enumerate(trace) if op.write and op.register == register),
                      default=-1)
    if last_write < 0:
        return {}
    before: dict[str, int] = {}
    for op in trace[:first_write]:
        if not op.write:
            before[op.register] = op.value
    after: dict[str, int] = {}
    for op in trace[last_write:]:
        if not op.write:
            after[op.register] = op.value
    return {key: [before[key], after[key]] for key in after
            if key != register and key in before and before[key] != after[key]}


def effects_text(effects: Mapping[str, Sequence[int]], unplugged: Sequence[str]) -> str:
    parts = [f"{k} {v[0]:#06x}->{v[1]:#06x}" for k, v in sorted(effects.items())]
    if unplugged:
        parts.append("unplugged " + ",".join(unplugged))
    return "; ".join(parts)


def assemble(record: BuildRecord, machine: str, globals_: list[str],
             outcomes: Sequence[Outcome], registers: RegisterSet) -> BuildProbe:
    """Outcomes -> classified, judged register tables."""
    probe = BuildProbe(build=record.name, machine=machine, globals=globals_,
                       qemu_version=record.qemu_version, fix=record.fix_state,
                       fix_applied=str(record.fix.get("applied", "")), has_fix=record.has_fix,
                       source=record.source, binary=record.binary)
    offsets = {o.cap_offset for o in outcomes if o.cap_offset is not None}
    if len(offsets) > 1:
        probe.errors.append(f"the capability moved between experiments: {sorted(offsets)}")
    probe.cap_offset = min(offsets) if offsets else None
    port = next((o.address for o in outcomes if o.address is not None), None)
    probe.root_port = [port.bus, port.device, port.function] if port else []
    context: dict[str, int] = {}
    for outcome in outcomes:
        for reg in (*registers.probed, *registers.context):
            value = classify.reset_value(outcome.trace, reg.key)
            if value is not None and reg.key not in context:
                context[reg.key] = value
    probe.reset = dict(context)
    by_register: dict[str, RegisterResult] = {}
    for reg in registers.probed:
        address = None if probe.cap_offset is None else probe.cap_offset + reg.offset
        by_register[reg.key] = RegisterResult(reg.key, reg.title, reg.offset, address, reg.size,
                                              context.get(reg.key), reg.style, [])
    for outcome in outcomes:
        exp = outcome.experiment
        key = exp.register.key
        if outcome.error:
            probe.errors.append(outcome.error)
            behaviour = classify.BitBehaviour(classify.Behaviour.UNTESTED, None)
        else:
            behaviour = classify.classify_bit(outcome.trace, key, exp.bit)
        spec = registers.spec.get((key, exp.bit))
        conformance = classify.check(spec, behaviour, context)
        if outcome.error:
            conformance = classify.Conformance(classify.Status.UNTESTED, outcome.error)
        effects = _effects(outcome.trace, key)
        by_register[key].bits.append(BitResult(
            register=key, bit=exp.bit, name=registers.bit_name(key, exp.bit),
            behaviour=behaviour.kind.value, reset=behaviour.reset, value=behaviour.value,
            label=behaviour.label, spec=spec.text if spec else "",
            status=conformance.status.value, reason=conformance.reason,
            armed=exp.arm.why if exp.arm else "",
            transitions=[[t.before, t.written, t.after] for t in behaviour.transitions],
            effects=effects, unplugged=list(outcome.unplugged),
            effects_text=effects_text(effects, outcome.unplugged),
            trace=[str(op) for op in outcome.trace], seconds=outcome.seconds,
            error=outcome.error))
    for result in by_register.values():
        result.bits.sort(key=lambda b: b.bit)
    probe.registers = list(by_register.values())
    probe.experiments = len(outcomes)
    return probe


def hosts_for(runtime: Runtime, scratch: Path, cache_dir: Path) -> Hosts:
    """QEMU host containers: the scratch dir (sockets, dumps) and the build cache, read-only."""
    from ..runtime import Mount

    builds = str(cache_dir / "builds")
    return Hosts(runtime, (Mount(str(scratch), str(scratch)), Mount(builds, builds,
                                                                    read_only=True)))
