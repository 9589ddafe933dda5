"""The PDS reproducer's topology, slot registers and guest actions.

A pcie-root-port whose only child (an xHCI) sits at device 0x12 of the secondary bus: slot
device 0 is empty. On q35 <= 6.0 (native PCIe hotplug on bridges) QEMU sets PDS at cold plug;
a guest that powers the slot off makes QEMU unplug the children and clear PDS. A destination
without the fix builds the port with PDS set and rejects the migrated config byte
(``Bad config data: i=0x6e read: 0 device: 40``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from patchcheck.errors import UsageError
from patchcheck.guests.action import Action, GuestState
from patchcheck.qemu.machine_types import q35_version
from patchcheck.qemu.pciconf import PCI_CAP_ID_EXP, Monitor, PciConfig, find_capability, find_device
from patchcheck.scenarios.pds.registers import (
    SLTCTL,
    SLTCTL_PCC,
    SLTCTL_PIC_OFF,
    SLTCTL_PIC_ON,
    SLTSTA,
    SLTSTA_CC,
    SLTSTA_PDC,
    SLTSTA_PDS,
)

ROOT_PORT_ID = "pcie-root-port18"
XHCI_ID = "nex-usb-xhci0"
ROOT_PORT_DEVICE = f"pcie-root-port,port=18,chassis=19,id={ROOT_PORT_ID},bus=pcie.0,addr=0x12"
XHCI_DEVICE = f"nec-usb-xhci,p2=4,p3=4,id={XHCI_ID},bus={ROOT_PORT_ID},addr=0x12.0x1"

# The -global that makes any q35 type use native PCIe hotplug on bridges (the <= 6.0 compat).
FORCE_NATIVE_HOTPLUG = "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
# Newest q35 machine type whose compat properties still select native PCIe hotplug.
LAST_NATIVE_HOTPLUG_Q35 = (6, 0)

# What Linux pciehp does to the empty slot, replayed by SyntheticAction.
POWER_ON_SLTCTL = SLTCTL_PIC_ON  # 0x0100: power indicator on, power controller on
POWER_OFF_SLTCTL = SLTCTL_PIC_OFF | SLTCTL_PCC  # 0x0700: indicator off, power off
ACK_SLTSTA = SLTSTA_PDC | SLTSTA_CC  # 0x0018: W1C ack of the events


def qemu_args(ram_mib: int) -> list[str]:
    """RAM size and device topology (machine, accel, -nodefaults are the caller's)."""
    if ram_mib <= 0:
        raise ValueError(f"RAM size must be positive, got {ram_mib} MiB")
    return ["-m", f"{ram_mib}M", "-device", ROOT_PORT_DEVICE, "-device", XHCI_DEVICE]


def uses_native_hotplug(machine: str, native_hotplug_forced: bool) -> bool:
    """Whether root ports use native PCIe hotplug (and so set PDS at cold plug)."""
    if native_hotplug_forced:
        return True
    try:
        return q35_version(machine)[:2] <= LAST_NATIVE_HOTPLUG_Q35
    except UsageError:  # not a pc-q35 type
        return False


def expected_to_fail(
    machine: str, dest_has_fix: bool, native_hotplug_forced: bool, action_powers_off: bool
) -> bool:
    """The model: migration fails iff the destination lacks the fix, the machine uses
    native PCIe hotplug, and the guest powered the slot off (clearing PDS on the source)."""
    return (
        not dest_has_fix
        and uses_native_hotplug(machine, native_hotplug_forced)
        and action_powers_off
    )


@dataclass(frozen=True)
class SlotState(GuestState):
    """The root port's Express capability offset and its slot registers."""

    cap_offset: int
    slot_control: int
    slot_status: int

    @property
    def presence_detected(self) -> bool:
        return bool(self.slot_status & SLTSTA_PDS)

    @property
    def powered_off(self) -> bool:
        return bool(self.slot_control & SLTCTL_PCC)

    @property
    def slot_status_offset(self) -> int:
        return self.cap_offset + SLTSTA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _root_port(monitor: Monitor, qdev_id: str) -> tuple[PciConfig, int]:
    cfg = PciConfig(monitor, find_device(monitor, qdev_id))
    return cfg, find_capability(cfg, PCI_CAP_ID_EXP)


def _state(cfg: PciConfig, cap: int) -> SlotState:
    return SlotState(cap, cfg.read16(cap + SLTCTL), cfg.read16(cap + SLTSTA))


def read_slot_state(monitor: Monitor, qdev_id: str = ROOT_PORT_ID) -> SlotState:
    """The slot registers now, without changing anything (e.g. before an action)."""
    return _state(*_root_port(monitor, qdev_id))


class GuestAction(Action):
    """What the guest does to the slot; run on the paused source before migrating."""

    def __init__(self, root_port_id: str = ROOT_PORT_ID) -> None:
        self.root_port_id = root_port_id

    # The model's input: whether the action powers the slot off (clearing PDS on the source).
    powers_off_slot: bool = False
    # The guest never runs: one source's migration stream serves every destination.
    shares_source = True
    stays_paused = True

    def perform(self, monitor: Monitor) -> SlotState:
        """Do the action; return the slot registers read afterwards."""
        raise NotImplementedError


class SyntheticAction(GuestAction):
    """Replays Linux pciehp on the empty slot: power on, power off, ack the events."""

    name = "synthetic"
    powers_off_slot = True

    def perform(self, monitor: Monitor) -> SlotState:
        cfg, cap = _root_port(monitor, self.root_port_id)
        cfg.write16(cap + SLTCTL, POWER_ON_SLTCTL)
        cfg.write16(cap + SLTCTL, POWER_OFF_SLTCTL)
        cfg.write16(cap + SLTSTA, ACK_SLTSTA)
        return _state(cfg, cap)


class NoAction(GuestAction):
    """Leaves the slot alone (the guest never touched it): migration must pass."""

    name = "none"
    powers_off_slot = False

    def perform(self, monitor: Monitor) -> SlotState:
        return read_slot_state(monitor, self.root_port_id)


ACTIONS: dict[str, type[Action]] = {cls.name: cls for cls in (SyntheticAction, NoAction)}
