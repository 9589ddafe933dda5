"""Register-semantics probe without QEMU: bit classification from recorded read/write
traces, the specification table, the comparison of two builds, the vmstate diff, and the
whole probe pipeline on a small model of QEMU's root-port config space.

The traces marked "recorded" are verbatim from a probe of Debian bookworm's QEMU 7.2
(`7.2-none` and `7.2-v1`, pc-q35-6.0, root port at 00:12.0, Express capability at 0x54).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from patchcheck.config import settings as config_mod
from patchcheck.errors import UsageError
from patchcheck.probe import classify as c
from patchcheck.probe import model, vmstate
from patchcheck.probe.assemble import assemble
from patchcheck.probe.classify import Behaviour, Change, Op, Status
from patchcheck.probe.experiment import Experiment, experiments
from patchcheck.probe.orchestrate import check_builds, machines_per_build, pairs_of
from patchcheck.probe.runner import run_experiment
from patchcheck.report import probe_page as page
from patchcheck.report import probe_text as report
from patchcheck.scenarios.pds import registers as R
from patchcheck.scenarios.pds.slot import ROOT_PORT_ID, XHCI_ID
from patchcheck.verdict import probe as probe_verdict

from ..fakes import PortIoMonitor, build_record

REGISTER_SET = R.register_set(ROOT_PORT_ID)

XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit-10.xsd"


def trace(*ops: str) -> list[Op]:
    return [Op.parse(op) for op in ops]


SNAPSHOT = ("r lnkctl 0x0000", "r lnksta 0x2204", "r sltcap 0x2007b", "r sltctl 0x07c0",
            "r sltsta 0x0040", "r lnkcap 0x12300604")
SNAPSHOT_CC = ("r lnkctl 0x0000", "r lnksta 0x2204", "r sltcap 0x2007b", "r sltctl 0x07c0",
               "r sltsta 0x0050", "r lnkcap 0x12300604")
# Recorded: Slot Status bit 6 (PDS), unpatched: writing 1 leaves it set.
PDS_NONE = trace(*SNAPSHOT, "r sltsta 0x0040", "w sltsta 0x0000", "r sltsta 0x0040",
                 "w sltsta 0x0040", "r sltsta 0x0040", "w sltsta 0x0000", "r sltsta 0x0040",
                 "w sltsta 0x0040", "r sltsta 0x0040", *SNAPSHOT)
# Recorded: the same with v1 (PDS in w1cmask): writing 1 clears it.
PDS_V1 = trace(*SNAPSHOT, "r sltsta 0x0040", "w sltsta 0x0000", "r sltsta 0x0040",
               "w sltsta 0x0040", "r sltsta 0x0000", "w sltsta 0x0000", "r sltsta 0x0000",
               "w sltsta 0x0040", "r sltsta 0x0000",
               *(s.replace("sltsta 0x0040", "sltsta 0x0000") for s in SNAPSHOT))
# Recorded: Slot Status bit 4 (CC), armed by writing Slot Control with its own value.
CC_ARMED = trace(*SNAPSHOT, "r sltctl 0x07c0", "w sltctl 0x07c0", *SNAPSHOT_CC,
                 "r sltsta 0x0050", "w sltsta 0x0000", "r sltsta 0x0050", "w sltsta 0x0010",
                 "r sltsta 0x0040", "w sltsta 0x0000", "r sltsta 0x0040", "w sltsta 0x0010",
                 "r sltsta 0x0040", *SNAPSHOT)
# Recorded: Slot Status bit 7 (EIS), armed by Electromechanical Interlock Control.
EIS_ARMED = trace(*SNAPSHOT, "r sltctl 0x07c0", "w sltctl 0x0fc0",
                  *(s.replace("0x0040", "0x00d0") for s in SNAPSHOT),
                  "r sltsta 0x00d0", "w sltsta 0x0000", "r sltsta 0x00d0", "w sltsta 0x0080",
                  "r sltsta 0x00d0", "w sltsta 0x0000", "r sltsta 0x00d0", "w sltsta 0x0080",
                  "r sltsta 0x00d0")
# Recorded: Slot Control bit 10 (PCC, reset 1), read-modify-write.
PCC = trace(*SNAPSHOT, "r sltctl 0x07c0", "w sltctl 0x03c0", "r sltctl 0x03c0",
            "w sltctl 0x07c0", "r sltctl 0x07c0", "w sltctl 0x03c0", "r sltctl 0x03c0",
            "w sltctl 0x07c0", "r sltctl 0x07c0")
# Recorded: Slot Control bit 11 (EIC): reads always 0.
EIC = trace(*SNAPSHOT, "r sltctl 0x07c0", "w sltctl 0x07c0", "r sltctl 0x07c0",
            "w sltctl 0x0fc0", "r sltctl 0x07c0", "w sltctl 0x07c0", "r sltctl 0x07c0",
            "w sltctl 0x0fc0", "r sltctl 0x07c0")
# Recorded: Link Control bit 0 (ASPM Control): QEMU's root port has no writable bit there.
ASPM = trace(*SNAPSHOT, "r lnkctl 0x0000", "w lnkctl 0x0000", "r lnkctl 0x0000",
             "w lnkctl 0x0001", "r lnkctl 0x0000", "w lnkctl 0x0000", "r lnkctl 0x0000",
             "w lnkctl 0x0001", "r lnkctl 0x0000")

CONTEXT = {"sltcap": 0x2007B, "lnkcap": 0x12300604}


# --------------------------------------------------------------------------------------------
# Traces and classification


def test_ops_round_trip() -> None:
    for text in ("w sltsta 0x0040", "r sltcap 0x2007b"):
        assert str(Op.parse(text)) == text
    with pytest.raises(ValueError):
        Op.parse("x sltsta 0x0")


def test_reset_value_is_the_first_read_before_any_write() -> None:
    assert c.reset_value(PDS_NONE, "sltsta") == 0x0040
    assert c.reset_value(CC_ARMED, "sltsta") == 0x0040  # before the arm, not after
    assert c.reset_value(trace("w sltsta 0x0", "r sltsta 0x40"), "sltsta") is None


def test_pds_unpatched_is_read_only_set() -> None:
    b = c.classify_bit(PDS_NONE, "sltsta", 6)
    assert (b.kind, b.reset, b.value, b.label) == (Behaviour.RO, 1, 1, "RO=1")
    assert [(t.before, t.written, t.after) for t in b.transitions] == \
        [(1, 0, 1), (1, 1, 1), (1, 0, 1), (1, 1, 1)]


def test_pds_with_v1_is_write_one_to_clear() -> None:
    b = c.classify_bit(PDS_V1, "sltsta", 6)
    assert (b.kind, b.reset, b.label) == (Behaviour.RW1C, 1, "RW1C=1")


def test_command_completed_armed_is_rw1c_with_reset_value_zero() -> None:
    b = c.classify_bit(CC_ARMED, "sltsta", 4)
    assert (b.kind, b.reset, b.label) == (Behaviour.RW1C, 0, "RW1C=0")
    # The Slot Control write in between makes "before" unknown: no transition spans it.
    assert b.transitions[0] == c.Transition(1, 0, 1)


def test_interlock_status_armed_is_read_only_one() -> None:
    b = c.classify_bit(EIS_ARMED, "sltsta", 7)
    assert (b.kind, b.reset, b.value) == (Behaviour.RO, 0, 1)
    assert b.label == "RO=0, armed 1"


def test_control_bits() -> None:
    pcc = c.classify_bit(PCC, "sltctl", 10)
    assert (pcc.kind, pcc.reset) == (Behaviour.RW, 1)
    assert c.classify_bit(PCC, "sltctl", 6).kind == Behaviour.UNTESTED  # AIC never written differently
    eic = c.classify_bit(EIC, "sltctl", 11)
    assert eic.constant_zero and eic.label == "RO=0"
    assert c.classify_bit(ASPM, "lnkctl", 0).constant_zero


@pytest.mark.parametrize(("steps", "kind"), [
    ([(0, 1, 1), (1, 0, 1)], Behaviour.RW1S),
    ([(0, 1, 0), (0, 1, 1)], Behaviour.IRREGULAR),
    ([(1, 1, 0), (0, 0, 1)], Behaviour.IRREGULAR),
    ([(0, 0, 0), (1, 1, 1)], Behaviour.UNTESTED),
    ([], Behaviour.UNTESTED),
])
def test_other_behaviours(steps: list[tuple[int, int, int]], kind: Behaviour) -> None:
    assert c.classify_transitions([c.Transition(*s) for s in steps]).kind == kind


def test_transitions_need_a_read_right_after_the_write() -> None:
    ops = trace("r sltsta 0x40", "w sltsta 0x40", "w sltsta 0x00", "r sltsta 0x00",
                "w sltsta 0x40", "r sltsta 0x00", "w sltctl 0x0", "w sltsta 0x40",
                "r sltsta 0x00")
    # Two writes without a read, and a write to another register, prove nothing.
    assert c.transitions(ops, "sltsta", 6) == [c.Transition(0, 1, 0)]


# --------------------------------------------------------------------------------------------
# The specification table and conformance


def test_spec_table_slot_status_and_capabilities() -> None:
    attrs = {b: R.SPEC[("sltsta", b)].attr for b in range(16)}
    assert attrs[6] == c.Attr.RO and attrs[5] == c.Attr.RO and attrs[7] == c.Attr.RO
    assert {b for b, a in attrs.items() if a == c.Attr.RW1C} == {0, 1, 2, 3, 4, 8}
    assert all(attrs[b] == c.Attr.RSVDZ for b in range(9, 16))
    assert all(R.SPEC[("sltcap", b)].attr == c.Attr.HWINIT for b in range(32))
    assert R.SPEC[("lnksta", 14)].attr == R.SPEC[("lnksta", 15)].attr == c.Attr.RW1C
    assert R.SPEC[("sltctl", 11)].reads_zero and R.SPEC[("lnkctl", 5)].reads_zero
    for (reg, bit), spec in R.SPEC.items():
        assert 0 <= bit < R.REGISTERS[reg].bits and spec.section.startswith("7.5.3.")
    assert REGISTER_SET.bit_name("sltsta", 6) == "PDS" and REGISTER_SET.bit_name("lnksta", 10) == "undef"


def _check(register: str, bit: int, ops: list[Op], context: dict[str, int] | None = None
           ) -> c.Conformance:
    return c.check(R.SPEC.get((register, bit)), c.classify_bit(ops, register, bit),
                   CONTEXT if context is None else context)


def test_conformance_of_recorded_bits() -> None:
    assert _check("sltsta", 6, PDS_NONE).status == Status.OK
    v1 = _check("sltsta", 6, PDS_V1)
    assert v1.status == Status.VIOLATION and "RO in PCIe 4.0 7.5.3.11" in v1.reason
    assert _check("sltsta", 4, CC_ARMED).status == Status.OK
    assert _check("sltsta", 7, EIS_ARMED).status == Status.OK
    assert _check("sltctl", 10, PCC).status == Status.OK
    assert _check("sltctl", 11, EIC).status == Status.OK  # reads always return 0b
    assert _check("lnkctl", 0, ASPM).status == Status.VIOLATION  # QEMU's, with or without fix


def _ro0() -> c.BitBehaviour:
    return c.classify_transitions([c.Transition(0, 1, 0), c.Transition(0, 0, 0)], 0)


def test_read_only_zero_where_the_spec_permits_it() -> None:
    dllsce = R.SPEC[("sltctl", 12)]
    assert c.check(dllsce, _ro0(), {"lnkcap": 1 << 20}).status == Status.VIOLATION
    assert c.check(dllsce, _ro0(), {"lnkcap": 0}).status == Status.OK
    assert c.check(dllsce, _ro0(), {}).status == Status.VIOLATION  # condition unknown
    ccie = R.SPEC[("sltctl", 4)]  # hardwired only when No Command Completed Support is 1b
    assert c.check(ccie, _ro0(), {"sltcap": 0}).status == Status.VIOLATION
    assert c.check(ccie, _ro0(), {"sltcap": R.SLTCAP_NCCS}).status == Status.OK
    pcc = R.SPEC[("sltctl", 10)]  # without a power controller the value is undefined
    ro1 = c.classify_transitions([c.Transition(1, 0, 1)], 1)
    assert c.check(pcc, ro1, {"sltcap": 0}).status == Status.OK
    assert c.check(pcc, ro1, {"sltcap": R.SLTCAP_PCP}).status == Status.VIOLATION
    assert c.check(R.SPEC[("lnkctl", 9)], _ro0(), {}).status == Status.OK  # HAWD


def test_rw1c_never_set_and_reserved_bits() -> None:
    dllsc = R.SPEC[("sltsta", 8)]
    assert c.check(dllsc, _ro0(), {}).status == Status.NOT_EXERCISED
    stuck = c.classify_transitions([c.Transition(1, 1, 1), c.Transition(1, 0, 1)], 1)
    assert c.check(dllsc, stuck, {}).status == Status.VIOLATION
    rsvd = R.SPEC[("sltsta", 9)]
    assert c.check(rsvd, _ro0(), {}).status == Status.OK
    assert c.check(rsvd, stuck, {}).status == Status.VIOLATION
    assert c.check(None, stuck, {}).status == Status.NOT_MODELLED
    rw = c.classify_transitions([c.Transition(0, 1, 1), c.Transition(1, 0, 0)], 0)
    assert c.check(R.SPEC[("sltcap", 6)], rw, {}).status == Status.VIOLATION
    assert c.check(R.SPEC[("sltctl", 11)], rw, {}).status == Status.VIOLATION  # EIC must read 0


# --------------------------------------------------------------------------------------------
# Comparison


def _obs(ops: list[Op], register: str, bit: int, effects: str = "") -> c.Observation:
    b = c.classify_bit(ops, register, bit)
    return c.Observation(b, c.check(R.SPEC.get((register, bit)), b, CONTEXT), effects)


def test_compare_flags_v1_pds_as_an_introduced_violation() -> None:
    key = ("sltsta", 6)
    changes = c.compare({key: _obs(PDS_NONE, *key)}, {key: _obs(PDS_V1, *key)}, REGISTER_SET)
    assert len(changes) == 1
    change = changes[0]
    assert (change.register, change.bit, change.name) == ("sltsta", 6, "PDS")
    assert (change.without, change.with_fix, change.spec) == ("RO=1", "RW1C=1", "RO")
    assert change.change == Change.INTRODUCED
    assert c.compare({key: _obs(PDS_NONE, *key)}, {key: _obs(PDS_NONE, *key)}, REGISTER_SET) == []
    # The other way round (a fix that makes PDS read-only again) resolves a violation.
    assert c.compare({key: _obs(PDS_V1, *key)}, {key: _obs(PDS_NONE, *key)}, REGISTER_SET)[0].change == \
        Change.RESOLVED


def test_compare_unmodelled_bits_and_side_effects() -> None:
    key = ("lnkctl", 13)
    rw = c.Observation(c.classify_transitions([c.Transition(0, 1, 1)], 0),
                       c.Conformance(Status.NOT_MODELLED))
    ro = c.Observation(_ro0(), c.Conformance(Status.NOT_MODELLED))
    assert c.compare({key: ro}, {key: rw}, REGISTER_SET)[0].change == Change.NOT_JUDGED
    pcc = ("sltctl", 10)
    changes = c.compare({pcc: _obs(PCC, *pcc, "sltsta 0x0040->0x0018")},
                        {pcc: _obs(PCC, *pcc, "sltsta 0x0040->0x0010")}, REGISTER_SET)
    assert [(x.aspect, x.change) for x in changes] == [("side effects", Change.NOT_JUDGED)]


# --------------------------------------------------------------------------------------------
# The whole probe on a model of QEMU 7.2's pcie-root-port config space


class FakeRootPort(PortIoMonitor):
    """Legacy port-I/O config access (HMP o/i) to a root port modelled on QEMU 7.2's
    hw/pci/pcie.c: wmask/w1cmask per byte, Command Completed on Slot Control writes, EIC
    toggling EIS, and power-off of a present slot unplugging the xHCI. `v1` puts PDS into
    w1cmask like the seed thread's first fix. Only 00:12.0 exists (strict)."""

    EXP = 0x54

    def __init__(self, v1: bool = False) -> None:
        super().__init__(bytes(256), strict=True)
        self.wmask = bytearray(256)
        self.w1cmask = bytearray(256)
        self.peripherals = {ROOT_PORT_ID, XHCI_ID}
        self._set(0x00, 4, 0x000C1B36)
        self._set(0x06, 2, 0x0010)  # capability list
        self._set(0x34, 1, 0x40)
        self._set(0x40, 2, 0x480D)  # bridge subsystem id -> 0x48
        self._set(0x48, 2, 0x5401)  # power management -> 0x54
        e = self.EXP
        self._set(e, 2, 0x0010)  # PCI Express, end of list
        self._set(e + 0x0C, 4, 0x12300604)
        self._set(e + 0x12, 2, 0x2204)
        self._set(e + 0x14, 4, 0x0002007B)
        self._set(e + 0x18, 2, 0x07C0)
        self._set(e + 0x1A, 2, 0x0040)
        self._set(e + 0x18, 2, 0x0FF9, self.wmask)
        self._set(e + 0x1A, 2, 0x0059 if v1 else 0x0019, self.w1cmask)

    def _set(self, offset: int, size: int, value: int, space: bytearray | None = None) -> None:
        (self.space if space is None else space)[offset:offset + size] = \
            value.to_bytes(size, "little")

    def write_config(self, offset: int, size: int, value: int) -> None:
        e, get = self.EXP, self.read_config
        old_ctl, old_sta = get(e + 0x18, 2), get(e + 0x1A, 2)
        for i in range(size):
            byte = (value >> (8 * i)) & 0xFF
            o = offset + i
            new = (self.space[o] & ~self.wmask[o]) | (byte & self.wmask[o])
            self.space[o] = new & ~(byte & self.w1cmask[o]) & 0xFF
        if offset <= e + 0x1A < offset + size and value & ~old_sta & 0x1F:
            sta = get(e + 0x1A, 2)  # QEMU undoes clearing events that were not set
            self._set(e + 0x1A, 2, (sta & ~0x1F) | (old_sta & 0x1F))
        if not offset <= e + 0x18 < offset + size:
            return
        ctl, sta = get(e + 0x18, 2), get(e + 0x1A, 2)
        if ctl & 0x0800:
            self._set(e + 0x18, 2, ctl & ~0x0800)
            sta ^= 0x0080
        if (sta & 0x40 and ctl & 0x400 and ctl & 0x300 == 0x300
                and (not old_ctl & 0x400 or old_ctl & 0x300 != 0x300)):
            self.peripherals.discard(XHCI_ID)
            sta = (sta & ~0x40) | 0x08
            self._set(e + 0x12, 2, get(e + 0x12, 2) & ~0x2000)
        self._set(e + 0x1A, 2, sta | 0x10)  # command completed

    def qmp(self, command: str, **args: object) -> Any:
        if command == "qom-list":
            return [{"name": n, "type": "child<device>"} for n in sorted(self.peripherals)]
        return super().qmp(command, **args)  # query-pci: the root port alone


