"""Probe results as data classes, and their reports: probe.json, the JUnit `semantics`
suite, markdown (probe.md and a short section for summary.md), an HTML fragment and a
few lines for the terminal.

The JUnit suite has one testcase per (machine type, without-fix -> with-fix pair,
register) and one per pair for the vmstate comparison. A testcase fails when the fix
introduces a specification violation in that register (or, for vmstate, a difference
that breaks a migration direction); it is an error when QEMU could not be probed.
Deviations from the specification that the build without the fix has as well are listed
in the testcase's output, never failures: they are QEMU's, not the fix's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from ..outcome import EXIT_DEVIATION, EXIT_INFRA, EXIT_OK
from ..pciconf import PciAddress
from . import classify
from .classify import BitChange, Change, Op
from .registers import RegisterSet
from .vmstate import VmstateComparison, VmstateDiff

SUITE = "semantics"
# junit-xml writes disabled="0", which the JUnit schema (junit-10.xsd) rejects: dropped, as
# patchcheck.report.junit does for junit.xml.
_DISABLED = re.compile(r'(<testsuites?\b[^>]*?) disabled="[0-9]*"')


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
                *(f"{p.name} {p.machine}: {p.error}" for p in self.pairs if p.error),
                *(f"vmstate {v.without}->{v.with_fix} {v.machine}: {v.error}"
                  for v in self.vmstate if v.error)]

    @property
    def exit_code(self) -> int:
        """0: no fix introduces a violation; 1: one does (or breaks vmstate); 3: errors."""
        if self.all_errors:
            return EXIT_INFRA
        if self.introduced or any(v.incompatible for v in self.vmstate):
            return EXIT_DEVIATION
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        data["verdict"] = verdict(self)
        return data


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


def verdict(run: ProbeRun) -> str:
    if run.all_errors:
        return f"probe incomplete: {len(run.all_errors)} error(s); first: {run.all_errors[0]}"
    found = [f"{p.with_fix} on {p.machine}: {c.title or c.register} bit {c.bit} {c.name} "
             f"{c.without} -> {c.with_fix} (spec {c.spec})" for p, c in run.introduced]
    broken = [f"{v.with_fix} on {v.machine}: vmstate {len(v.incompatible)} incompatible "
              f"difference(s)" for v in run.vmstate if v.incompatible]
    if found or broken:
        return "a fix introduces a specification violation: " + "; ".join(found + broken)
    changed = sum(1 for p in run.pairs for c in p.changes)
    if not run.pairs:
        return "nothing compared (no without-fix/with-fix pair of one tree)"
    if changed:
        return f"no fix introduces a violation ({changed} other guest-visible change(s))"
    return "no fix changes guest-visible register behaviour"


# --------------------------------------------------------------------------------------------
# JUnit


def _register_table(without: BuildProbe, with_fix: BuildProbe, key: str) -> list[str]:
    lines = [f"{'bit':>3} {'name':<8} {'spec':<14} {without.build:<14} {with_fix.build:<14} status"]
    try:
        a_bits = {b.bit: b for b in without.register(key).bits}
        b_bits = {b.bit: b for b in with_fix.register(key).bits}
    except KeyError:
        return lines
    for bit in sorted(set(a_bits) | set(b_bits)):
        a, b = a_bits.get(bit), b_bits.get(bit)
        name = (b or a).name if (a or b) else "?"  # type: ignore[union-attr]
        spec = (b or a).spec if (a or b) else ""  # type: ignore[union-attr]
        status = b.status if b else ""
        mark = "  CHANGED" if a and b and (a.label, a.effects_text) != (b.label, b.effects_text) \
            else ""
        lines.append(f"{bit:>3} {name:<8} {spec or '-':<14} {a.label if a else '-':<14} "
                     f"{b.label if b else '-':<14} {status}{mark}")
    return lines


def junit_cases(run: ProbeRun) -> list[TestCase]:
    cases: list[TestCase] = []
    for pair in run.pairs:
        try:
            without, with_fix = run.probe(pair.without, pair.machine), run.probe(pair.with_fix,
                                                                               pair.machine)
        except KeyError:
            continue
        classname = f"{SUITE}.{pair.machine}"
        for reg in with_fix.registers or without.registers:
            changes = [c for c in pair.changes if c.register == reg.key]
            introduced = [c for c in changes if c.change == Change.INTRODUCED]
            where = _where(with_fix, reg.key)
            out = [f"{where}: without fix {pair.without} (reset "
                   f"{_hex(without.reset.get(reg.key))}), with fix {pair.with_fix} (reset "
                   f"{_hex(with_fix.reset.get(reg.key))}); KIND=r, r = value after reset"]
            out += [f"changed: {_change_text(c)}" for c in changes]
            pre = [d for d in pair.preexisting if d.register == reg.key]
            out += [f"spec deviation also without the fix (not a failure): bit {d.bit} {d.name} "
                    f"{d.label}: {d.reason}" for d in pre]
            out += ["--- bits ---", *_register_table(without, with_fix, reg.key)]
            for c in introduced:
                out += [f"--- reproduce bit {c.bit} ({c.name}) with {pair.with_fix}: start the "
                        "paused QEMU, then in its monitor ---", with_fix.command,
                        *(f"(qemu) {line}" for line in with_fix.hmp_lines(reg.key, c.bit)),
                        f"--- the same without the fix ({pair.without}) ---",
                        *(f"(qemu) {line}" for line in without.hmp_lines(reg.key, c.bit))]
            if not introduced:
                out += ["--- the paused QEMU of these experiments ---", with_fix.command]
            seconds = sum(b.seconds for b in with_fix.register(reg.key).bits) \
                if reg.key in {r.key for r in with_fix.registers} else 0.0
            # time: the experiments' own durations, added up (they run in parallel)
            tc = TestCase(f"{pair.name} {reg.title}", classname=classname,
                          elapsed_sec=round(seconds, 3), stdout="\n".join(out))
            errors = [b.error for b in (*without.bits(), *with_fix.bits())
                      if b.register == reg.key and b.error]
            if errors:
                tc.add_error_info(f"{len(errors)} experiment(s) failed", "\n".join(errors))
            elif introduced:
                tc.add_failure_info("; ".join(f"bit {c.bit} {c.name}: {c.without} -> {c.with_fix}"
                                              f" (spec {c.spec})" for c in introduced),
                                    "\n".join(c.reason for c in introduced))
            cases.append(tc)
        vm = run.vmstate_for(pair.without, pair.with_fix, pair.machine)
        if vm is not None:
            cases.append(_vmstate_case(vm, classname))
    return cases


def _vmstate_case(vm: VmstateComparison, classname: str) -> TestCase:
    out = [f"-dump-vmstate {vm.without}: sha256 {vm.without_sha256[:16]}, {vm.with_fix}: sha256 "
           f"{vm.with_sha256[:16]}; {vm.sections} sections",
           "identical" if vm.identical else f"{len(vm.differences)} difference(s) in "
                                            f"{', '.join(vm.sections_differing)}",
           *(str(d) for d in vm.differences[:200])]
    out += [f"[[ATTACHMENT|{p}]]" for p in vm.dumps.values()]
    tc = TestCase(f"{vm.without}->{vm.with_fix} vmstate", classname=classname,
                  elapsed_sec=vm.seconds, stdout="\n".join(out))
    if vm.error:
        tc.add_error_info(vm.error)
    elif vm.incompatible:
        tc.add_failure_info(f"{len(vm.incompatible)} vmstate difference(s) break migration",
                            "\n".join(str(d) for d in vm.incompatible[:50]))
    return tc


def junit_suite(run: ProbeRun) -> TestSuite:
    """The `semantics` suite, to add next to `migration` in junit.xml."""
    cases = junit_cases(run)
    for note in run.unpaired:
        tc = TestCase(f"unpaired: {note[:80]}", classname=f"{SUITE}.setup", stdout=note)
        tc.add_skipped_info(note)
        cases.append(tc)
    for error in run.errors:
        tc = TestCase(f"error: {error[:80]}", classname=f"{SUITE}.setup", stdout=error)
        tc.add_error_info(error)
        cases.append(tc)
    seen: dict[tuple[str | None, str], int] = {}
    for tc in cases:  # GitLab keeps one testcase per (classname, name)
        seen[(tc.classname, tc.name)] = seen.get((tc.classname, tc.name), 0) + 1
        if seen[(tc.classname, tc.name)] > 1:
            tc.name = f"{tc.name} #{seen[(tc.classname, tc.name)]}"
    props = {"run_id": run.run_id, "verdict": verdict(run)}
    props.update({f"note.{i}": note for i, note in enumerate(run.notes, 1)})
    for name, b in sorted(run.builds.items()):
        props[f"build.{name}"] = (f"{b.get('source')} QEMU {b.get('qemu_version')} fix "
                                  f"{b.get('fix')}/{b.get('fix_applied')}")
    return TestSuite(SUITE, cases, properties=props, timestamp=run.started)


def junit_xml(run: ProbeRun) -> str:
    """semantics.xml: the suite alone, valid against junit-10.xsd."""
    return _DISABLED.sub(r"\1", to_xml_report_string([junit_suite(run)], prettyprint=True))


# --------------------------------------------------------------------------------------------
# Text, markdown, HTML


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#06x}"


def _change_text(c: BitChange) -> str:
    text = (f"{c.title or c.register} bit {c.bit} {c.name}: {c.without} -> {c.with_fix}"
            f" [spec {c.spec or 'not modelled'}] {c.change.value}")
    if c.aspect != "behaviour":
        text += f" ({c.aspect}: {c.detail.get('without')} -> {c.detail.get('with_fix')})"
    return text + (f": {c.reason}" if c.reason and c.change == Change.INTRODUCED else "")


def _vm_text(vm: VmstateComparison | None) -> str:
    if vm is None:
        return "vmstate not compared"
    if vm.error:
        return f"vmstate error: {vm.error}"
    if vm.identical:
        return "vmstate identical"
    return (f"vmstate: {len(vm.differences)} difference(s) in {len(vm.sections_differing)} "
            f"section(s), {len(vm.incompatible)} breaking a migration direction")


def pair_lines(run: ProbeRun) -> list[str]:
    """One line per pair and machine type, then its changes indented (text and markdown)."""
    lines = []
    for pair in run.pairs:
        vm = run.vmstate_for(pair.without, pair.with_fix, pair.machine)
        head = f"{pair.machine} {pair.without} -> {pair.with_fix}:"
        if pair.error:
            lines.append(f"{head} ERROR {pair.error}")
            continue
        if not pair.changes:
            lines.append(f"{head} no guest-visible change; {_vm_text(vm)}")
            continue
        lines.append(f"{head} {len(pair.changes)} change(s), {len(pair.introduced)} introduced "
                     f"violation(s); {_vm_text(vm)}")
        lines += [f"  {'VIOLATION ' if c.change == Change.INTRODUCED else ''}{_change_text(c)}"
                  for c in pair.changes]
    return lines


def text_summary(run: ProbeRun) -> str:
    """A few lines for the terminal."""
    lines = [f"semantics {line}" if not line.startswith("  ") else line
             for line in pair_lines(run)]
    lines += [f"note: {n}" for n in [*run.unpaired, *run.notes]]
    lines.append(f"semantics: {verdict(run)}")
    return "\n".join(lines)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_section(run: ProbeRun) -> str:
    """The section for summary.md, in its style (Markdown that reads as plain text)."""
    title = "Register semantics"
    lines = ["", title, "-" * len(title), "", f"Verdict: {verdict(run)}", "",
             "Each bit of the root port's Link Control/Status and Slot Capabilities/Control/"
             "Status, written and read back through port I/O on a fresh paused QEMU per bit; "
             "KIND=r is the observed behaviour and the value after reset.", ""]
    for line in pair_lines(run):
        lines.append(f"  - {line.strip()}" if line.startswith("  ") else f"- {line}")
    seen: set[tuple[str, str, str]] = set()
    for pair in run.pairs:
        for text in deviations_text(pair.preexisting):
            if (pair.source, pair.machine, text) not in seen:
                seen.add((pair.source, pair.machine, text))
                lines.append(f"- {pair.machine} ({pair.source}), also without the fix (QEMU's, "
                             f"not a failure): {text}")
    lines += [f"- note: {n}" for n in [*run.unpaired, *run.notes]]
    lines += [f"- error: {e}" for e in run.all_errors[:20]]
    lines += ["", "Every bit of every build: probe.md; machine-readable: probe.json, "
              "semantics.xml (JUnit suite `semantics`).", ""]
    return "\n".join(lines)


def markdown(run: ProbeRun, full: bool = False) -> str:
    """summary.md's section; with `full`, all of probe.md (every bit of every build)."""
    if not full:
        return summary_section(run)
    title = f"patchcheck probe {run.run_id}"
    out = [title, "=" * len(title), summary_section(run)]
    if run.pairs and any(p.changes for p in run.pairs):
        out += ["Guest-visible changes", "---------------------", "",
                "| machine | pair | register | bit | name | without | with | spec | verdict |",
                "|---|---|---|---|---|---|---|---|---|"]
        for p in run.pairs:
            for c in p.changes:
                verdict_text = c.change.value + (f": {c.reason}" if c.reason else "")
                if c.aspect != "behaviour":
                    verdict_text += f" ({c.detail.get('without')} -> {c.detail.get('with_fix')})"
                out.append(f"| {p.machine} | {p.name} | {c.title or c.register} | {c.bit} "
                           f"| {c.name} | {c.without} | {c.with_fix} | {c.spec or '-'} | "
                           f"{_md(verdict_text)} |")
        out.append("")
    out += _full_tables(run)
    out += _vmstate_details(run)
    return "\n".join(out).rstrip() + "\n"


