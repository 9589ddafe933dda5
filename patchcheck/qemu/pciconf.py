"""PCI configuration-space access through the QEMU monitor, by legacy port I/O.

Configuration mechanism #1: a 32-bit write of the CONFIG_ADDRESS value to port 0xcf8
selects bus/device/function and the dword; the data is then read or written at port
0xcfc + (offset & 3) with the access size. From the monitor that is the HMP commands

    o /w 0xcf8 0x8000906c       # select 00:12.0, dword 0x6c
    o /h 0xcfe 0x0018           # 16-bit write to offset 0x6c + 2
    i /h 0xcfe                  # -> "portw[0x0cfe] = 0x0018"

(HMP sizes: b = 8, h = 16, w = 32 bit). The address/data pair is not atomic: use it
only while the guest is paused (-S, or stopped), which is how patchcheck uses it.
Only the first 256 bytes of configuration space are reachable this way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

CONFIG_ADDRESS_PORT = 0xCF8
CONFIG_DATA_PORT = 0xCFC
CONFIG_ENABLE = 0x8000_0000
LEGACY_CONFIG_SIZE = 0x100

# Standard header.
PCI_STATUS = 0x06
PCI_STATUS_CAP_LIST = 0x10
PCI_CAPABILITY_LIST = 0x34
PCI_CAP_ID_EXP = 0x10  # PCI Express capability

_HMP_SIZE = {1: "b", 2: "h", 4: "w"}
# HMP "i" prints e.g. "portw[0x0cfe] = 0x0040": b/w/l for 8/16/32 bit.
_IN_SIZE = {1: "b", 2: "w", 4: "l"}
_IN_RE = re.compile(r"port([bwl])\[0x([0-9a-fA-F]+)\]\s*=\s*0x([0-9a-fA-F]+)")


class PciError(Exception):
    """Configuration space could not be accessed or did not look as expected."""


class Monitor(Protocol):
    """A QEMU monitor connection (QMP), able to run HMP commands as well."""

    def hmp(self, command: str) -> str:
        """Run an HMP command via QMP human-monitor-command; return its output."""
        ...

    def qmp(self, command: str, **args: object) -> Any:
        """Run a QMP command; return its "return" value."""
        ...


class ConfigSpace(Protocol):
    """One function's configuration space (PciConfig here, ecam.EcamConfig for 4 KiB)."""

    address: PciAddress

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


@dataclass(frozen=True)
class PciAddress:
    bus: int
    device: int
    function: int

    def __post_init__(self) -> None:
        if not (0 <= self.bus <= 0xFF and 0 <= self.device <= 0x1F and 0 <= self.function <= 7):
            raise ValueError(f"invalid PCI address {self.bus}:{self.device}.{self.function}")

    def cf8(self, offset: int) -> int:
        """The CONFIG_ADDRESS (port 0xcf8) value selecting the dword holding `offset`."""
        _check_offset(offset, 1)
        return (
            CONFIG_ENABLE
            | self.bus << 16
            | self.device << 11
            | self.function << 8
            | (offset & 0xFC)
        )

    def __str__(self) -> str:
        return f"{self.bus:02x}:{self.device:02x}.{self.function:x}"


def _check_offset(offset: int, size: int) -> None:
    if not 0 <= offset <= LEGACY_CONFIG_SIZE - size:
        raise ValueError(f"config offset {offset:#x} outside the legacy 256-byte space")
    if offset % size:
        raise ValueError(f"config offset {offset:#x} not aligned for a {size * 8}-bit access")


class PortIo(Protocol):
    """Port I/O as a guest does it (ecam.Qtest: QEMU's qtest protocol `in`/`out`)."""

    def out(self, size: int, port: int, value: int) -> None: ...

    def inp(self, size: int, port: int) -> int: ...


