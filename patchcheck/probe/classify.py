"""Pure register semantics: bit behaviour from recorded read/write traces, the PCI Express
specification's attributes for the hotplug registers, conformance, and build comparison.

Nothing here talks to QEMU: `patchcheck.probe.runner` records the traces, this module
reads them. A trace is the ordered list of configuration accesses of one experiment
(`Op`: register, read or write, value). For one bit, every write to its register that is
followed by a read of that register, with no other write in between, is a `Transition`
(bit before, bit written, bit read back). The set of transitions decides the behaviour:

    RO    no write ever changed the bit
    RW    the bit always reads back what was written
    RW1C  writing 1 cleared a set bit; writing 0 left it; a clear bit stayed clear
    RW1S  writing 1 set it, writing 0 did not clear it (not a PCIe attribute: a finding)
    irregular   anything else

The value after reset is the bit in the first read of the register, before any write.
A bit that is 0 and never set cannot tell RO from an RW1C whose event never happened: it
is classified RO with value 0, and the conformance check says so ("not exercised").

Source of the attribute table (SPEC): PCI Express Base Specification, Revision 4.0,
section 7.5.3 "PCI Express Capability Structure": 7.5.3.7 Link Control, 7.5.3.8 Link
Status, 7.5.3.9 Slot Capabilities, 7.5.3.10 Slot Control, 7.5.3.11 Slot Status (same
numbers in 5.0 and 6.x; 7.8.7 .. 7.8.11 in Revision 3.0). Attribute names are the
specification's (7.4 "Configuration Register Types"): RO, HwInit (read-only to software),
RW, RW1C, RsvdP (read-only zero, software preserves), RsvdZ (read-only zero, software
writes zero). Only bits whose attribute is the same in every revision since 3.0 are
modelled; the others are reported as observed but not judged: Link Control 15:12 (DRS
Signaling Control, SRIS Clocking, Flit Mode Disable in later revisions), Slot Control
15:13 (Auto Slot Power Limit Disable, In-Band PD Disable), Link Status bit 10 ("Undefined",
formerly Link Training Error). "Permitted to be read-only with a value of 0b" rules are
modelled as ReadOnlyAllowed, with the capability bit the specification ties them to. 7.5.3.11
also says "Register fields for status bits not implemented by the device have the RsvdZ
attribute": an RW1C event bit that reads 0 and never sets is accepted ("not exercised").
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..pciconf import LNKCAP, LNKCTL, LNKSTA, SLTCAP, SLTCTL, SLTSTA

# --------------------------------------------------------------------------------------------
# Registers


@dataclass(frozen=True)
class Register:
    """A PCI Express capability register: its offset from the capability's start."""

    key: str
    title: str
    offset: int
    size: int  # bytes
    # How the probe writes the bits it does not test: "rmw" (read-modify-write, what drivers
    # do with capability/control registers) or "bit" (only the tested bit; what drivers do
    # with status registers, e.g. Linux pciehp acks events by writing just those bits).
    style: str

    @property
    def bits(self) -> int:
        return self.size * 8


LINK_CONTROL = Register("lnkctl", "Link Control", LNKCTL, 2, "rmw")
LINK_STATUS = Register("lnksta", "Link Status", LNKSTA, 2, "bit")
SLOT_CAPABILITIES = Register("sltcap", "Slot Capabilities", SLTCAP, 4, "rmw")
SLOT_CONTROL = Register("sltctl", "Slot Control", SLTCTL, 2, "rmw")
SLOT_STATUS = Register("sltsta", "Slot Status", SLTSTA, 2, "bit")
# Read for context (the conditions of the table below), never written.
LINK_CAPABILITIES = Register("lnkcap", "Link Capabilities", LNKCAP, 4, "rmw")

PROBED: tuple[Register, ...] = (LINK_CONTROL, LINK_STATUS, SLOT_CAPABILITIES, SLOT_CONTROL,
                                SLOT_STATUS)
CONTEXT: tuple[Register, ...] = (LINK_CAPABILITIES,)
REGISTERS: dict[str, Register] = {r.key: r for r in (*PROBED, *CONTEXT)}

# --------------------------------------------------------------------------------------------
# Traces and transitions


