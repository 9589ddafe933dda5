"""PCI Express extended configuration space (4 KiB per function) of a paused q35 QEMU,
through the q35 MMCONFIG window (ECAM) and QEMU's qtest protocol.

Port I/O through 0xcf8/0xcfc (pciconf.py) reaches only the first 256 bytes, and the
monitor has no physical-memory write. So a QEMU that needs extended access is started
with `-qtest unix:PATH,server=on,wait=off` beside its accelerator (`qtest_args`); the
qtest protocol is one command per line (`outl 0xcf8 0x80000060`, `readl 0xb0000000`,
`writel ...`), each answered by `OK [value]`. `enable` points the MCH's PCIEXBAR (device
00:00.0, offset 0x60, 64 bit) at `ECAM_BASE` with the enable bit, as firmware would; after
that function B:D.F's byte X is at ECAM_BASE + (B << 20 | D << 15 | F << 12 | X).
Use it only while the guest is paused (-S), as the probe does.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from patchcheck.qemu.pciconf import CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, PciAddress, PciError, first_of

ECAM_BASE = 0xB000_0000  # where QEMU's q35 puts it (MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT)
PCIEXBAR = 0x60  # in the MCH (00:00.0): base | length (00: 256 MiB) | enable (bit 0)
Q35_MCH_IDS = 0x29C0_8086  # vendor Intel, device 0x29c0: what ECAM must show at 00:00.0
EXTENDED_CONFIG_SIZE = 0x1000
EXTENDED_START = 0x100  # the first extended capability's header
_SUFFIX = {1: "b", 2: "w", 4: "l"}


def qtest_args(path: Path) -> list[str]:
    """QEMU arguments for a qtest server on a unix socket (QEMU 7.2 and later)."""
    return ["-qtest", f"unix:{path},server=on,wait=off"]


class Qtest:
    """A client of QEMU's qtest protocol on a unix socket."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(str(path))
                break
            except OSError as exc:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise PciError(f"qtest socket {path}: {exc.strerror or exc}") from None
                time.sleep(0.02)
        self._buffer = b""

    def command(self, line: str) -> str:
        """Send one command; its answer after "OK" (asynchronous IRQ lines skipped)."""
        try:
            self.sock.sendall(line.encode() + b"\n")
            while True:
                while b"\n" not in self._buffer:
                    data = self.sock.recv(4096)
                    if not data:
                        raise PciError(f"qtest: QEMU closed the connection after {line!r}")
                    self._buffer += data
                reply, _, self._buffer = self._buffer.partition(b"\n")
                text = reply.decode(errors="replace").strip()
                if text.startswith("IRQ"):
                    continue
                if not text.startswith("OK"):
                    raise PciError(f"qtest: {line!r} -> {text!r}")
                return text[2:].strip()
        except OSError as exc:
            raise PciError(f"qtest: {line!r}: {exc.strerror or exc}") from None

    def out(self, size: int, port: int, value: int) -> None:
        self.command(f"out{_SUFFIX[size]} {port:#x} {value:#x}")

    def inp(self, size: int, port: int) -> int:
        return int(self.command(f"in{_SUFFIX[size]} {port:#x}"), 16)

    def read(self, size: int, address: int) -> int:
        return int(self.command(f"read{_SUFFIX[size]} {address:#x}"), 16)

    def write(self, size: int, address: int, value: int) -> None:
        self.command(f"write{_SUFFIX[size]} {address:#x} {value:#x}")

    def close(self) -> None:
        self.sock.close()


def enable(qtest: Qtest) -> None:
    """Turn the MMCONFIG window on at ECAM_BASE, and check that it shows the q35 MCH."""
    host = PciAddress(0, 0, 0)
    qtest.out(4, CONFIG_ADDRESS_PORT, host.cf8(PCIEXBAR + 4))
    qtest.out(4, CONFIG_DATA_PORT, 0)
    qtest.out(4, CONFIG_ADDRESS_PORT, host.cf8(PCIEXBAR))
    qtest.out(4, CONFIG_DATA_PORT, ECAM_BASE | 1)
    ids = qtest.read(4, ECAM_BASE)
    if ids != Q35_MCH_IDS:
        raise PciError(f"ECAM at {ECAM_BASE:#x} shows {ids:#010x}, not the q35 MCH "
                       f"({Q35_MCH_IDS:#010x}): not a q35 machine?")


class EcamConfig:
    """Configuration space of one function through ECAM: offsets up to 4 KiB. The same
    read/write interface as pciconf.PciConfig."""

    def __init__(self, qtest: Qtest, address: PciAddress) -> None:
        self.qtest = qtest
        self.address = address
        self.base = ECAM_BASE + (address.bus << 20 | address.device << 15
                                 | address.function << 12)

    def _check(self, offset: int, size: int) -> None:
        if size not in _SUFFIX or not 0 <= offset <= EXTENDED_CONFIG_SIZE - size \
                or offset % size:
            raise ValueError(f"config offset {offset:#x} (size {size}) outside or unaligned")

    def read(self, offset: int, size: int) -> int:
        self._check(offset, size)
        return self.qtest.read(size, self.base + offset)

    def write(self, offset: int, size: int, value: int) -> None:
        self._check(offset, size)
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"value {value:#x} does not fit {size * 8} bits")
        self.qtest.write(size, self.base + offset, value)


def extended_capabilities(cfg: EcamConfig) -> list[tuple[int, int]]:
    """(offset, extended capability id) of every entry of the list at 0x100."""
    found: list[tuple[int, int]] = []
    seen: set[int] = set()
    offset = EXTENDED_START
    while offset:
        if offset < EXTENDED_START or offset in seen:
            raise PciError(f"{cfg.address}: broken extended capability list at {offset:#x}")
        seen.add(offset)
        header = cfg.read(offset, 4)
        if header in (0, 0xFFFF_FFFF):  # no extended capabilities (or no function)
            break
        found.append((offset, header & 0xFFFF))
        offset = (header >> 20) & 0xFFC
    return found


def find_extended_capability(cfg: EcamConfig, cap_id: int) -> int:
    return first_of(extended_capabilities(cfg), cap_id, cfg.address, "extended capability", 4)