def _full_tables(run: ProbeRun) -> list[str]:
    out = ["Observed classification", "-----------------------", ""]
    groups: dict[tuple[str, str], list[BuildProbe]] = {}
    for probe in run.probes:
        groups.setdefault((probe.source, probe.machine), []).append(probe)
    for (source, machine), probes in groups.items():
        names = [p.build for p in probes]
        out += [f"### {source}, {machine}", "",
                "Builds: " + ", ".join(f"{p.build} (QEMU {p.qemu_version}, fix {p.fix}/"
                                       f"{p.fix_applied}, {p.experiments} experiments in "
                                       f"{p.seconds:.1f} s)" for p in probes), ""]
        for reg in next((p.registers for p in probes if p.registers), []):
            first = next((p for p in probes if reg.key in {r.key for r in p.registers}), None)
            if first is None:
                continue
            resets = ", ".join(f"{p.build} {_hex(p.reset.get(reg.key))}" for p in probes)
            out += [f"#### {first.register(reg.key).where}: after reset {resets}", "",
                    "| bit | name | spec | " + " | ".join(names) + " | notes |",
                    "|---|---|---|" + "---|" * len(names) + "---|"]
            for bit in range(reg.size * 8):
                cells: list[str] = []
                armed: set[str] = set()
                effects: dict[str, str] = {}
                spec = ""
                name = "?"
                for p in probes:
                    try:
                        b = p.bit(reg.key, bit)
                    except KeyError:
                        cells.append("-")
                        continue
                    spec, name = b.spec, b.name
                    mark = " ✗" if b.violation else " ?" if b.status == "not-exercised" else ""
                    cells.append(f"{b.label}{mark}")
                    if b.armed:
                        armed.add(b.armed)
                    effects[p.build] = b.effects_text
                notes = [f"armed: {a}" for a in sorted(armed)]
                if len(set(effects.values())) == 1:
                    text = next(iter(effects.values()))
                    notes += [f"side effects: {text}"] if text else []
                else:
                    notes += [f"{k}: {v or 'no side effects'}" for k, v in effects.items()]
                out.append(f"| {bit} | {name} | {spec or '-'} | " + " | ".join(cells) + " | "
                           + _md("; ".join(notes)) + " |")
            out.append("")
    out += ["✗ violates the specification attribute; ? RW1C bit never set (cannot be told "
            "from read-only 0). Side effects: other registers changed by the experiment's "
            "writes, devices unplugged.", ""]
    return out


