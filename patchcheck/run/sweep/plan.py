"""What a sweep runs: for every machine type, the placements its family has, the guest
actions each placement gets and the devices each takes, laid out in groups; each group is
migrated from side A (to B: forward, and to A: the control) and from side B (to A:
backward). A `Unit` is one group from one source side."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from patchcheck.qemu.inventory import DeviceType
from patchcheck.qemu.machine_types import family_version
from patchcheck.result.cells import Action, Direction, Placement
from patchcheck.run.sweep.members import Carriers, Member, groups

# Each direction: its source side and its destination side, "a" or "b".
DIRECTIONS: dict[str, tuple[str, str]] = {
    Direction.FORWARD: ("a", "b"), Direction.BACKWARD: ("b", "a"),
    Direction.CONTROL: ("a", "a")}


@dataclass(frozen=True)
class Layout:
    """A placement with a guest action, and which devices it takes."""

    placement: str
    action: str

    def takes(self, device: DeviceType) -> bool:
        kinds = device.kinds
        if self.action == Action.SLOT:
            return "slot" in kinds  # a port with a slot of its own, on the root bus
        if self.placement == Placement.ROOT_PORT:
            return "pcie" in kinds and "port" not in kinds
        if self.placement == Placement.SWITCH:
            return "slot" in kinds
        if self.placement == Placement.PCI_ROOT:
            return "conventional" in kinds
        return True


    def missing(self, carriers: Carriers) -> str:
        """What this layout needs and the carriers lack ("" when nothing)."""
        needs = {"a root port (sweep.port)": carriers.port
                 if self.placement in (Placement.ROOT_PORT, Placement.SWITCH) else True,
                 "a switch upstream port (sweep.upstream)": carriers.upstream
                 if self.placement == Placement.SWITCH else True,
                 "a device for the slot (sweep.fillers)": carriers.filler
                 if self.action == Action.SLOT else True}
        return ", ".join(what for what, have in needs.items() if not have)


LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "pc-q35": (Layout(Placement.PCIE_ROOT, Action.CREATED), Layout(Placement.ROOT_PORT, Action.CREATED),
               Layout(Placement.SWITCH, Action.CREATED), Layout(Placement.PCIE_ROOT, Action.SLOT),
               Layout(Placement.PCIE_ROOT, Action.LINUX), Layout(Placement.ROOT_PORT, Action.LINUX)),
    "pc-i440fx": (Layout(Placement.PCI_ROOT, Action.CREATED), Layout(Placement.PCI_ROOT, Action.LINUX)),
}


@dataclass(frozen=True)
class Unit:
    """One group of members on one machine type, migrated from one source side to the
    destinations of its directions."""

    machine: str
    layout: Layout
    members: tuple[Member, ...]
    source: str  # "a" or "b"
    directions: tuple[str, ...]

    @property
    def label(self) -> str:
        first = self.members[0].ident[:3] if self.members else "-"
        return (f"{self.machine} {self.layout.placement} {self.layout.action} "
                f"from {self.source} ({first}+{len(self.members)})")


def layouts(machine: str, actions: Iterable[str]) -> list[Layout]:
    wanted = set(actions)
    return [lay for lay in LAYOUTS[family_version(machine)[0]] if lay.action in wanted]


def units(machines: Sequence[str], devices: Mapping[str, Sequence[DeviceType]],
          carriers: Carriers, actions: Sequence[str], directions: Sequence[str],
          group_size: int = 0) -> list[Unit]:
    """Every unit of the sweep. `devices`: per placement, the device types that start there
    (DeviceType of side B: a member's arguments are the same for both sides)."""
    found: list[Unit] = []
    by_source = {src: tuple(d for d in directions if DIRECTIONS[d][0] == src) for src in "ab"}
    for machine in machines:
        for layout in layouts(machine, actions):
            if layout.missing(carriers):
                continue  # the run says so (SweepResults.notes)
            chosen = [d for d in devices.get(layout.placement, ()) if layout.takes(d)]
            for group in groups(chosen, layout.placement, carriers,
                                with_filler=layout.action == Action.SLOT, size=group_size):
                found += [Unit(machine, layout, tuple(group), src, dirs)
                          for src, dirs in by_source.items() if dirs]
    return found
