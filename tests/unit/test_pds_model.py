"""The PDS expected-outcome model, and config-space access against an emulated 0xcf8/0xcfc
(tests/fakes.py: the recorded root port behind HMP port I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from patchcheck.qemu.pciconf import (
    PCI_CAP_ID_EXP,
    PciAddress,
    PciConfig,
    PciError,
    capabilities,
    find_capability,
    find_device,
)
from patchcheck.result.model import Side
from patchcheck.scenarios.pds.registers import SLTSTA_PDS
from patchcheck.scenarios.pds.scenario import SCENARIO
from patchcheck.scenarios.pds.slot import (
    FORCE_NATIVE_HOTPLUG,
    ROOT_PORT_ID,
    NoAction,
    SlotState,
    SyntheticAction,
    expected_to_fail,
    qemu_args,
)

from ..fakes import ROOT_PORT_Q35_60, SLTSTA_W1C, PortIoMonitor
from .helpers import expected_destination_error


def _patched(image: bytes, changes: dict[int, int]) -> bytes:
    out = bytearray(image)
    for offset, value in changes.items():
        out[offset] = value
    return bytes(out)


# The same port on pc-q35-7.2 (measured): only Link Status (DLLLA, 0x67) and PDS (0x6e) differ.
ROOT_PORT_Q35_72 = _patched(ROOT_PORT_Q35_60, {0x67: 0x02, 0x6E: 0x00})

QUERY_PCI: list[dict[str, Any]] = [
    {
        "bus": 0,
        "devices": [
            {"bus": 0, "slot": 0, "function": 0, "qdev_id": ""},
            {
                "bus": 0,
                "slot": 0x12,
                "function": 0,
                "qdev_id": ROOT_PORT_ID,
                "pci_bridge": {
                    "bus": {"number": 1, "secondary": 1, "subordinate": 2},
                    "devices": [
                        {"bus": 1, "slot": 0x12, "function": 1, "qdev_id": "nex-usb-xhci0"},
                        {
                            "bus": 1,
                            "slot": 3,
                            "function": 0,
                            "qdev_id": "bridge2",
                            "pci_bridge": {
                                "bus": {"number": 2},
                                "devices": [
                                    {"bus": 2, "slot": 5, "function": 2, "qdev_id": "deep"}
                                ],
                            },
                        },
                    ],
                },
            },
            {"bus": 0, "slot": 0x1F, "function": 0, "qdev_id": ""},
        ],
    }
]


def port_io(image: bytes, w1c: dict[int, int] | None = None) -> PortIoMonitor:
    """The image behind port I/O at 00:12.0, with the nested buses of QUERY_PCI."""
    return PortIoMonitor(image, w1c=w1c, devices=QUERY_PCI)


def root_port(image: bytes = ROOT_PORT_Q35_60) -> tuple[PortIoMonitor, PciConfig]:
    monitor = port_io(image, SLTSTA_W1C)
    return monitor, PciConfig(monitor, PciAddress(0, 0x12, 0))


# --- the expected-outcome model -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("pc-q35-6.0", (6, 0)),
        ("pc-q35-4.0.1", (4, 0, 1)),
        ("pc-q35-10.0", (10, 0)),
        ("pc-q35-2.4", (2, 4)),
        ("q35", None),
        ("pc-q35", None),
        ("pc-q35-", None),
        ("pc-q35-6", None),
        ("pc-q35-6.0-x", None),
        ("pc-i440fx-6.0", None),
        ("xpc-q35-6.0", None),
    ],
)
def test_q35_version_is_parsed_once_for_every_module(name: str, version: tuple[int, ...] | None
                                                    ) -> None:
    from patchcheck.errors import UsageError
    from patchcheck.qemu.machine_types import q35_version

    if version is None:
        with pytest.raises(UsageError):
            q35_version(name)
    else:
        assert q35_version(name) == version


@pytest.mark.parametrize(
    ("machine", "dest_fix", "forced", "powers_off", "fails"),
    [
        # Measured on QEMU 7.2 with the synthetic action (docs/scenario-pds.md).
        ("pc-q35-6.0", False, False, True, True),  # unpatched -> unpatched, fixed -> unpatched
        ("pc-q35-6.0", True, False, True, False),  # -> fixed (v1 or v2)
        ("pc-q35-5.2", False, False, True, True),
        ("pc-q35-4.0.1", False, False, True, True),
        ("pc-q35-2.4", False, False, True, True),
        ("pc-q35-6.1", False, False, True, False),  # ACPI hotplug: PDS never set
        ("pc-q35-7.2", False, False, True, False),
        ("pc-q35-10.0", False, False, True, False),
        ("pc-q35-7.2", False, True, True, True),  # native hotplug forced by -global
        ("pc-q35-10.0", False, True, True, True),
        ("pc-q35-7.2", True, True, True, False),
        ("pc-q35-6.0", False, False, False, False),  # guest never powered the slot off
        ("pc-q35-7.2", False, True, False, False),
        ("q35", False, False, True, False),
        ("pc-i440fx-6.0", False, False, True, False),
    ],
)
def test_expected_to_fail(
    machine: str, dest_fix: bool, forced: bool, powers_off: bool, fails: bool
) -> None:
    assert expected_to_fail(machine, dest_fix, forced, powers_off) is fails


def test_qemu_args_topology_from_the_seed() -> None:
    assert qemu_args(128) == [
        "-m",
        "128M",
        "-device",
        "pcie-root-port,port=18,chassis=19,id=pcie-root-port18,bus=pcie.0,addr=0x12",
        "-device",
        "nec-usb-xhci,p2=4,p3=4,id=nex-usb-xhci0,bus=pcie-root-port18,addr=0x12.0x1",
    ]
    with pytest.raises(ValueError):
        qemu_args(0)


def test_force_native_hotplug_and_error_text() -> None:
    assert FORCE_NATIVE_HOTPLUG == "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
    assert expected_destination_error(0x54) == "Bad config data: i=0x6e read: 0 device: 40"


def test_actions_by_name() -> None:
    from patchcheck.errors import UsageError

    synthetic, none = SCENARIO.action("synthetic"), SCENARIO.action("none")
    assert isinstance(synthetic, SyntheticAction) and synthetic.powers_off_slot is True
    assert isinstance(none, NoAction) and none.powers_off_slot is False
    assert (synthetic.name, none.name) == ("synthetic", "none")
    with pytest.raises(UsageError, match="unknown guest action 'reboot' for scenario pds"):
        SCENARIO.action("reboot")


# --- PciAddress / PciConfig -----------------------------------------------------------------


def test_cf8_config_address() -> None:
    port = PciAddress(0, 0x12, 0)
    assert port.cf8(0x6E) == 0x8000906C
    assert port.cf8(0x6C) == 0x8000906C
    assert port.cf8(0x00) == 0x80009000
    assert PciAddress(1, 0x12, 1).cf8(0x34) == 0x80019134
    assert PciAddress(0xFF, 0x1F, 7).cf8(0xFF) == 0x80FFFFFC
    assert str(PciAddress(0, 0x12, 0)) == "00:12.0"
    with pytest.raises(ValueError):
        port.cf8(0x100)
    for bad in ((256, 0, 0), (0, 32, 0), (0, 0, 8), (-1, 0, 0)):
        with pytest.raises(ValueError):
            PciAddress(*bad)


def test_reads_use_the_byte_lane_and_parse_hmp_output() -> None:
    monitor, cfg = root_port()
    assert cfg.read32(0x00) == 0x000C1B36  # Red Hat 1b36:000c, pcie-root-port
    assert cfg.read8(0x34) == 0x54
    monitor.commands.clear()
    assert cfg.read16(0x6E) == 0x0040
    assert monitor.commands == ["o /w 0xcf8 0x8000906c", "i /h 0xcfe"]
    assert cfg.read16(0x6C) == 0x07C0
    assert cfg.read8(0x6F) == 0x00
    assert monitor.commands[-1] == "i /b 0xcff"
    assert cfg.dump() == ROOT_PORT_Q35_60


def test_writes_use_the_byte_lane() -> None:
    monitor, cfg = root_port()
    monitor.commands.clear()
    cfg.write16(0x6C, 0x0100)
    assert monitor.commands == ["o /w 0xcf8 0x8000906c", "o /h 0xcfc 0x100"]
    assert monitor.space[0x6C:0x70] == bytes([0x00, 0x01, 0x40, 0x00])
    cfg.write8(0x3D, 0x02)
    assert monitor.commands[-1] == "o /b 0xcfd 0x2"
    assert monitor.space[0x3C:0x40] == bytes([0x00, 0x02, 0x00, 0x00])


@pytest.mark.parametrize(("offset", "size"), [(0x6F, 2), (0x6E, 4), (0x100, 1), (0xFE, 4)])
def test_misaligned_or_out_of_range_access_is_refused(offset: int, size: int) -> None:
    monitor, cfg = root_port()
    monitor.commands.clear()
    with pytest.raises(ValueError):
        cfg.read(offset, size)
    with pytest.raises(ValueError):
        cfg.write(offset, size, 0)
    assert monitor.commands == []
    with pytest.raises(ValueError):
        cfg.write8(0x3C, 0x100)


def test_hmp_errors_raise_pci_error() -> None:
    class Broken(PortIoMonitor):
        def hmp(self, command: str) -> str:
            if command.startswith("o /w 0xcf8 "):
                return ""
            if command.startswith("i"):
                return "portb[0x0cfc] = 0x36\r\n"  # wrong size for what was asked
            return "invalid char in format: 'q'\r\n"

    cfg = PciConfig(Broken(ROOT_PORT_Q35_60), PciAddress(0, 0x12, 0))
    with pytest.raises(PciError, match="failed"):
        cfg.write16(0x6C, 0x100)
    with pytest.raises(PciError, match="unexpected output"):
        cfg.dump()


# --- query-pci and the capability walk -------------------------------------------------------


def test_find_device_walks_nested_buses() -> None:
    monitor = port_io(ROOT_PORT_Q35_60)
    assert find_device(monitor, ROOT_PORT_ID) == PciAddress(0, 0x12, 0)
    assert find_device(monitor, "nex-usb-xhci0") == PciAddress(1, 0x12, 1)
    assert find_device(monitor, "deep") == PciAddress(2, 5, 2)
    with pytest.raises(PciError, match="'missing'.*pcie-root-port18"):
        find_device(monitor, "missing")


def test_capability_walk_on_recorded_root_port() -> None:
    _, cfg = root_port()
    assert capabilities(cfg) == [(0x54, 0x10), (0x48, 0x11), (0x40, 0x0D)]
    assert find_capability(cfg, PCI_CAP_ID_EXP) == 0x54
    assert find_capability(cfg, 0x11) == 0x48
    with pytest.raises(PciError, match="no capability 0x05"):
        find_capability(cfg, 0x05)


def _relocated_express_cap(new: int) -> bytes:
    """The recorded port with its Express capability moved from 0x54 to `new`."""
    out = bytearray(ROOT_PORT_Q35_60)
    out[new : new + 0x3C] = out[0x54 : 0x54 + 0x3C]
    out[0x54 : 0x54 + 0x3C] = bytes(0x3C)
    out[0x34] = new
    return bytes(out)


def test_capability_walk_finds_a_moved_express_cap() -> None:
    image = _relocated_express_cap(0xA0)
    monitor, cfg = root_port(image)
    assert find_capability(cfg, PCI_CAP_ID_EXP) == 0xA0
    monitor.w1c = {0xBA: 0x19, 0xBB: 0x01}
    state = SyntheticAction().perform(monitor)
    assert state == SlotState(cap_offset=0xA0, slot_control=0x0700, slot_status=0x0040)
    assert monitor.space[0xB8:0xBC] == bytes([0x00, 0x07, 0x40, 0x00])
    assert monitor.space[0x54:0x90] == bytes(0x3C)


@pytest.mark.parametrize(
    "changes",
    [
        {0x41: 0x54},  # SSVID's next points back to the Express cap: a loop
        {0x34: 0x10},  # pointer into the standard header
        {0x55: 0x55},  # low bits of a pointer are masked: 0x54 -> 0x54, a self-loop
    ],
)
def test_capability_walk_rejects_broken_lists(changes: dict[int, int]) -> None:
    _, cfg = root_port(_patched(ROOT_PORT_Q35_60, changes))
    with pytest.raises(PciError, match="broken capability list"):
        find_capability(cfg, 0x05)


def test_no_capability_list_when_status_bit_clear() -> None:
    _, cfg = root_port(_patched(ROOT_PORT_Q35_60, {0x06: 0x00}))
    assert capabilities(cfg) == []
    with pytest.raises(PciError):
        find_capability(cfg, PCI_CAP_ID_EXP)


# --- guest actions ---------------------------------------------------------------------------


def _data_writes(monitor: PortIoMonitor) -> list[str]:
    return [c for c in monitor.commands if c.startswith("o ") and "0xcf8" not in c]


def test_synthetic_action_replays_pciehp() -> None:
    monitor, _ = root_port()
    state = SyntheticAction().perform(monitor)
    assert _data_writes(monitor) == ["o /h 0xcfc 0x100", "o /h 0xcfc 0x700", "o /h 0xcfe 0x18"]
    # The fake does not model QEMU's unplug on power-off, so PDS stays; W1C acks did apply.
    assert state == SlotState(cap_offset=0x54, slot_control=0x0700, slot_status=0x0040)
    assert state.powered_off and state.presence_detected
    assert state.slot_status_offset == 0x6E


def test_no_action_writes_nothing() -> None:
    monitor, _ = root_port()
    state = NoAction().perform(monitor)
    assert _data_writes(monitor) == []
    assert bytes(monitor.space) == ROOT_PORT_Q35_60
    assert state == SlotState(cap_offset=0x54, slot_control=0x07C0, slot_status=0x0040)


def test_recorded_images_differ_in_pds() -> None:
    for image, pds in ((ROOT_PORT_Q35_60, True), (ROOT_PORT_Q35_72, False)):
        monitor, cfg = root_port(image)
        cap = find_capability(cfg, PCI_CAP_ID_EXP)
        assert bool(cfg.read16(cap + 0x1A) & SLTSTA_PDS) is pds
        assert NoAction().perform(monitor).presence_detected is pds


# --- the Scenario object used by patchcheck.run.migrate -----------------------------------------

DESTINATION_LOG = """\
qemu-system-x86_64: get_pci_config_device: Bad config data: i=0x6e read: 0 device: 40 cmask: ff wmask: 0 w1cmask:19
qemu-system-x86_64: Failed to load PCIDevice:config
qemu-system-x86_64: Failed to load pcie-root-port:parent_obj.parent_obj.parent_obj
qemu-system-x86_64: error while loading state for instance 0x0 of device '0000:00:12.0/pcie-root-port'
qemu-system-x86_64: load of migration failed: Invalid argument
"""  # noqa: E501  (measured: QEMU 7.2, pc-q35-6.0, unpatched -> unpatched, synthetic action)


def test_scenario_object() -> None:
    from patchcheck.errors import UsageError
    from patchcheck.scenarios.registry import get

    scenario = get("pds")
    assert scenario.name == "pds"
    assert scenario.qemu_args(64) == qemu_args(64)
    synthetic, none = scenario.action("synthetic"), scenario.action("none")
    with pytest.raises(UsageError):
        scenario.action("bogus")
    forced = ("ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",)
    def side(has_fix: bool) -> Side:
        return Side("b", "7.2.0", "v2" if has_fix else "none", "", has_fix, "/qemu")
    without, with_fix = side(False), side(True)
    assert scenario.expected_to_fail("pc-q35-7.2", with_fix, without, forced, synthetic) is True
    assert scenario.expected_to_fail("pc-q35-7.2", without, without, (), synthetic) is False
    assert scenario.expected_to_fail("pc-q35-6.0", with_fix, without, (), synthetic) is True
    assert scenario.expected_to_fail("pc-q35-6.0", without, with_fix, (), synthetic) is False
    assert scenario.expected_to_fail("pc-q35-6.0", without, without, (), none) is False
    assert [m[7:] for m in scenario.boundary(["pc-q35-5.2", "pc-q35-6.0", "pc-q35-6.1",
                                              "pc-q35-7.2"])] == ["6.0", "6.1", "7.2"]

    lines = scenario.error_lines("qemu-system-x86_64: warning: unrelated\n" + DESTINATION_LOG)
    assert len(lines) == 5 and "i=0x6e read: 0 device: 40" in lines[0]
    assert expected_destination_error(0x54) in lines[0]
    other = "a\n\nb\nc\nd\ne\nf\n"
    assert scenario.error_lines(other) == ["b", "c", "d", "e", "f"]


def _guest_state(pciehp: str, control: int, status: int) -> Any:
    from patchcheck.scenarios.pds.linux import GuestSlotState

    return GuestSlotState(0x54, control, status, initial_control=0x0100,
                          initial_status=SLTSTA_PDS, guest_pciehp=pciehp, guest_settled="yes")


@pytest.mark.parametrize("machine, pciehp, control, status, inconclusive", [
    # on pc-q35-6.0 the outcome turns on the guest's power-off: it is read, not assumed
    ("pc-q35-6.0", "bound", 0x0700, 0x0000, False),  # powered off, QEMU cleared PDS
    ("pc-q35-6.0", "bound", 0x0100, SLTSTA_PDS, True),  # left powered on
    ("pc-q35-6.0", "not bound", 0x0100, SLTSTA_PDS, True),  # pciehp never drove the slot
    # on pc-q35-7.2 (ACPI hotplug) nothing turns on it: whatever the guest did, no question
    ("pc-q35-7.2", "not bound", 0x0100, SLTSTA_PDS, False),
])
def test_a_linux_guest_that_did_not_power_the_slot_off_is_inconclusive(
        machine: str, pciehp: str, control: int, status: int, inconclusive: bool) -> None:
    none = Side("7.2-none", "7.2.22", "none", "unchanged", False, "/b/none")
    why = SCENARIO.inconclusive(machine, none, none, (), SCENARIO.action("synthetic"),
                                _guest_state(pciehp, control, status))
    assert bool(why) == inconclusive
    if inconclusive:
        assert why.startswith("inconclusive: the guest's pciehp") and "model assumes" in why