class PciConfig:
    """Configuration space of one function, accessed through ports 0xcf8/0xcfc: with the
    monitor's HMP `o`/`i` commands, or through `io` (a qtest connection: the same port
    accesses, without a QMP round trip each)."""

    def __init__(self, monitor: Monitor, address: PciAddress, io: PortIo | None = None) -> None:
        self.monitor = monitor
        self.address = address
        self.io = io

    def _out(self, size: int, port: int, value: int) -> None:
        if self.io is not None:
            self.io.out(size, port, value)
            return
        command = f"o /{_HMP_SIZE[size]} {port:#x} {value:#x}"
        output = self.monitor.hmp(command).strip()
        if output:
            raise PciError(f"HMP {command!r} failed: {output}")

    def _in(self, size: int, port: int) -> int:
        if self.io is not None:
            return self.io.inp(size, port)
        command = f"i /{_HMP_SIZE[size]} {port:#x}"
        output = self.monitor.hmp(command)
        match = _IN_RE.search(output)
        if not match or match.group(1) != _IN_SIZE[size] or int(match.group(2), 16) != port:
            raise PciError(f"HMP {command!r} gave unexpected output: {output.strip()!r}")
        return int(match.group(3), 16)

    def read(self, offset: int, size: int) -> int:
        _check_offset(offset, size)
        self._out(4, CONFIG_ADDRESS_PORT, self.address.cf8(offset))
        return self._in(size, CONFIG_DATA_PORT + (offset & 3))

    def write(self, offset: int, size: int, value: int) -> None:
        _check_offset(offset, size)
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"value {value:#x} does not fit {size * 8} bits")
        self._out(4, CONFIG_ADDRESS_PORT, self.address.cf8(offset))
        self._out(size, CONFIG_DATA_PORT + (offset & 3), value)

    def read8(self, offset: int) -> int:
        return self.read(offset, 1)

    def read16(self, offset: int) -> int:
        return self.read(offset, 2)

    def read32(self, offset: int) -> int:
        return self.read(offset, 4)

    def write8(self, offset: int, value: int) -> None:
        self.write(offset, 1, value)

    def write16(self, offset: int, value: int) -> None:
        self.write(offset, 2, value)

    def write32(self, offset: int, value: int) -> None:
        self.write(offset, 4, value)

    def dump(self, length: int = LEGACY_CONFIG_SIZE) -> bytes:
        """The first `length` bytes (a multiple of 4) of configuration space."""
        if length % 4 or not 0 <= length <= LEGACY_CONFIG_SIZE:
            raise ValueError(f"dump length {length} is not a multiple of 4 up to 256")
        return b"".join(self.read32(o).to_bytes(4, "little") for o in range(0, length, 4))


def _walk_devices(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for device in devices:
        found.append(device)
        bridge = device.get("pci_bridge") or {}
        found.extend(_walk_devices(bridge.get("devices") or []))
    return found


def find_device(monitor: Monitor, qdev_id: str) -> PciAddress:
    """The address of the device with this qdev id, from QMP query-pci (all buses).

    Before firmware ran (-S), bridges have secondary bus 0 and QEMU lists no devices
    behind them; devices on the root bus (such as root ports) are always listed.
    """
    seen: list[str] = []
    for bus in monitor.qmp("query-pci") or []:
        for device in _walk_devices(bus.get("devices") or []):
            if device.get("qdev_id") == qdev_id:
                return PciAddress(device["bus"], device["slot"], device["function"])
            if device.get("qdev_id"):
                seen.append(str(device["qdev_id"]))
    known = ", ".join(seen) or "none"
    raise PciError(f"no PCI device with id {qdev_id!r} in query-pci (ids present: {known})")


def capabilities(cfg: PciConfig) -> list[tuple[int, int]]:
    """(offset, capability id) of every entry in the standard capability list."""
    if not cfg.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST:
        return []
    found: list[tuple[int, int]] = []
    seen: set[int] = set()
    pointer = cfg.read8(PCI_CAPABILITY_LIST) & 0xFC
    while pointer:
        if pointer < 0x40 or pointer in seen:  # into the header, or a loop
            raise PciError(f"{cfg.address}: broken capability list at {pointer:#x}")
        seen.add(pointer)
        entry = cfg.read16(pointer)  # id in the low byte, next pointer in the high byte
        found.append((pointer, entry & 0xFF))
        pointer = (entry >> 8) & 0xFC
    return found


def find_capability(cfg: PciConfig, cap_id: int) -> int:
    """Offset of the first capability with this id; PciError if there is none."""
    return first_of(capabilities(cfg), cap_id, cfg.address, "capability", 2)


def first_of(entries: list[tuple[int, int]], cap_id: int, address: PciAddress, kind: str,
             digits: int) -> int:
    """The offset of the first (offset, id) entry with this id; PciError naming them all."""
    for offset, found_id in entries:
        if found_id == cap_id:
            return offset
    ids = ", ".join(f"{i:#0{digits + 2}x}@{o:#x}" for o, i in entries) or "none"
    raise PciError(f"{address}: no {kind} {cap_id:#0{digits + 2}x} (present: {ids})")