@dataclass(frozen=True)
class Op:
    """One configuration access of a trace."""

    register: str
    write: bool
    value: int

    def __str__(self) -> str:
        return f"{'w' if self.write else 'r'} {self.register} {self.value:#06x}"

    @classmethod
    def parse(cls, text: str) -> Op:
        """The inverse of str(): "w sltsta 0x0040"."""
        kind, register, value = text.split()
        if kind not in ("r", "w"):
            raise ValueError(f"bad trace op {text!r}")
        return cls(register, kind == "w", int(value, 0))


def read(register: str, value: int) -> Op:
    return Op(register, False, value)


def write(register: str, value: int) -> Op:
    return Op(register, True, value)


@dataclass(frozen=True)
class Transition:
    before: int  # the bit as last read
    written: int  # the bit in the written value
    after: int  # the bit read back


def _bit(value: int, bit: int) -> int:
    return (value >> bit) & 1


def reset_value(trace: Iterable[Op], register: str) -> int | None:
    """The register's first read, if it came before any write (the value after reset)."""
    for op in trace:
        if op.write:
            return None
        if op.register == register:
            return op.value
    return None


def transitions(trace: Iterable[Op], register: str, bit: int) -> list[Transition]:
    """Every (before, written, after) of the bit that the trace proves.

    `before` is the last read of the register; a write to another register in between
    makes it unknown (side effects, e.g. a Slot Control write sets Command Completed in
    Slot Status), as do two writes without a read between them.
    """
    known: int | None = None
    pending: int | None = None
    found: list[Transition] = []
    for op in trace:
        if op.register != register:
            if op.write:
                known = None
                pending = None
            continue
        if op.write:
            pending = op.value if pending is None else None
            if pending is None:
                known = None
            continue
        if pending is not None and known is not None:
            found.append(Transition(_bit(known, bit), _bit(pending, bit), _bit(op.value, bit)))
        pending = None
        known = op.value
    return found


# --------------------------------------------------------------------------------------------
# Behaviour


class Behaviour(enum.StrEnum):
    RO = "RO"
    RW = "RW"
    RW1C = "RW1C"
    RW1S = "RW1S"
    IRREGULAR = "irregular"
    UNTESTED = "untested"  # no write ever differed from the bit, or the experiment failed


@dataclass(frozen=True)
class BitBehaviour:
    kind: Behaviour
    reset: int | None  # the bit after reset
    value: int | None = None  # RO: the constant value read (None when it varied)
    transitions: tuple[Transition, ...] = ()

    @property
    def label(self) -> str:
        """Compact form for tables: KIND=r, r the value after reset ("RO=1", "RW1C=1")."""
        reset = "?" if self.reset is None else str(self.reset)
        if self.kind == Behaviour.UNTESTED:
            return "untested"
        if self.kind == Behaviour.RO and self.value is not None and self.value != self.reset:
            return f"RO={reset}, armed {self.value}"  # read-only, tested after an arm set it
        return f"{self.kind.value}={reset}"

    @property
    def signature(self) -> tuple[str, int | None, int | None]:
        """What two builds must share for the bit to count as unchanged."""
        return (self.kind.value, self.reset, self.value)

    @property
    def constant_zero(self) -> bool:
        return self.kind == Behaviour.RO and self.value == 0


def classify_transitions(found: Sequence[Transition], reset: int | None = None) -> BitBehaviour:
    ts = tuple(found)
    if not any(t.written != t.before or t.after != t.before for t in ts):
        return BitBehaviour(Behaviour.UNTESTED, reset, None, ts)  # nothing tried, nothing seen
    if all(t.after == t.before for t in ts):
        values = {t.after for t in ts}
        return BitBehaviour(Behaviour.RO, reset, values.pop() if len(values) == 1 else None, ts)
    if all(t.after == t.written for t in ts):
        return BitBehaviour(Behaviour.RW, reset, None, ts)
    if all(t.after == t.before & (1 - t.written) for t in ts):
        return BitBehaviour(Behaviour.RW1C, reset, None, ts)
    if all(t.after == t.before | t.written for t in ts):
        return BitBehaviour(Behaviour.RW1S, reset, None, ts)
    return BitBehaviour(Behaviour.IRREGULAR, reset, None, ts)


