"""What the register-semantics probe examines, as a scenario describes it: the registers of
one capability of one device, the specification's attribute for each bit, and the writes
that make a status bit testable ("arms"). The probe and its reports are generic; each
scenario that has a probe gives a RegisterSet (scenarios.base.Scenario.probe).

Attribute names are the PCI specifications' ("Configuration Register Types"): RO, HwInit
(read-only to software), RW, RW1C, RsvdP (read-only zero, software preserves), RsvdZ
(read-only zero, software writes zero).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Register:
    """A capability register: its offset from the capability's start."""

    key: str
    title: str
    offset: int
    size: int  # bytes
    # How the probe writes the bits it does not test: "rmw" (read-modify-write, what drivers
    # do with capability/control registers) or "bit" (only the tested bit; what drivers do
    # with status registers, e.g. acking events by writing just those bits).
    style: str

    @property
    def bits(self) -> int:
        return self.size * 8


class Attr(enum.StrEnum):
    RO = "RO"
    HWINIT = "HwInit"
    RW = "RW"
    RWS = "RWS"  # RW, sticky (kept across a hot reset): probed like RW
    RW1C = "RW1C"
    RSVDP = "RsvdP"
    RSVDZ = "RsvdZ"


@dataclass(frozen=True)
class ReadOnlyAllowed:
    """The specification lets this RW bit be read-only when a capability bit is clear.

    `register` None: always allowed (no capability bit announces the feature).
    `when_set`: allowed when the capability bit is 1b instead.
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
    section: str = ""  # "7.5.3.11"
    clause: str = ""  # "PCI Express Base Specification 4.0, 7.5.3.11 Slot Status Register"

    @property
    def text(self) -> str:
        return f"{self.attr.value}" + (" (reads 0)" if self.reads_zero else "")


@dataclass(frozen=True)
class Arm:
    """Writes that make a status bit 1 the way a guest would, so that it can be tested."""

    why: str
    writes: tuple[tuple[str, Callable[[int], int]], ...]  # (register, current -> value)


@dataclass(frozen=True)
class RegisterSet:
    """The registers of one capability the probe writes and reads, and their rules."""

    device: str  # the qdev id of the device probed
    capability: int  # the capability ID the register offsets count from
    specification: str  # "PCI Express Base Specification 4.0"
    description: str  # what is probed, for the reports: "the root port's Slot Control ..."
    probed: tuple[Register, ...]
    context: tuple[Register, ...] = ()  # read for the rules' conditions, never written
    spec: Mapping[tuple[str, int], SpecBit] = field(default_factory=dict)
    unmodelled: Mapping[tuple[str, int], str] = field(default_factory=dict)  # names only
    arms: Mapping[tuple[str, int], Arm] = field(default_factory=dict)
    machines: Callable[[Sequence[str]], list[str]] = lambda available: list(available[-1:])
    # An extended capability (PCI Express, at 0x100 and up): read through ECAM (qtest),
    # since port I/O reaches only the first 256 bytes.
    extended: bool = False
    # Also compare each newer QEMU version with the oldest one, on the oldest one's newest
    # machine type: what compat properties promise to keep unchanged (probe/versions.py).
    across_versions: bool = False

    @property
    def access(self) -> str:
        return "ECAM (qtest)" if self.extended else "port I/O"

    @property
    def registers(self) -> dict[str, Register]:
        return {r.key: r for r in (*self.probed, *self.context)}

    def title(self, key: str) -> str:
        register = self.registers.get(key)
        return register.title if register else key

    def bit_name(self, register: str, bit: int) -> str:
        spec = self.spec.get((register, bit))
        return spec.name if spec else self.unmodelled.get((register, bit), "?")


def fields(register: Register, section: str, specification: str, bits: Iterable[int],
           name: str, attr: Attr, *, reads_zero: bool = False,
           read_only_allowed: ReadOnlyAllowed | None = None) -> list[SpecBit]:
    """One SpecBit per bit of a field; multi-bit fields are named NAME[i]."""
    positions = list(bits)
    clause = f"{specification}, {section} {register.title} Register"
    return [SpecBit(register.key, b, name if len(positions) == 1 else f"{name}[{b - positions[0]}]",
                    attr, reads_zero, read_only_allowed, section, clause) for b in positions]
