"""The registers the PDS scenario's semantics probe examines: Link Control/Status and
Slot Capabilities/Control/Status of the root port's PCI Express capability, with the
specification's attribute of every bit and the arms that make status bits testable.

Source of the attribute table (SPEC): PCI Express Base Specification, Revision 4.0,
section 7.5.3 "PCI Express Capability Structure": 7.5.3.7 Link Control, 7.5.3.8 Link
Status, 7.5.3.9 Slot Capabilities, 7.5.3.10 Slot Control, 7.5.3.11 Slot Status (same
numbers in 5.0 and 6.x; 7.8.7 .. 7.8.11 in Revision 3.0). Attribute names are the
specification's (7.4 "Configuration Register Types"): RO, HwInit (read-only to software),
RW, RW1C, RsvdP (read-only zero, software preserves), RsvdZ (read-only zero, software
writes zero). Only bits whose attribute is the same in every revision since 3.0 are
modelled; the others are reported as observed but not judged: Link Control 15:12 (DRS
Signaling Control, SRIS Clocking, Flit Mode Disable in later revisions), Slot Control
15:13 (Auto Slot Power Limit Disable, In-Band PD Disable), Link Status bit 10 ("Undefined",
formerly Link Training Error). "Permitted to be read-only with a value of 0b" rules are
modelled as ReadOnlyAllowed, with the capability bit the specification ties them to. 7.5.3.11
also says "Register fields for status bits not implemented by the device have the RsvdZ
attribute": an RW1C event bit that reads 0 and never sets is accepted ("not exercised").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from patchcheck.qemu.machine_types import order, q35_version
from patchcheck.qemu.pciconf import PCI_CAP_ID_EXP
from patchcheck.qemu.registers import (
    Arm,
    Attr,
    ReadOnlyAllowed,
    Register,
    RegisterSet,
    SpecBit,
    fields,
)

# PCI Express capability registers, as offsets from the capability's start.
EXP_FLAGS = 0x02
EXP_FLAGS_SLOT = 0x0100  # Slot Implemented
DEVCAP = 0x04
DEVCTL = 0x08
DEVSTA = 0x0A
LNKCAP = 0x0C
LNKCTL = 0x10
LNKSTA = 0x12
SLTCAP = 0x14
SLTCTL = 0x18
SLTSTA = 0x1A

# Slot Capabilities bits.
SLTCAP_ABP = 0x0001  # Attention Button Present
SLTCAP_PCP = 0x0002  # Power Controller Present
SLTCAP_MRLSP = 0x0004  # MRL Sensor Present
SLTCAP_AIP = 0x0008  # Attention Indicator Present
SLTCAP_PIP = 0x0010  # Power Indicator Present
SLTCAP_HPS = 0x0020  # Hot-Plug Surprise
SLTCAP_HPC = 0x0040  # Hot-Plug Capable

# Slot Control bits.
SLTCTL_ABPE = 0x0001
SLTCTL_PFDE = 0x0002
SLTCTL_MRLSCE = 0x0004
SLTCTL_PDCE = 0x0008
SLTCTL_CCIE = 0x0010
SLTCTL_HPIE = 0x0020
SLTCTL_AIC = 0x00C0  # Attention Indicator Control (2 bits)
SLTCTL_AIC_OFF = 0x00C0
SLTCTL_PIC = 0x0300  # Power Indicator Control (2 bits)
SLTCTL_PIC_ON = 0x0100
SLTCTL_PIC_BLINK = 0x0200
SLTCTL_PIC_OFF = 0x0300
SLTCTL_PCC = 0x0400  # Power Controller Control: 1 = power off
SLTCTL_EIC = 0x0800
SLTCTL_DLLSCE = 0x1000

# Slot Status bits.
SLTSTA_ABP = 0x0001  # Attention Button Pressed (W1C)
SLTSTA_PFD = 0x0002  # Power Fault Detected (W1C)
SLTSTA_MRLSC = 0x0004  # MRL Sensor Changed (W1C)
SLTSTA_PDC = 0x0008  # Presence Detect Changed (W1C)
SLTSTA_CC = 0x0010  # Command Completed (W1C)
SLTSTA_MRLSS = 0x0020  # MRL Sensor State (RO)
SLTSTA_PDS = 0x0040  # Presence Detect State (RO)
SLTSTA_EIS = 0x0080  # Electromechanical Interlock Status (RO)
SLTSTA_DLLSC = 0x0100  # Data Link Layer State Changed (W1C)


LINK_CONTROL = Register("lnkctl", "Link Control", LNKCTL, 2, "rmw")
LINK_STATUS = Register("lnksta", "Link Status", LNKSTA, 2, "bit")
SLOT_CAPABILITIES = Register("sltcap", "Slot Capabilities", SLTCAP, 4, "rmw")
SLOT_CONTROL = Register("sltctl", "Slot Control", SLTCTL, 2, "rmw")
SLOT_STATUS = Register("sltsta", "Slot Status", SLTSTA, 2, "bit")
# Read for context (the conditions of the table below), never written.
LINK_CAPABILITIES = Register("lnkcap", "Link Capabilities", LNKCAP, 4, "rmw")

PROBED: tuple[Register, ...] = (LINK_CONTROL, LINK_STATUS, SLOT_CAPABILITIES, SLOT_CONTROL,
                                SLOT_STATUS)
CONTEXT: tuple[Register, ...] = (LINK_CAPABILITIES,)
REGISTERS = {r.key: r for r in (*PROBED, *CONTEXT)}

# The revision the table follows (see the module's docstring for the other revisions).
SPECIFICATION = "PCI Express Base Specification 4.0"
_SEC = {"lnkctl": "7.5.3.7", "lnksta": "7.5.3.8", "sltcap": "7.5.3.9", "sltctl": "7.5.3.10",
        "sltsta": "7.5.3.11"}

# Capability bits the conditions refer to (PCIe 4.0 7.5.3.6 Link Capabilities, 7.5.3.9).
LNKCAP_CLOCK_PM = 1 << 18  # Clock Power Management
LNKCAP_DLLLARC = 1 << 20  # Data Link Layer Link Active Reporting Capable
LNKCAP_LBNC = 1 << 21  # Link Bandwidth Notification Capability
SLTCAP_NCCS = 1 << 18  # No Command Completed Support


def _field(register: str, bits: Iterable[int], name: str, attr: Attr, *,
           reads_zero: bool = False,
           read_only_allowed: ReadOnlyAllowed | None = None) -> list[SpecBit]:
    return fields(REGISTERS[register], _SEC[register], SPECIFICATION, bits, name, attr,
                  reads_zero=reads_zero, read_only_allowed=read_only_allowed)


def _ro_if_clear(register: str, mask: int, what: str, value: int | None = 0) -> ReadOnlyAllowed:
    return ReadOnlyAllowed(register, mask, f"permitted read-only when {what} is 0b", value)


_SPEC_LIST: list[SpecBit] = [
    # 7.5.3.7 Link Control (Root Port view).
    *_field("lnkctl", (0, 1), "ASPMC", Attr.RW),  # ASPM Control
    # bit 2: RsvdP up to 5.0; 6.0 uses it for PTM Propagation Delay Adaptation, RsvdP (or
    # hardwired 0b) in a port without that PTM capability, such as QEMU's root ports.
    *_field("lnkctl", (2,), "rsvd", Attr.RSVDP),
    # Read Completion Boundary: "Root Ports: Hardwired" (RW only for Endpoints/Bridges).
    *_field("lnkctl", (3,), "RCB", Attr.RO),
    *_field("lnkctl", (4,), "LD", Attr.RW),  # Link Disable (Downstream/Root Ports)
    *_field("lnkctl", (5,), "RL", Attr.RW, reads_zero=True),  # Retrain Link: reads return 0b
    *_field("lnkctl", (6,), "CCC", Attr.RW),  # Common Clock Configuration
    *_field("lnkctl", (7,), "ES", Attr.RW),  # Extended Synch
    # Enable Clock PM: "Components that do not support Clock Power Management ... must
    # hardwire this bit to 0b."
    *_field("lnkctl", (8,), "ECPM", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_CLOCK_PM, "Link Capabilities Clock Power Management")),
    # Hardware Autonomous Width Disable: "permitted to hardwire this bit to 0b".
    *_field("lnkctl", (9,), "HAWD", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        None, 0, "permitted read-only 0b without autonomous width changes")),
    # LBMIE, LABIE: "Functions that do not implement the Link Bandwidth Notification
    # Capability must hardwire this bit to 0b."
    *_field("lnkctl", (10,), "LBMIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_LBNC, "Link Capabilities Link Bandwidth Notification Capability")),
    *_field("lnkctl", (11,), "LABIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_LBNC, "Link Capabilities Link Bandwidth Notification Capability")),
    # 7.5.3.8 Link Status.
    *_field("lnksta", range(0, 4), "CLS", Attr.RO),  # Current Link Speed
    *_field("lnksta", range(4, 10), "NLW", Attr.RO),  # Negotiated Link Width
    # bit 10: "Undefined" since Rev. 2.0 (was Link Training Error): not judged.
    *_field("lnksta", (11,), "LT", Attr.RO),  # Link Training
    *_field("lnksta", (12,), "SCC", Attr.HWINIT),  # Slot Clock Configuration
    *_field("lnksta", (13,), "DLLLA", Attr.RO),  # Data Link Layer Link Active
    *_field("lnksta", (14,), "LBMS", Attr.RW1C),  # Link Bandwidth Management Status
    *_field("lnksta", (15,), "LABS", Attr.RW1C),  # Link Autonomous Bandwidth Status
    # 7.5.3.9 Slot Capabilities: every field HwInit.
    *_field("sltcap", (0,), "ABP", Attr.HWINIT),
    *_field("sltcap", (1,), "PCP", Attr.HWINIT),
    *_field("sltcap", (2,), "MRLSP", Attr.HWINIT),
    *_field("sltcap", (3,), "AIP", Attr.HWINIT),
    *_field("sltcap", (4,), "PIP", Attr.HWINIT),
    *_field("sltcap", (5,), "HPS", Attr.HWINIT),
    *_field("sltcap", (6,), "HPC", Attr.HWINIT),
    *_field("sltcap", range(7, 15), "SPLV", Attr.HWINIT),
    *_field("sltcap", range(15, 17), "SPLS", Attr.HWINIT),
    *_field("sltcap", (17,), "EIP", Attr.HWINIT),
    *_field("sltcap", (18,), "NCCS", Attr.HWINIT),
    *_field("sltcap", range(19, 32), "PSN", Attr.HWINIT),
    # 7.5.3.10 Slot Control: RW; each enable/indicator "is permitted to be read-only with a
    # value of 0b" when the Slot Capabilities bit announcing the feature is 0b.
    *_field("sltctl", (0,), "ABPE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_ABP, "Attention Button Present")),
    *_field("sltctl", (1,), "PFDE", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        None, 0, "permitted read-only 0b without power fault detection")),
    *_field("sltctl", (2,), "MRLSCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_MRLSP, "MRL Sensor Present")),
    *_field("sltctl", (3,), "PDCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_HPC, "Hot-Plug Capable")),
    # CCIE: "If Command Completed notification is not supported, this bit must be
    # hardwired to 0b."
    *_field("sltctl", (4,), "CCIE", Attr.RW, read_only_allowed=ReadOnlyAllowed(
        "sltcap", SLTCAP_NCCS, "hardwired 0b when No Command Completed Support is 1b",
        when_set=True)),
    *_field("sltctl", (5,), "HPIE", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_HPC, "Hot-Plug Capable")),
    *_field("sltctl", (6, 7), "AIC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_AIP, "Attention Indicator Present")),
    *_field("sltctl", (8, 9), "PIC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_PIP, "Power Indicator Present")),
    # PCC: without a Power Controller "writes to this bit have no effect and the read value
    # of this bit is undefined".
    *_field("sltctl", (10,), "PCC", Attr.RW, read_only_allowed=_ro_if_clear(
        "sltcap", SLTCAP_PCP, "Power Controller Present", value=None)),
    # EIC: "A write of 1b to this bit causes the state of the interlock to toggle ... A read
    # of this bit always returns a 0b."
    *_field("sltctl", (11,), "EIC", Attr.RW, reads_zero=True),
    *_field("sltctl", (12,), "DLLSCE", Attr.RW, read_only_allowed=_ro_if_clear(
        "lnkcap", LNKCAP_DLLLARC, "Data Link Layer Link Active Reporting Capable")),
    # 7.5.3.11 Slot Status: events RW1C, states RO, the rest RsvdZ.
    *_field("sltsta", (0,), "ABP", Attr.RW1C),  # Attention Button Pressed
    *_field("sltsta", (1,), "PFD", Attr.RW1C),  # Power Fault Detected
    *_field("sltsta", (2,), "MRLSC", Attr.RW1C),  # MRL Sensor Changed
    *_field("sltsta", (3,), "PDC", Attr.RW1C),  # Presence Detect Changed
    *_field("sltsta", (4,), "CC", Attr.RW1C),  # Command Completed
    *_field("sltsta", (5,), "MRLSS", Attr.RO),  # MRL Sensor State
    *_field("sltsta", (6,), "PDS", Attr.RO),  # Presence Detect State
    *_field("sltsta", (7,), "EIS", Attr.RO),  # Electromechanical Interlock Status
    *_field("sltsta", (8,), "DLLSC", Attr.RW1C),  # Data Link Layer State Changed
    *_field("sltsta", range(9, 16), "rsvd", Attr.RSVDZ),
]
SPEC: dict[tuple[str, int], SpecBit] = {(s.register, s.bit): s for s in _SPEC_LIST}

# Names of the bits the table does not judge, for the reports.
UNMODELLED_NAMES = {("lnksta", 10): "undef", **{("lnkctl", b): "?" for b in range(12, 16)},
                     **{("sltctl", b): "?" for b in range(13, 16)}}




def _same(value: int) -> int:
    return value


def _power_on(sltctl: int) -> int:
    return (sltctl & ~(SLTCTL_PCC | SLTCTL_PIC)) | SLTCTL_PIC_ON


def _power_off(sltctl: int) -> int:
    return (sltctl & ~SLTCTL_PIC) | SLTCTL_PIC_OFF | SLTCTL_PCC


def _interlock(sltctl: int) -> int:
    return sltctl | SLTCTL_EIC


ARMS: dict[tuple[str, int], Arm] = {
    # PCIe 4.0 6.7.3.2: a write to Slot Control is a command; the port sets Command Completed.
    ("sltsta", 4): Arm("Slot Control written with its own value (command completed)",
                       (("sltctl", _same),)),
    # Power the empty slot on, then off (what Linux pciehp does): QEMU unplugs the devices
    # behind it and reports the presence change. Sets PDC only where PDS was set.
    ("sltsta", 3): Arm("slot powered on, then off (presence changes where PDS was set)",
                       (("sltctl", _power_on), ("sltctl", _power_off))),
    # Electromechanical Interlock Control 1b toggles the interlock: EIS becomes 1b.
    ("sltsta", 7): Arm("Electromechanical Interlock Control written 1b (interlock toggles)",
                       (("sltctl", _interlock),)),
}



# The newest q35 type whose compat properties select native PCIe hotplug (PDS set at cold
# plug: the bit the PDS fixes touch is 1 and so testable), and the newest type.
_NATIVE_HOTPLUG_LAST = (6, 0)


def probe_machines(available: Sequence[str]) -> list[str]:
    """Newest type with native PCIe hotplug (<= 6.0) and the newest type."""
    ordered = order(available)
    native = [m for m in ordered if q35_version(m)[:2] <= _NATIVE_HOTPLUG_LAST]
    return order({*native[-1:], *ordered[-1:]})


def register_set(device: str) -> RegisterSet:
    return RegisterSet(device=device, capability=PCI_CAP_ID_EXP, specification=SPECIFICATION,
                       description="the root port's Link Control/Status and Slot "
                                   "Capabilities/Control/Status",
                       probed=PROBED, context=CONTEXT, spec=SPEC, unmodelled=UNMODELLED_NAMES,
                       arms=ARMS, machines=probe_machines)