def probe(name: str, v1: bool) -> model.BuildProbe:
    rec = build_record(name, "v1" if v1 else "none", v1)
    outcomes = [run_experiment(e, FakeRootPort(v1), REGISTER_SET)
                for e in experiments(REGISTER_SET)]
    return assemble(rec, "pc-q35-6.0", [], outcomes, REGISTER_SET)


@pytest.fixture(scope="module")
def probes() -> tuple[model.BuildProbe, model.BuildProbe]:
    return probe("7.2-none", False), probe("7.2-v1", True)


def test_experiments_cover_every_bit_once_on_a_fresh_port() -> None:
    exps = experiments(REGISTER_SET)
    assert len(exps) == 16 + 16 + 32 + 16 + 16
    assert len({e.slug for e in exps}) == len(exps)
    assert next(e for e in exps if (e.register, e.bit) == (R.SLOT_STATUS, 4)).arm is not None
    port = FakeRootPort()
    outcome = run_experiment(Experiment(R.SLOT_STATUS, 6), port, REGISTER_SET)
    assert outcome.cap_offset == 0x54  # walked 0x40 -> 0x48 -> 0x54
    writes = [op for op in outcome.trace if op.write]
    assert [str(w) for w in writes] == ["w sltsta 0x0000", "w sltsta 0x0040"] * 2
    assert "o /h 0xcfe 0x40" in port.commands  # Slot Status is the upper word of dword 0x6c


