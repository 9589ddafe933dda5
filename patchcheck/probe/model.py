"""The probe's results as data classes: per bit, per register, per build and machine type,
per without-fix/with-fix pair, and the run; their comparison, the one-line verdict, and
reading probe.json back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from patchcheck.probe import classify
from patchcheck.probe.classify import BitChange, Change, Op
from patchcheck.probe.vmstate import VmstateComparison, VmstateDiff
from patchcheck.qemu.pciconf import PciAddress
from patchcheck.qemu.registers import RegisterSet


@dataclass
class BitResult:
    register: str
    bit: int
    name: str
    behaviour: str  # classify.Behaviour value
    reset: int | None
    value: int | None  # RO: the constant read
    label: str  # "RO=1": behaviour and the value after reset
    spec: str  # the specification's attribute ("" when not modelled)
    status: str  # classify.Status value
    reason: str = ""
    armed: str = ""  # the guest action that set the bit before the test, if any
    transitions: list[list[int]] = field(default_factory=list)  # [before, written, after]
    effects: dict[str, list[int]] = field(default_factory=dict)  # other register: [before, after]
    unplugged: list[str] = field(default_factory=list)
    effects_text: str = ""
    trace: list[str] = field(default_factory=list)  # "w ctl 0x0040", in order
    seconds: float = 0.0
    error: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.register, self.bit)

    @property
    def violation(self) -> bool:
        return self.status == classify.Status.VIOLATION

    def observation(self) -> classify.Observation:
        behaviour = classify.BitBehaviour(classify.Behaviour(self.behaviour), self.reset,
                                          self.value)
        return classify.Observation(behaviour, classify.Conformance(
            classify.Status(self.status), self.reason), self.effects_text)


@dataclass
class RegisterResult:
    key: str
    title: str
    offset: int  # from the Express capability
    address: int | None  # in configuration space
    size: int
    reset: int | None
    style: str
    bits: list[BitResult] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.title} ({self.address:#04x})" if self.address is not None else self.title


@dataclass
class BuildProbe:
    """Every probed bit of one build on one machine type."""

    build: str
    machine: str
    globals: list[str]
    qemu_version: str
    fix: str
    fix_applied: str
    has_fix: bool
    source: str
    binary: str
    cap_offset: int | None = None
    root_port: list[int] = field(default_factory=list)  # bus, device, function
    reset: dict[str, int] = field(default_factory=dict)  # register values after reset
    registers: list[RegisterResult] = field(default_factory=list)
    experiments: int = 0
    qemus: int = 0  # QEMUs launched for them (fewer than experiments when QEMUs are reused)
    method: str = ""  # "fresh": one QEMU per experiment; "reuse": reset between experiments
    seconds: float = 0.0
    command: str = ""  # the paused QEMU, by hand (docker run ... -monitor stdio)
    errors: list[str] = field(default_factory=list)

    def hmp_lines(self, register: str, bit: int) -> list[str]:
        """The experiment of one bit as monitor commands (legacy port I/O), with what each
        read returned: paste them into `command`'s monitor to replay it."""
        if self.cap_offset is None or len(self.root_port) != 3:
            return []
        address = PciAddress(*self.root_port)
        lines = []
        for text in self.bit(register, bit).trace:
            op = Op.parse(text)
            if not op.write and op.register != register:
                continue  # the snapshots of other registers
            reg = self.register(op.register)  # a probed register (arms write those too)
            offset = self.cap_offset + reg.offset
            size = {1: "b", 2: "h", 4: "w"}[reg.size]
            port = 0xCFC + (offset & 3)
            lines.append(f"o /w 0xcf8 {address.cf8(offset):#x}")
            lines.append(f"o /{size} {port:#x} {op.value:#x}" if op.write else
                         f"i /{size} {port:#x}    # {reg.title}: {op.value:#06x}")
        return lines

    def bits(self) -> list[BitResult]:
        return [b for r in self.registers for b in r.bits]

    def bit(self, register: str, bit: int) -> BitResult:
        for b in self.bits():
            if b.key == (register, bit):
                return b
        raise KeyError((register, bit))

    def register(self, key: str) -> RegisterResult:
        for r in self.registers:
            if r.key == key:
                return r
        raise KeyError(key)

    @property
    def violations(self) -> list[BitResult]:
        return [b for b in self.bits() if b.violation]

    def observations(self) -> dict[tuple[str, int], classify.Observation]:
        return {b.key: b.observation() for b in self.bits()}


@dataclass(frozen=True)
class Deviation:
    """A bit that violates the specification in the build with the fix and behaves the same
    without it: QEMU's, not the fix's."""

    register: str
    bit: int
    name: str
    label: str
    spec: str
    reason: str
    title: str = ""  # the register's title


@dataclass
class PairResult:
    """A without-fix and a with-fix build of one tree, on one machine type."""

    machine: str
    source: str
    without: str
    with_fix: str
    changes: list[BitChange] = field(default_factory=list)
    preexisting: list[Deviation] = field(default_factory=list)  # violations both builds share
    error: str = ""

    @property
    def introduced(self) -> list[BitChange]:
        return [c for c in self.changes if c.change == Change.INTRODUCED]

    @property
    def name(self) -> str:
        return f"{self.without}->{self.with_fix}"