def classify_bit(trace: Sequence[Op], register: str, bit: int) -> BitBehaviour:
    """The bit's behaviour as the trace shows it."""
    reset = reset_value(trace, register)
    return classify_transitions(transitions(trace, register, bit),
                                None if reset is None else _bit(reset, bit))


# --------------------------------------------------------------------------------------------
# The specification's attributes


class Attr(enum.StrEnum):
    RO = "RO"
    HWINIT = "HwInit"
    RW = "RW"
    RW1C = "RW1C"
    RSVDP = "RsvdP"
    RSVDZ = "RsvdZ"


@dataclass(frozen=True)
class ReadOnlyAllowed:
    """The specification lets this RW bit be read-only when a capability bit is clear.

    `register` None: always allowed (no capability bit announces the feature).
    `when_set`: allowed when the capability bit is 1b instead (CCIE and NCCS).
    `value` the read-only value it must then have (None: any, "undefined").
    """

    register: str | None
    mask: int
    text: str
    value: int | None = 0
    when_set: bool = False

    def applies(self, context: Mapping[str, int]) -> bool:
        if self.register is None:
            return True
        current = context.get(self.register)
        if current is None:
            return False
        return bool(current & self.mask) if self.when_set else not current & self.mask


@dataclass(frozen=True)
class SpecBit:
    register: str
    bit: int
    name: str
    attr: Attr
    reads_zero: bool = False  # RW bits whose reads always return 0 (commands)
    read_only_allowed: ReadOnlyAllowed | None = None
    section: str = ""

    @property
    def text(self) -> str:
        return f"{self.attr.value}" + (" (reads 0)" if self.reads_zero else "")

    @property
    def clause(self) -> str:
        """Where the specification says it: "PCI Express Base Specification 4.0, 7.5.3.11
        Slot Status Register"."""
        return f"{SPECIFICATION}, {self.section} {REGISTERS[self.register].title} Register"


# The revision the table follows (see the module's docstring for the other revisions).
SPECIFICATION = "PCI Express Base Specification 4.0"
_SEC = {"lnkctl": "7.5.3.7", "lnksta": "7.5.3.8", "sltcap": "7.5.3.9", "sltctl": "7.5.3.10",
        "sltsta": "7.5.3.11"}

# Capability bits the conditions refer to (PCIe 4.0 7.5.3.6 Link Capabilities, 7.5.3.9).
LNKCAP_CLOCK_PM = 1 << 18  # Clock Power Management
LNKCAP_DLLLARC = 1 << 20  # Data Link Layer Link Active Reporting Capable
LNKCAP_LBNC = 1 << 21  # Link Bandwidth Notification Capability
SLTCAP_ABP = 1 << 0
SLTCAP_PCP = 1 << 1
SLTCAP_MRLSP = 1 << 2
SLTCAP_AIP = 1 << 3
SLTCAP_PIP = 1 << 4
SLTCAP_HPC = 1 << 6
SLTCAP_NCCS = 1 << 18  # No Command Completed Support


def _field(register: str, bits: Iterable[int], name: str, attr: Attr, *,
           reads_zero: bool = False,
           read_only_allowed: ReadOnlyAllowed | None = None) -> list[SpecBit]:
    """One SpecBit per bit of a field; multi-bit fields are named NAME[i]."""
    positions = list(bits)
    return [SpecBit(register, b, name if len(positions) == 1 else f"{name}[{b - positions[0]}]",
                    attr, reads_zero, read_only_allowed, _SEC[register]) for b in positions]


def _ro_if_clear(register: str, mask: int, what: str, value: int | None = 0) -> ReadOnlyAllowed:
    return ReadOnlyAllowed(register, mask, f"permitted read-only when {what} is 0b", value)


