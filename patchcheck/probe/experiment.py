"""One experiment of the probe (a register bit, with its optional arm) and what it recorded:
what runner.py produces and assemble.py reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from patchcheck.probe.classify import Op
from patchcheck.qemu.pciconf import PciAddress
from patchcheck.qemu.registers import Arm, Register, RegisterSet


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
    start: dict[str, int] = field(default_factory=dict)  # the first snapshot
