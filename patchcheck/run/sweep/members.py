"""Devices laid out in a QEMU: each device under test is a `Member` with everything it brings
(the port it sits behind, a device in its slot), its own slot of the root bus, and the PCI
paths by which the destination's errors name its parts. Members are laid out in groups of
at most one root bus's free slots; each group is migrated as one QEMU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from patchcheck.result.cells import Placement
from patchcheck.run.sweep.backends import create

if TYPE_CHECKING:
    from patchcheck.qemu.inventory import DeviceType

# The root bus's slots a device may take: 0 is the host bridge; q35 keeps 0x1f (LPC, SATA,
# SMBus), i440fx slot 1 (PIIX3 and its functions).
Q35_SLOTS = tuple(range(0x01, 0x1F))
I440FX_SLOTS = tuple(range(0x02, 0x20))
ROLES = ("device", "port", "filler")


@dataclass(frozen=True)
class Part:
    path: str  # the PCI path the destination names it by: '0000:00:05.0:00.0'
    role: str  # "device" (under test), "port" (a carrier it sits behind), "filler" (in its slot)
    type: str


@dataclass(frozen=True)
class Member:
    """One device under test and everything it brings into the QEMU."""

    device: str
    ident: str  # its qdev id
    args: tuple[str, ...]
    parts: tuple[Part, ...]
    slot_port: str = ""  # the qdev id of the hot-plug slot the slot action works on

    def part_for(self, path: str) -> Part | None:
        """The part a destination's instance path names: the longest path that is it or its
        parent (a device's own children, such as a controller's bus, are the device's)."""
        found = [p for p in self.parts if path == p.path or path.startswith(p.path + ":")
                 or path.startswith(p.path + "/")]
        return max(found, key=lambda p: len(p.path), default=None)


@dataclass(frozen=True)
class Carriers:
    """The device types a placement needs around the device under test."""

    port: DeviceType | None = None  # a root port (the root-port and switch placements)
    upstream: DeviceType | None = None  # a switch's upstream port (the switch placement)
    filler: DeviceType | None = None  # what the slot action finds in a slot


def root_bus(placement: str) -> str:
    return "pci.0" if placement == Placement.PCI_ROOT else "pcie.0"


def slots(placement: str) -> tuple[int, ...]:
    return I440FX_SLOTS if placement == Placement.PCI_ROOT else Q35_SLOTS


def member(device: DeviceType, placement: str, slot: int, carriers: Carriers,
           with_filler: bool = False) -> Member:
    """`device` in `slot` of the root bus, in `placement`, with a filler in its own slot when
    the slot action needs one."""
    root = f"0000:00:{slot:02x}.0"
    number = 3 * slot  # chassis and port numbers, unique in the QEMU
    args: list[str] = []
    parts: list[Part] = []
    bus, where, path = root_bus(placement), f"addr={slot:#x}", root
    chain = [c for c in (carriers.port if placement in (Placement.ROOT_PORT, Placement.SWITCH)
                         else None,
                         carriers.upstream if placement == Placement.SWITCH else None) if c]
    for k, carrier in enumerate(chain):
        ident = f"s{slot:02x}c{k}"
        args += create(carrier, ident, number + k + 1, f"bus={bus},{where}").args
        parts.append(Part(path, "port", carrier.name))
        bus, where, path = ident, "addr=0x0", f"{path}:00.0"
    ident = f"s{slot:02x}d"
    args += create(device, ident, number, f"bus={bus},{where}").args
    parts.append(Part(path, "device", device.name))
    slot_port = ""
    if with_filler and carriers.filler is not None:
        args += create(carriers.filler, f"s{slot:02x}f", number + 2, f"bus={ident},addr=0x0").args
        parts.append(Part(f"{path}:00.0", "filler", carriers.filler.name))
        slot_port = ident
    return Member(device.name, ident, tuple(args), tuple(parts), slot_port)


def groups(devices: Sequence[DeviceType], placement: str, carriers: Carriers,
           with_filler: bool = False, size: int = 0) -> list[list[Member]]:
    """The devices laid out in groups of at most `size` (0: as many as the root bus has free
    slots), in name order."""
    free = slots(placement)
    size = min(size or len(free), len(free))
    ordered = sorted(devices, key=lambda d: d.name)
    return [[member(d, placement, free[i], carriers, with_filler)
             for i, d in enumerate(ordered[start:start + size])]
            for start in range(0, len(ordered), size)]
