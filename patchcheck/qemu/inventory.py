"""What a QEMU binary offers, asked of the binary itself: its user-creatable PCI device types
(the `device_add help` list, the same as `-device help`), each with its QOM kinds and its
properties (`device-list-properties`), and its machine types (`query-machines`).

A QEMU that dies answering `device-list-properties` for one type (QEMU 7.2 does for a
GL-only virtio-gpu) is started again and the type is recorded with the problem; the list
goes on with the next type."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from patchcheck.qemu.machine import Machine, MachineError

# QOM interfaces and abstract parents that tell a device's kind (QEMU's own type names).
KINDS = {
    "pcie": "pci-express-device",  # has (or gets, behind a port) a PCI Express capability
    "conventional": "conventional-pci-device",
    "slot": "pcie-slot",  # a port with a slot: root ports and switch downstream ports
    "port": "pcie-port",  # any PCI Express port (switch upstream ports too)
    "bridge": "pci-bridge",
}
_HELP_LINE = re.compile(r'^name "([^"]+)", bus PCI(?:, (.*))?$')


@dataclass(frozen=True)
class DeviceType:
    name: str
    kinds: frozenset[str]
    properties: tuple[tuple[str, str], ...] = ()  # (name, QOM type)
    desc: str = ""
    problem: str = ""  # the introspection failed: QEMU's words

    @property
    def property_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.properties)


@dataclass(frozen=True)
class Inventory:
    devices: dict[str, DeviceType] = field(default_factory=dict)
    machines: tuple[str, ...] = ()
    version: str = ""


def help_devices(text: str) -> dict[str, str]:
    """The PCI device types of a `device_add help` list, with their descriptions."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _HELP_LINE.match(line.strip())
        if match:
            desc = re.search(r'desc "([^"]*)"', match.group(2) or "")
            found[match.group(1)] = desc.group(1) if desc else ""
    return found


def take(start: Callable[[], Machine]) -> Inventory:
    """The inventory of the binary that `start` launches (a fresh, started Machine each call;
    use `-machine none`)."""
    machine = start()
    try:
        version = machine.cmd("query-version").get("qemu", {})
        text = f"{version.get('major')}.{version.get('minor')}.{version.get('micro')}"
        machines = tuple(sorted(m["name"] for m in machine.cmd("query-machines")))
        described = help_devices(machine.hmp("device_add help"))
        kinds = {kind: {t["name"] for t in machine.cmd("qom-list-types", implements=qom,
                                                       abstract=False)}
                 for kind, qom in KINDS.items()}
    finally:
        machine.shutdown()
    devices = dict(_with_properties(start, described, kinds))
    return Inventory(devices, machines, text)


def _with_properties(start: Callable[[], Machine], described: dict[str, str],
                     kinds: dict[str, set[str]]) -> Iterator[tuple[str, DeviceType]]:
    machine: Machine | None = None
    try:
        for name in sorted(described):
            own = frozenset(kind for kind, names in kinds.items() if name in names)
            if machine is None:
                machine = start()
            try:
                props = tuple(sorted((str(p["name"]), str(p.get("type", "")))
                                     for p in machine.cmd("device-list-properties",
                                                          typename=name)))
                yield name, DeviceType(name, own, props, described[name])
            except MachineError as exc:  # QEMU died answering (or will): a fresh one goes on
                died = machine.wait_exit(2.0) is not None
                problem = (machine.log_tail(1) or str(exc)) if died else str(exc)
                yield name, DeviceType(name, own, (), described[name], problem.strip())
                machine.shutdown()
                machine = None
    finally:
        if machine is not None:
            machine.shutdown()