def _vmstate_details(run: ProbeRun) -> list[str]:
    if not run.vmstate:
        return []
    out = ["vmstate (-dump-vmstate)", "-----------------------", ""]
    for vm in run.vmstate:
        head = f"- {vm.machine} {vm.without} -> {vm.with_fix}: "
        if vm.error:
            out.append(head + f"error: {_md(vm.error)}")
        elif vm.identical:
            out.append(head + f"identical ({vm.sections} sections, sha256 {vm.with_sha256[:16]})")
        else:
            out.append(head + f"{len(vm.differences)} difference(s), {len(vm.incompatible)} "
                              "breaking a direction")
            out += [f"  - `{_md(d)}`" for d in vm.differences[:100]]
    return [*out, ""]


def html_section(run: ProbeRun) -> str:
    """An HTML fragment for index.html (<section id="semantics">), everything escaped; row
    classes are the page's (passed / failed / error), rows carry data-* for machines."""
    e = html.escape
    rows = []
    for p in run.pairs:
        vm = run.vmstate_for(p.without, p.with_fix, p.machine)
        bad = bool(p.introduced or (vm and vm.incompatible))
        cls = "error" if p.error or (vm and vm.error) else "failed" if bad else "passed"
        mark = {"passed": "✓", "failed": "✗", "error": "⚠"}[cls]
        rows.append(f'<tr class="{cls}" data-pair="{e(p.name)}" data-machine="{e(p.machine)}" '
                    f'data-introduced="{len(p.introduced)}"><td>{mark}</td><td>{e(p.machine)}'
                    f"</td><td>{e(p.without)}</td><td>{e(p.with_fix)}</td>"
                    f"<td>{len(p.changes)}</td><td>{len(p.introduced)}</td>"
                    f"<td>{e(_vm_text(vm))}</td></tr>")
    changes = []
    for p in run.pairs:
        for c in p.changes:
            cls = ' class="failed"' if c.change == Change.INTRODUCED else ""
            changes.append(f"<tr{cls}><td>{e(p.machine)}</td><td>{e(p.name)}</td>"
                           f"<td>{e(c.title or c.register)}</td><td>{c.bit}</td>"
                           f"<td>{e(c.name)}</td><td><code>{e(c.without)}</code></td>"
                           f"<td><code>{e(c.with_fix)}</code></td><td>{e(c.spec or '-')}</td>"
                           f"<td>{e(c.change.value)}{': ' + e(c.reason) if c.reason else ''}"
                           "</td></tr>")
    seen: set[tuple[str, str, str]] = set()
    pre = []
    for p in run.pairs:
        for text in deviations_text(p.preexisting):
            if (p.source, p.machine, text) not in seen:
                seen.add((p.source, p.machine, text))
                pre.append(f"<li>{e(p.machine)} ({e(p.source)}): {e(text)}</li>")
    parts = ['<section id="semantics">', "<h2>Register semantics</h2>",
             '<p class="small">Each bit of the root port\'s Link Control/Status and Slot '
             "Capabilities/Control/Status written and read back through port I/O on a fresh "
             "paused QEMU; <code>KIND=r</code>: observed behaviour, value after reset. "
             'Every bit: <a href="probe.md">probe.md</a>, JUnit: '
             '<a href="semantics.xml">semantics.xml</a>.</p>',
             f'<p class="verdict{" bad" if run.exit_code else ""}">{e(verdict(run))}</p>']
    if rows:
        parts += ["<table><thead><tr><th></th><th>machine</th><th>without fix</th>"
                  "<th>with fix</th><th>changed bits</th><th>introduced violations</th>"
                  "<th>vmstate</th></tr></thead><tbody>", *rows, "</tbody></table>"]
    if changes:
        parts += ["<h3>Guest-visible changes</h3><table><thead><tr><th>machine</th><th>pair</th>"
                  "<th>register</th><th>bit</th><th>name</th><th>without</th><th>with</th>"
                  "<th>spec</th><th>verdict</th></tr></thead><tbody>", *changes,
                  "</tbody></table>"]
    if pre:
        parts += ["<h3>Spec deviations QEMU has without the fix too (not failures)</h3><ul>",
                  *pre, "</ul>"]
    parts += [f"<p>note: {e(n)}</p>" for n in [*run.unpaired, *run.notes]]
    parts += [f'<p class="error">error: {e(x)}</p>' for x in run.all_errors]
    parts.append("</section>")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Files


def write(run: ProbeRun, directory: Path) -> dict[str, Path]:
    """probe.json, semantics.xml (JUnit) and probe.md into `directory` (atomically each)."""
    from ..results import write_json

    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "probe.json", "junit": directory / "semantics.xml",
             "markdown": directory / "probe.md"}
    write_json(paths["json"], run.to_dict())
    for key, text in (("junit", junit_xml(run)), ("markdown", markdown(run, full=True))):
        tmp = paths[key].with_name(f".{paths[key].name}.tmp")
        tmp.write_text(text)
        tmp.replace(paths[key])
    return paths


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
                       "vmstate": [vm(v) for v in data.get("vmstate", [])]})


def load(run_dir: Path) -> ProbeRun | None:
    """The run's probe.json, or None when the run has none (or it is unreadable)."""
    import json

    try:
        return from_dict(json.loads((run_dir / "probe.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