@dataclass
class ProbeRun:
    run_id: str
    started: str
    seconds: float = 0.0
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    machines: dict[str, list[str]] = field(default_factory=dict)  # build -> machine types
    probes: list[BuildProbe] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)
    # across QEMU versions (probe/versions.py): without = the oldest version's build
    versions: list[PairResult] = field(default_factory=list)
    vmstate: list[VmstateComparison] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)  # trees without a without-fix build
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def probe(self, build: str, machine: str) -> BuildProbe:
        for p in self.probes:
            if p.build == build and p.machine == machine:
                return p
        raise KeyError((build, machine))

    def pair(self, without: str, with_fix: str, machine: str) -> PairResult:
        for p in self.pairs:
            if (p.without, p.with_fix, p.machine) == (without, with_fix, machine):
                return p
        raise KeyError((without, with_fix, machine))

    def vmstate_for(self, without: str, with_fix: str, machine: str) -> VmstateComparison | None:
        for v in self.vmstate:
            if (v.without, v.with_fix, v.machine) == (without, with_fix, machine):
                return v
        return None

    @property
    def introduced(self) -> list[tuple[PairResult, BitChange]]:
        return [(p, c) for p in self.pairs for c in p.introduced]

    @property
    def all_errors(self) -> list[str]:
        return [*self.errors, *(e for p in self.probes for e in p.errors),
                *(f"{p.name} {p.machine}: {p.error}" for p in (*self.pairs, *self.versions)
                  if p.error),
                *(f"vmstate {v.without}->{v.with_fix} {v.machine}: {v.error}"
                  for v in self.vmstate if v.error)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Across versions (probe/versions.py pairs the builds)


def breaks(run: ProbeRun) -> list[PairResult]:
    """Comparisons in which a newer build with the fix changed guest-visible behaviour."""
    return [v for v in run.versions if run.builds.get(v.with_fix, {}).get("has_fix")
            and any(c.aspect == "behaviour" for c in v.changes)]


def break_texts(run: ProbeRun) -> list[str]:
    return [f"{v.with_fix} on {v.machine}: {len(v.changes)} guest-visible change(s) from "
            f"{v.without} (QEMU {run.builds.get(v.without, {}).get('qemu_version', '?')}): "
            + ", ".join(f"{c.title or c.register} bit {c.bit} {c.name} {c.without} -> "
                        f"{c.with_fix}" for c in v.changes[:6])
            + (" ..." if len(v.changes) > 6 else "") for v in breaks(run)]


# --------------------------------------------------------------------------------------------
# Comparison


def compare_probes(without: BuildProbe, with_fix: BuildProbe, registers: RegisterSet
                   ) -> PairResult:
    pair = PairResult(without.machine, without.source, without.build, with_fix.build)
    if without.errors or with_fix.errors:
        pair.error = "; ".join([*without.errors, *with_fix.errors])[:500]
    pair.changes = classify.compare(without.observations(), with_fix.observations(), registers)
    changed = {c.key for c in pair.changes if c.aspect == "behaviour"}
    for bit in with_fix.violations:
        if bit.key not in changed:
            pair.preexisting.append(Deviation(bit.register, bit.bit, bit.name, bit.label,
                                              bit.spec, bit.reason,
                                              registers.title(bit.register)))
    return pair


def deviations_text(deviations: Sequence[Deviation]) -> list[str]:
    """Grouped by register and observation: "Link Control: ASPMC[0], LD (RW, observed RO=0)"."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for d in deviations:
        groups.setdefault((d.register, d.spec, d.label), []).append(d.name)
    titles = {d.register: d.title or d.register for d in deviations}
    return [f"{titles[reg]}: {', '.join(names)} (spec {spec}, observed {label})"
            for (reg, spec, label), names in groups.items()]


def _where(probe: BuildProbe, register: str) -> str:
    try:
        return probe.register(register).where
    except KeyError:
        return register





def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}


def from_dict(data: dict[str, Any]) -> ProbeRun:
    """The inverse of ProbeRun.to_dict() (probe.json), for regenerating reports."""
    def register(r: dict[str, Any]) -> RegisterResult:
        return RegisterResult(**{**_known(RegisterResult, r),
                                 "bits": [BitResult(**_known(BitResult, b)) for b in r["bits"]]})

    def probe(p: dict[str, Any]) -> BuildProbe:
        return BuildProbe(**{**_known(BuildProbe, p),
                             "registers": [register(r) for r in p.get("registers", [])]})

    def change(c: dict[str, Any]) -> BitChange:
        return BitChange(**{**_known(BitChange, c), "change": Change(c["change"])})

    def pair(p: dict[str, Any]) -> PairResult:
        return PairResult(**{**_known(PairResult, p),
                             "changes": [change(c) for c in p.get("changes", [])],
                             "preexisting": [Deviation(**d) for d in p.get("preexisting", [])]})

    def vm(v: dict[str, Any]) -> VmstateComparison:
        diffs = [VmstateDiff(**{**_known(VmstateDiff, d), "breaks": tuple(d.get("breaks", ()))})
                 for d in v.get("differences", [])]
        return VmstateComparison(**{**_known(VmstateComparison, v), "differences": diffs})

    return ProbeRun(**{**_known(ProbeRun, data),
                       "probes": [probe(p) for p in data.get("probes", [])],
                       "pairs": [pair(p) for p in data.get("pairs", [])],
                       "versions": [pair(p) for p in data.get("versions", [])],
                       "vmstate": [vm(v) for v in data.get("vmstate", [])]})


def load(run_dir: Path) -> ProbeRun | None:
    """The run's probe.json, or None when the run has none (or it is unreadable)."""

    try:
        return from_dict(json.loads((run_dir / "probe.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
