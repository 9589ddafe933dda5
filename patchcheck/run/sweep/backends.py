"""What a device needs to start, from a small table of generic backends keyed by the
device's own properties (as `device-list-properties` lists them): a null block node for a
`drive`, a null character device for a `chardev`, RAM for a `memdev`, no audio for an
`audiodev`, a CAN bus, a simulated BMC, a built-in crypto backend; a unique chassis number
for bridges and ports. NICs get no netdev. Nothing here names a device type: a type that
needs a resource of the host (a VFIO or vhost device, an evdev, a 9p file system, a file
descriptor) is recorded as such and never started."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patchcheck.qemu.inventory import DeviceType


# Properties whose backend is a resource of the host: such a device is not swept.
HOST_PROPERTIES = ("evdev", "fsdev", "fd", "sysfsdev")
HOST_PREFIXES = ("vfio", "vhost")


@dataclass(frozen=True)
class Created:
    """The arguments that create one device: its `-device` value and the backends before it."""

    device: str  # the -device value: "type,id=...,bus=...,addr=...,..."
    backends: tuple[str, ...] = ()  # flat argument list (-blockdev ..., -object ...)

    @property
    def args(self) -> list[str]:
        return [*self.backends, "-device", self.device]


def host_resource(device: DeviceType) -> str:
    """Why the device needs a resource of the host ("" when it does not)."""
    if device.name.startswith(HOST_PREFIXES):
        return f"a {device.name.split('-')[0]} resource of the host"
    needed = sorted(device.property_names & set(HOST_PROPERTIES))
    return f"the host resource in its property '{needed[0]}'" if needed else ""


def _drive(ident: str, n: int) -> tuple[list[str], list[str]]:
    node = f"{ident}-disk"
    return ["-blockdev", f"driver=null-co,node-name={node},read-zeroes=on"], [f"drive={node}"]


def _chardev(ident: str, n: int) -> tuple[list[str], list[str]]:
    return ["-chardev", f"null,id={ident}-chr"], [f"chardev={ident}-chr"]


def _memdev(ident: str, n: int) -> tuple[list[str], list[str]]:
    return (["-object", f"memory-backend-ram,id={ident}-mem,size=1M"], [f"memdev={ident}-mem"])


def _audiodev(ident: str, n: int) -> tuple[list[str], list[str]]:
    return ["-audiodev", f"none,id={ident}-audio"], [f"audiodev={ident}-audio"]


def _canbus(name: str) -> Callable[[str, int], tuple[list[str], list[str]]]:
    def backend(ident: str, n: int) -> tuple[list[str], list[str]]:
        return ["-object", f"can-bus,id={ident}-{name}"], [f"{name}={ident}-{name}"]
    return backend


def _bmc(ident: str, n: int) -> tuple[list[str], list[str]]:
    return ["-device", f"ipmi-bmc-sim,id={ident}-bmc"], [f"bmc={ident}-bmc"]


def _cryptodev(ident: str, n: int) -> tuple[list[str], list[str]]:
    return (["-object", f"cryptodev-backend-builtin,id={ident}-crypto"],
            [f"cryptodev={ident}-crypto"])


def _number(name: str) -> Callable[[str, int], tuple[list[str], list[str]]]:
    def backend(ident: str, n: int) -> tuple[list[str], list[str]]:
        return [], [f"{name}={n}"]
    return backend


def _serial(ident: str, n: int) -> tuple[list[str], list[str]]:
    return [], [f"serial={ident}"]


# property -> what it gets: (arguments before the device, properties of the device)
BACKENDS: dict[str, Callable[[str, int], tuple[list[str], list[str]]]] = {
    "drive": _drive, "chardev": _chardev, "memdev": _memdev, "audiodev": _audiodev,
    "canbus": _canbus("canbus"), "canbus0": _canbus("canbus0"), "canbus1": _canbus("canbus1"),
    "bmc": _bmc, "cryptodev": _cryptodev, "chassis": _number("chassis"),
    "chassis_nr": _number("chassis_nr"), "port": _number("port"), "serial": _serial,
}


# The QOM property types a backend can be given as (a child<...> is the device's own).
_SETTABLE = ("str", "uint8", "uint16", "uint32", "int32", "uint64", "int", "link<")


def _settable(name: str, qom_type: str) -> bool:
    return not qom_type or qom_type.startswith(_SETTABLE)


def create(device: DeviceType, ident: str, number: int, where: str) -> Created:
    """The arguments for `device` with qdev id `ident`, placed by `where`
    ("bus=pcie.0,addr=0x5"); `number` (1..255) is unique in the QEMU (chassis, port)."""
    before: list[str] = []
    props: list[str] = []
    types = dict(device.properties)
    for name in sorted(device.property_names & BACKENDS.keys()):
        if not _settable(name, types[name]):
            continue
        args, extra = BACKENDS[name](ident, number)
        before += args
        props += extra
    return Created(",".join([device.name, f"id={ident}", where, *props]), tuple(before))
