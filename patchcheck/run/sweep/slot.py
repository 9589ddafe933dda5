"""The slot action, from the PCI Express specification and what Linux pciehp does with it: on
every hot-plug slot (a port whose Express capability says a slot is implemented and whose
Slot Capabilities say hot-plug capable), power the slot on (power indicator on), power it
off (power controller off, indicator off: as pciehp does on `echo 0 > .../power`, or on
finding nothing it can use), and acknowledge the events the slot reported (write 1 to
clear). QEMU unplugs what sits in a slot whose power goes off; the slot is populated
(members.py puts a filler in it) because QEMU reports presence only for a populated slot.

Nothing here knows a bug: the offsets and bits are the specification's (PCIe Base 4.0,
7.5.3)."""

from __future__ import annotations

from patchcheck.qemu.pciconf import PCI_CAP_ID_EXP, Monitor, PciConfig, find_capability, find_device

EXPRESS_CAPABILITIES = 0x02  # Express Capabilities register: bit 8 Slot Implemented
SLOT_IMPLEMENTED = 1 << 8
SLOT_CAPABILITIES = 0x14  # bit 1 Power Controller Present, bit 6 Hot-Plug Capable
HOT_PLUG_CAPABLE = 1 << 6
POWER_CONTROLLER_PRESENT = 1 << 1
SLOT_CONTROL = 0x18
INDICATOR = 0x3 << 8  # Power Indicator Control
INDICATOR_ON = 0x1 << 8
INDICATOR_OFF = 0x3 << 8
POWER_OFF = 1 << 10  # Power Controller Control: 1 = off
SLOT_EVENTS_REGISTER = 0x1A  # Slot Status: its low bits are write-1-to-clear events
SLOT_EVENTS = 0x1F | (1 << 8)  # ABP, PFD, MRLSC, PDC, CC; DLLSC


def hot_plug_slot(cfg: PciConfig, cap: int) -> bool:
    return bool(cfg.read16(cap + EXPRESS_CAPABILITIES) & SLOT_IMPLEMENTED
                and cfg.read32(cap + SLOT_CAPABILITIES) & HOT_PLUG_CAPABLE)


def power_cycle(monitor: Monitor, qdev_id: str) -> bool:
    """The slot action on the port with this qdev id (on the root bus: reachable before the
    firmware numbered any bus). False when it has no hot-plug slot: nothing is written."""
    cfg = PciConfig(monitor, find_device(monitor, qdev_id))
    cap = find_capability(cfg, PCI_CAP_ID_EXP)
    if not hot_plug_slot(cfg, cap):
        return False
    control = cfg.read16(cap + SLOT_CONTROL)
    cfg.write16(cap + SLOT_CONTROL, (control & ~(INDICATOR | POWER_OFF)) | INDICATOR_ON)
    control = cfg.read16(cap + SLOT_CONTROL)
    cfg.write16(cap + SLOT_CONTROL, (control & ~INDICATOR) | INDICATOR_OFF | POWER_OFF)
    events = cfg.read16(cap + SLOT_EVENTS_REGISTER) & SLOT_EVENTS
    if events:
        cfg.write16(cap + SLOT_EVENTS_REGISTER, events)
    return True