def test_model_probe_classifies_like_qemu(probes: tuple[model.BuildProbe, ...]) -> None:
    none, v1 = probes
    assert none.cap_offset == 0x54 and not none.errors
    assert none.register("sltsta").address == 0x6E
    assert none.reset == {"lnkctl": 0, "lnksta": 0x2204, "sltcap": 0x2007B, "sltctl": 0x07C0,
                          "sltsta": 0x0040, "lnkcap": 0x12300604}
    labels = {b.bit: b.label for b in none.register("sltsta").bits}
    assert labels[3] == "RW1C=0" and labels[4] == "RW1C=0" and labels[6] == "RO=1"
    assert labels[7] == "RO=0, armed 1"
    assert v1.bit("sltsta", 6).label == "RW1C=1" and v1.bit("sltsta", 6).violation
    assert none.root_port == [0, 0x12, 0]
    lines = v1.hmp_lines("sltsta", 6)
    assert set(lines[0::2]) == {"o /w 0xcf8 0x8000906c"}  # 00:12.0, dword 0x6c
    assert lines[1] == "i /h 0xcfe    # Slot Status: 0x0040"
    first = lines.index("o /h 0xcfe 0x40")
    assert lines[first + 2] == "i /h 0xcfe    # Slot Status: 0x0000"  # cleared by v1
    pcc = none.bit("sltctl", 10)
    assert pcc.label == "RW=1" and pcc.unplugged == [XHCI_ID]
    assert pcc.effects["sltsta"] == [0x0040, 0x0018]