_SPEC_LIST: list[SpecBit] = [
    # 7.5.3.7 Link Control (Root Port view).
    *_field("lnkctl", (0, 1), "ASPMC", Attr.RW),  # ASPM Control
    # bit 2: RsvdP up to 5.0; 6.0 uses it for PTM Propagation Delay Adaptation, RsvdP (or
    # hardwired 0b) in a port without that PTM capability, such as QEMU's root ports.
    *_field("lnkctl", (2,), "rsvd", Attr.RSVDP),
    # Read Completion Boundary: "Root Ports: Hardwired" (RW only for Endpoints/Bridges).
    *_field("lnkctl", (3,), "RCB", Attr.RO),
    *_field("lnkctl", (4,), "LD", Attr.RW),  # Link Disable (Downstream/Root Ports)
    *_field("lnkctl", (5,), "RL", Attr.RW, reads_zero=True),  # Retrain Link: reads return 0b
    *_field("lnkctl", (6,), "CCC", Attr.RW),  # Common Clock Configuration
    *_field("lnkctl", (7,), "ES", Attr.RW),  # Extended Synch
    # Enable Clock PM: "Components that do not support Clock Power Management ... must
    # hardwire this bit to 0b."
    *_field("lnkctl", (8,), "ECPM", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_CLOCK_PM, "Link Capabilities Clock Power Management")),
    # Hardware Autonomous Width Disable: "permitted to hardwire this bit to 0b".
    *_field("lnkctl", (9,), "HAWD", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        None, 0, "permitted read-only 0b without autonomous width changes")),
    # LBMIE, LABIE: "Functions that do not implement the Link Bandwidth Notification
    # Capability must hardwire this bit to 0b."
    *_field("lnkctl", (10,), "LBMIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_LBNC, "Link Capabilities Link Bandwidth Notification Capability")),
    *_field("lnkctl", (11,), "LABIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_LBNC, "Link Capabilities Link Bandwidth Notification Capability")),
    # 7.5.3.8 Link Status.
    *_field("lnksta", range(0, 4), "CLS", Attr.RO),  # Current Link Speed
    *_field("lnksta", range(4, 10), "NLW", Attr.RO),  # Negotiated Link Width
    # bit 10: "Undefined" since Rev. 2.0 (was Link Training Error): not judged.
    *_field("lnksta", (11,), "LT", Attr.RO),  # Link Training
    *_field("lnksta", (12,), "SCC", Attr.HWINIT),  # Slot Clock Configuration
    *_field("lnksta", (13,), "DLLLA", Attr.RO),  # Data Link Layer Link Active
    *_field("lnksta", (14,), "LBMS", Attr.RW1C),  # Link Bandwidth Management Status
    *_field("lnksta", (15,), "LABS", Attr.RW1C),  # Link Autonomous Bandwidth Status
    # 7.5.3.9 Slot Capabilities: every field HwInit.
    *_field("sltcap", (0,), "ABP", Attr.HWINIT),
    *_field("sltcap", (1,), "PCP", Attr.HWINIT),
    *_field("sltcap", (2,), "MRLSP", Attr.HWINIT),
    *_field("sltcap", (3,), "AIP", Attr.HWINIT),
    *_field("sltcap", (4,), "PIP", Attr.HWINIT),
    *_field("sltcap", (5,), "HPS", Attr.HWINIT),
    *_field("sltcap", (6,), "HPC", Attr.HWINIT),
    *_field("sltcap", range(7, 15), "SPLV", Attr.HWINIT),
    *_field("sltcap", range(15, 17), "SPLS", Attr.HWINIT),
    *_field("sltcap", (17,), "EIP", Attr.HWINIT),
    *_field("sltcap", (18,), "NCCS", Attr.HWINIT),
    *_field("sltcap", range(19, 32), "PSN", Attr.HWINIT),
    # 7.5.3.10 Slot Control: RW; each enable/indicator "is permitted to be read-only with a
    # value of 0b" when the Slot Capabilities bit announcing the feature is 0b.
    *_field("sltctl", (0,), "ABPE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_ABP, "Attention Button Present")),
    *_field("sltctl", (1,), "PFDE", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        None, 0, "permitted read-only 0b without power fault detection")),
    *_field("sltctl", (2,), "MRLSCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_MRLSP, "MRL Sensor Present")),
    *_field("sltctl", (3,), "PDCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_HPC, "Hot-Plug Capable")),
    # CCIE: "If Command Completed notification is not supported, this bit must be
    # hardwired to 0b."
    *_field("sltctl", (4,), "CCIE", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        "sltcap", SLTCAP_NCCS, "hardwired 0b when No Command Completed Support is 1b",
        when_set=True)),
    *_field("sltctl", (5,), "HPIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_HPC, "Hot-Plug Capable")),
    *_field("sltctl", (6, 7), "AIC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_AIP, "Attention Indicator Present")),
    *_field("sltctl", (8, 9), "PIC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_PIP, "Power Indicator Present")),
    # PCC: without a Power Controller "writes to this bit have no effect and the read value
    # of this bit is undefined".
    *_field("sltctl", (10,), "PCC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_PCP, "Power Controller Present", value=None)),
    # EIC: "A write of 1b to this bit causes the state of the interlock to toggle ... A read
    # of this bit always returns a 0b."
    *_field("sltctl", (11,), "EIC", Attr.RW, reads_zero=True),
    *_field("sltctl", (12,), "DLLSCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_DLLLARC, "Data Link Layer Link Active Reporting Capable")),
    # 7.5.3.11 Slot Status: events RW1C, states RO, the rest RsvdZ.
    *_field("sltsta", (0,), "ABP", Attr.RW1C),  # Attention Button Pressed
    *_field("sltsta", (1,), "PFD", Attr.RW1C),  # Power Fault Detected
    *_field("sltsta", (2,), "MRLSC", Attr.RW1C),  # MRL Sensor Changed
    *_field("sltsta", (3,), "PDC", Attr.RW1C),  # Presence Detect Changed
    *_field("sltsta", (4,), "CC", Attr.RW1C),  # Command Completed
    *_field("sltsta", (5,), "MRLSS", Attr.RO),  # MRL Sensor State
    *_field("sltsta", (6,), "PDS", Attr.RO),  # Presence Detect State
    *_field("sltsta", (7,), "EIS", Attr.RO),  # Electromechanical Interlock Status
    *_field("sltsta", (8,), "DLLSC", Attr.RW1C),  # Data Link Layer State Changed
    *_field("sltsta", range(9, 16), "rsvd", Attr.RSVDZ),
]
SPEC: dict[tuple[str, int], SpecBit] = {(s.register, s.bit): s for s in _SPEC_LIST}

# Names of the bits the table does not judge, for the reports.
_UNMODELLED_NAMES = {("lnksta", 10): "undef", **{("lnkctl", b): "?" for b in range(12, 16)},
                     **{("sltctl", b): "?" for b in range(13, 16)}}


def bit_name(register: str, bit: int) -> str:
    spec = SPEC.get((register, bit))
    return spec.name if spec else _UNMODELLED_NAMES.get((register, bit), "?")


# --------------------------------------------------------------------------------------------
# Conformance


class Status(enum.StrEnum):
    OK = "ok"
    VIOLATION = "violation"
    NOT_EXERCISED = "not-exercised"  # RW1C bit that was never set: cannot be told from RO 0
    NOT_MODELLED = "not-modelled"
    UNTESTED = "untested"


@dataclass(frozen=True)
class Conformance:
    status: Status
    reason: str = ""


def check(spec: SpecBit | None, behaviour: BitBehaviour,
          context: Mapping[str, int]) -> Conformance:
    """Hold one observed bit against its specification attribute.

    `context` holds register values after reset (Slot and Link Capabilities), for the
    "permitted to be read-only" conditions.
    """
    if spec is None:
        return Conformance(Status.NOT_MODELLED, "not in the specification table")
    kind = behaviour.kind
    seen = behaviour.label
    where = f"PCIe 4.0 {spec.section}"
    if kind == Behaviour.UNTESTED:
        return Conformance(Status.UNTESTED, "no write could test the bit")
    if spec.attr in (Attr.RO, Attr.HWINIT):
        if kind == Behaviour.RO:
            return Conformance(Status.OK)
        return Conformance(Status.VIOLATION, f"{spec.attr.value} in {where}, but guest writes "
                                             f"change it (observed {seen})")
    if spec.attr in (Attr.RSVDP, Attr.RSVDZ):
        if behaviour.constant_zero:
            return Conformance(Status.OK)
        return Conformance(Status.VIOLATION, f"{spec.attr.value} in {where}: must read 0 and "
                                             f"ignore writes (observed {seen})")
    if spec.attr == Attr.RW1C:
        if kind == Behaviour.RW1C:
            return Conformance(Status.OK)
        if behaviour.constant_zero:
            return Conformance(Status.NOT_EXERCISED, "reads 0 and was never set: RW1C cannot "
                                                     "be told from read-only 0")
        return Conformance(Status.VIOLATION, f"RW1C in {where} (observed {seen})")
    # RW
    if spec.reads_zero:
        if behaviour.constant_zero:
            return Conformance(Status.OK, "reads of this bit always return 0b")
        return Conformance(Status.VIOLATION, f"RW in {where} and reads always return 0b "
                                             f"(observed {seen})")
    if kind == Behaviour.RW:
        return Conformance(Status.OK)
    allowed = spec.read_only_allowed
    if kind == Behaviour.RO and allowed is not None and allowed.applies(context):
        if allowed.value is None or behaviour.value == allowed.value:
            return Conformance(Status.OK, allowed.text)
    return Conformance(Status.VIOLATION, f"RW in {where} (observed {seen})")


# --------------------------------------------------------------------------------------------
# Comparison of two builds


class Change(enum.StrEnum):
    INTRODUCED = "introduced-violation"  # the with-fix behaviour violates the specification
    RESOLVED = "resolved-violation"  # the without-fix behaviour did, the with-fix one does not
    CONFORMING = "changed-conforming"  # changed, both conform
    NOT_JUDGED = "changed-not-judged"  # changed, the bit is not in the table
    NOT_COMPARED = "not-compared"  # one side could not be tested


@dataclass(frozen=True)
class Observation:
    behaviour: BitBehaviour
    conformance: Conformance
    effects: str = ""  # side effects of the experiment on other registers, as text


@dataclass(frozen=True)
class BitChange:
    register: str
    bit: int
    name: str
    without: str  # behaviour label
    with_fix: str
    spec: str  # attribute text, "" if not modelled
    change: Change
    reason: str = ""
    aspect: str = "behaviour"  # or "side effects"
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.register, self.bit)


def compare(without: Mapping[tuple[str, int], Observation],
            with_fix: Mapping[tuple[str, int], Observation]) -> list[BitChange]:
    """Every bit whose guest-visible behaviour (or side effects) differs, judged."""
    changes: list[BitChange] = []
    for key in sorted(set(without) | set(with_fix), key=_order):
        a, b = without.get(key), with_fix.get(key)
        spec = SPEC.get(key)
        spec_text = spec.text if spec else ""
        name = bit_name(*key)
        if a is None or b is None or Behaviour.UNTESTED in (a.behaviour.kind, b.behaviour.kind):
            if (a and a.behaviour.signature) != (b and b.behaviour.signature):
                changes.append(BitChange(key[0], key[1], name,
                                         a.behaviour.label if a else "missing",
                                         b.behaviour.label if b else "missing", spec_text,
                                         Change.NOT_COMPARED, "one build could not be tested"))
            continue
        if a.behaviour.signature != b.behaviour.signature:
            changes.append(_judge(key, name, spec_text, a, b))
        if a.effects != b.effects:
            changes.append(BitChange(key[0], key[1], name, a.behaviour.label, b.behaviour.label,
                                     spec_text, Change.NOT_JUDGED,
                                     "writing this bit has different side effects",
                                     aspect="side effects",
                                     detail={"without": a.effects or "none",
                                             "with_fix": b.effects or "none"}))
    return changes


def _judge(key: tuple[str, int], name: str, spec_text: str, a: Observation,
           b: Observation) -> BitChange:
    before, after = a.conformance.status, b.conformance.status
    if after == Status.NOT_MODELLED:
        change, reason = Change.NOT_JUDGED, "the bit is not in the specification table"
    elif after == Status.VIOLATION:
        change = Change.INTRODUCED
        reason = b.conformance.reason
        if before == Status.VIOLATION:
            reason += f"; without the fix it was already non-conforming ({a.behaviour.label})"
    elif before == Status.VIOLATION:
        change, reason = Change.RESOLVED, f"without the fix: {a.conformance.reason}"
    else:
        change, reason = Change.CONFORMING, b.conformance.reason or "both conform"
    return BitChange(key[0], key[1], name, a.behaviour.label, b.behaviour.label, spec_text,
                     change, reason)


def _order(key: tuple[str, int]) -> tuple[int, int]:
    register, bit = key
    known = [r.key for r in PROBED]
    return (known.index(register) if register in known else len(known), bit)
