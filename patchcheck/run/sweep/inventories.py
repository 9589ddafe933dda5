"""Both sides' inventories and what the sweep takes of them: the device types both have (and
why each other one is not swept), the machine types both know, and the carriers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from patchcheck.config.settings import SweepSettings
from patchcheck.errors import UsageError
from patchcheck.qemu import inventory
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.inventory import DeviceType, Inventory
from patchcheck.qemu.machine import Machine
from patchcheck.qemu.machine_types import is_pc, order_pc, select_pc
from patchcheck.result.cells import SweepSide, Unrunnable
from patchcheck.run.sweep.backends import host_resource
from patchcheck.run.sweep.members import Carriers


def take(hosts: Hosts, side: SweepSide, scratch: Path, timeout: float) -> Inventory:
    rundirs: list[Path] = []

    def start() -> Machine:
        rundir = Path(tempfile.mkdtemp(prefix="inv-", dir=scratch))
        rundirs.append(rundir)
        machine = hosts.machine(side.image_id, side.binary,
                                ["-machine", "none", "-nodefaults", "-S"], rundir,
                                f"inventory-{side.name}", timeout=timeout)
        machine.launch()
        return machine
    try:
        return inventory.take(start)
    finally:
        for rundir in rundirs:
            shutil.rmtree(rundir, ignore_errors=True)


@dataclass
class Common:
    devices: list[DeviceType] = field(default_factory=list)  # side B's view of each
    machines: list[str] = field(default_factory=list)
    unrunnable: list[Unrunnable] = field(default_factory=list)
    carriers: Carriers = Carriers()


def common_of(a: SweepSide, b: SweepSide, inv: Mapping[str, Inventory],
           sweep: SweepSettings, machines: str, devices: Sequence[str]) -> Common:
    """What both sides have, filtered by the user's `machines` and `devices`; an unknown
    device or machine type, or none in common, is a UsageError of one line."""
    ia, ib = inv[a.name], inv[b.name]
    _check_devices(devices, ia, ib, a.name, b.name)
    found = Common(machines=_machines(ia, ib, a.name, b.name, machines))
    for name in sorted(set(ia.devices) | set(ib.devices)):
        if devices and name not in devices:
            continue
        why = _why_not(name, ia, ib, a.name, b.name)
        if why:
            found.unrunnable.append(why)
        else:
            found.devices.append(ib.devices[name])
    everything = {n: d for n, d in ib.devices.items() if n in ia.devices}
    filler = next((everything[f] for f in sweep.fillers if f in everything), None)
    found.carriers = Carriers(everything.get(sweep.port), everything.get(sweep.upstream), filler)
    return found


def _why_not(name: str, ia: Inventory, ib: Inventory, a: str, b: str) -> Unrunnable | None:
    if name not in ia.devices or name not in ib.devices:
        return Unrunnable(name, f"only in {b if name not in ia.devices else a}")
    device = ib.devices[name]
    problem = ia.devices[name].problem or device.problem
    if problem:
        return Unrunnable(name, "its properties could not be read", problem)
    host = host_resource(device)
    return Unrunnable(name, "needs a host resource", host) if host else None


def _check_devices(devices: Sequence[str], ia: Inventory, ib: Inventory, a: str, b: str) -> None:
    for name in devices:
        if name not in ia.devices and name not in ib.devices:
            raise UsageError(f"sweep: --devices: '{name}' is not a PCI device type of {a} or {b} "
                             f"(see `-device help`)")


def _machines(ia: Inventory, ib: Inventory, a: str, b: str, spec: str) -> list[str]:
    both = order_pc(set(ia.machines) & set(ib.machines))
    if not both:
        raise UsageError(f"sweep: {a} and {b} have no pc-q35 or pc-i440fx machine type in common")
    for name in (p.strip() for p in spec.split(",")):
        if is_pc(name) and name not in both:
            has = a if name in ia.machines else b if name in ib.machines else ""
            raise UsageError(f"sweep: machine type '{name}' is known to {has} only" if has
                             else f"sweep: machine type '{name}' is known to neither {a} nor {b}")
    chosen = select_pc(both, spec)
    if not chosen:
        raise UsageError(f"sweep: --machines '{spec}' selects none of the machine types both "
                         f"{a} and {b} know ({both[0]} .. {both[-1]})")
    return chosen