def test_model_probe_comparison_junit_and_reports(
        probes: tuple[model.BuildProbe, ...], tmp_path: Path) -> None:
    none, v1 = probes
    pair = model.compare_probes(none, v1, REGISTER_SET)
    assert [(x.register, x.bit, x.change) for x in pair.changes] == \
        [("sltsta", 6, Change.INTRODUCED)]
    assert {d.name for d in pair.preexisting} >= {"ASPMC[0]", "DLLSCE"}
    same = model.compare_probes(none, probe("7.2-v2", False), REGISTER_SET)
    assert same.changes == [] and same.introduced == []
    run = model.ProbeRun("r1", "2024-01-01T00:00:00", probes=[none, v1], pairs=[pair])
    run.vmstate.append(vmstate.VmstateComparison("pc-q35-6.0", "7.2-none", "7.2-v1",
                                                 identical=True, sections=205))
    assert probe_verdict.exit_code(run) == 1
    assert "Slot Status bit 6 PDS RO=1 -> RW1C=1 (spec RO)" in probe_verdict.words(run)

    paths = report.write(run, tmp_path)
    doc = etree.parse(str(paths["junit"]))
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(doc), schema.error_log
    cases = doc.findall(".//testcase")
    assert len(cases) == len(R.PROBED) + 1  # one per register, one for vmstate
    failed = [tc for tc in cases if tc.find("failure") is not None]
    assert [tc.get("name") for tc in failed] == ["7.2-none->7.2-v1 Slot Status"]
    assert "bit 6 PDS: RO=1 -> RW1C=1" in failed[0].find("failure").get("message")
    assert doc.getroot().find("testsuite").get("name") == "semantics"
    md = paths["markdown"].read_text()
    assert "| 6 | PDS | RO | RO=1 | RW1C=1 ✗ |" in md
    assert "Register semantics\n------------------" in report.markdown(run)
    assert '<section id="semantics">' in page.html_section(run)
    assert "VIOLATION Slot Status bit 6 PDS" in report.text_summary(run)
    assert '"exit_code": 1' in paths["json"].read_text()
    loaded = model.load(tmp_path)  # probe.json is enough to rebuild every report
    assert loaded is not None and probe_verdict.exit_code(loaded) == 1
    assert report.markdown(loaded, full=True) == md
    assert report.junit_xml(loaded) == paths["junit"].read_text()
    assert model.load(tmp_path / "nowhere") is None

    clean = model.ProbeRun("r2", "2024-01-01T00:00:00", probes=[none], pairs=[same])
    assert probe_verdict.exit_code(clean) == 0
    assert probe_verdict.words(clean) == "no fix changes guest-visible register behaviour"


