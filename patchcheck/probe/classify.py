"""Pure register semantics: bit behaviour from recorded read/write traces, conformance to
the specification's attributes, and build comparison.

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

The specification's attribute of every bit comes from the scenario's RegisterSet
(patchcheck.qemu.registers): this module holds the rules, not the table.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from patchcheck.qemu.registers import Attr, Register, RegisterSet, SpecBit

__all__ = ["Attr", "Register", "RegisterSet", "SpecBit"]  # used by callers through here

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
        """The inverse of str(): "w ctl 0x0040"."""
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
    title: str = ""  # the register's title, "Slot Status"

    @property
    def key(self) -> tuple[str, int]:
        return (self.register, self.bit)


def compare(without: Mapping[tuple[str, int], Observation],
            with_fix: Mapping[tuple[str, int], Observation],
            registers: RegisterSet) -> list[BitChange]:
    """Every bit whose guest-visible behaviour (or side effects) differs, judged."""
    changes: list[BitChange] = []
    order = {r.key: i for i, r in enumerate((*registers.probed, *registers.context))}
    for key in sorted(set(without) | set(with_fix), key=lambda k: (order.get(k[0], 99), k[1])):
        a, b = without.get(key), with_fix.get(key)
        spec = registers.spec.get(key)
        spec_text = spec.text if spec else ""
        name = registers.bit_name(*key)
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
    return [replace(c, title=registers.title(c.register)) for c in changes]


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