# --------------------------------------------------------------------------------------------
# vmstate


def _section(version: int = 1, fields: list[dict[str, Any]] | None = None,
             subsections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    desc: dict[str, Any] = {"name": "pcie-root-port", "version_id": version,
                            "minimum_version_id": 1,
                            "Fields": fields if fields is not None else [
                                {"field": "config", "version_id": 0, "field_exists": True,
                                 "size": 256},
                                {"field": "config", "version_id": 0, "field_exists": True,
                                 "size": 4096}]}
    if subsections is not None:
        desc["Subsections"] = subsections
    return {"Name": "pcie-root-port", "version_id": version, "minimum_version_id": 1,
            "Description": desc}


def test_vmstate_identical_dumps_do_not_differ() -> None:
    dump = {"vmschkmachine": {"Name": "pc-q35-6.0"}, "pcie-root-port": _section()}
    assert vmstate.diff(dump, dump) == []


def test_vmstate_differences_and_the_directions_they_break() -> None:
    a = {"pcie-root-port": _section(), "old-dev": _section()}
    fields = _section()["Description"]["Fields"]
    b = {"pcie-root-port": _section(2, [fields[0], {**fields[1], "size": 8192}],
                                    [{"name": "pcie/pds", "version_id": 1,
                                      "minimum_version_id": 1, "Fields": []}]),
         "new-dev": _section()}
    found = {(d.kind, d.path): d.breaks for d in vmstate.diff(a, b)}
    assert found[("section-removed", "old-dev")] == (vmstate.FORWARD,)
    assert found[("section-added", "new-dev")] == (vmstate.BACKWARD,)
    assert found[("version", "pcie-root-port/version")] == (vmstate.BACKWARD,)
    assert found[("changed", "pcie-root-port/Description/Fields[config#2]/size")] == \
        (vmstate.FORWARD, vmstate.BACKWARD)
    assert found[("subsection-added",
                  "pcie-root-port/Description/Subsections[pcie/pds]")] == (vmstate.BACKWARD,)


# --------------------------------------------------------------------------------------------
# Choosing builds, pairs and machine types


def _settings() -> config_mod.Settings:
    return config_mod.load({"patchcheck": {"builds": {
        "7.2-none": {"source": "debian:bookworm", "fix": "none"},
        "7.2-v1": {"source": "debian:bookworm", "fix": "v1"},
        "10.0-v2": {"source": "debian:trixie", "fix": "v2"},
        "10.0-none": {"source": "debian:trixie", "fix": "none"}}}})


def test_check_builds_adds_the_trees_build_without_the_fix() -> None:
    settings = _settings()
    assert check_builds(settings, ["7.2-v1"]) == ["7.2-v1", "7.2-none"]
    assert check_builds(settings, ["10.0-v2", "7.2-none"]) == ["10.0-v2", "7.2-none",
                                                              "10.0-none"]
    assert check_builds(settings, ["7.2-none"]) == ["7.2-none"]
    with pytest.raises(UsageError, match="no build named"):
        check_builds(settings, ["7.2-v9"])
    with pytest.raises(UsageError):
        check_builds(settings, ["7.2-v1"], ["q35-6.0"])


def test_pairs_and_probe_machines() -> None:
    records = {"7.2-none": build_record("7.2-none", "none", False),
               "7.2-v1": build_record("7.2-v1", "v1", True),
               "7.2-v2": build_record("7.2-v2", "v2", True)}
    pairs, notes = pairs_of(records)
    assert pairs == [("7.2-none", "7.2-v1"), ("7.2-none", "7.2-v2")] and notes == []
    pairs, notes = pairs_of({"7.2-v1": records["7.2-v1"]})
    assert pairs == [] and "no build without the fix" in notes[0]
    assert R.probe_machines(["pc-q35-5.2", "pc-q35-6.0", "pc-q35-6.1", "pc-q35-10.0"]) == \
        ["pc-q35-6.0", "pc-q35-10.0"]
    newer = {"10.0-v2": dataclasses.replace(build_record("10.0-v2", "v2", True), commit="d" * 40,
                                            source="debian:trixie",
                                            machines=["pc-q35-6.0", "pc-q35-10.0"])}
    both = {**records, **newer}
    assert machines_per_build(both, [], R.probe_machines) == {"7.2-none": ["pc-q35-6.0", "pc-q35-7.2"],
                                            "7.2-v1": ["pc-q35-6.0", "pc-q35-7.2"],
                                            "7.2-v2": ["pc-q35-6.0", "pc-q35-7.2"],
                                            "10.0-v2": ["pc-q35-6.0", "pc-q35-10.0"]}
    only_new = machines_per_build(both, ["10.0"], R.probe_machines)
    assert only_new["10.0-v2"] == ["pc-q35-10.0"] and only_new["7.2-v1"] == []
    with pytest.raises(UsageError, match="no machine type to probe"):
        machines_per_build(records, ["10.0"], R.probe_machines)
