"""How the sweep lays devices out before it migrates anything: the PCI paths of each placement
(patchcheck.run.sweep.members), the generic backends a device gets from its own properties
(backends.py), which devices each layout takes and which units a sweep runs (plan.py), and
what a QEMU binary offers, read from its `-device help` and over QMP (patchcheck.qemu.inventory,
on a scripted QEMU that dies answering for one type). No engine, no QEMU."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from patchcheck.errors import UsageError
from patchcheck.qemu import inventory
from patchcheck.qemu.inventory import DeviceType
from patchcheck.qemu.machine import MachineError
from patchcheck.result.cells import Action, Placement, SweepSide
from patchcheck.run.sweep import inventories
from patchcheck.run.sweep.backends import create, host_resource
from patchcheck.run.sweep.members import Carriers, Member, Part, groups, member
from patchcheck.run.sweep.plan import LAYOUTS, Layout, Unit, units

from ..fakes import FakeHosts, FakeQemu, Src

NUMBERED = (("chassis", "uint8"), ("port", "uint8"))
PORT = DeviceType("pcie-root-port", frozenset({"pcie", "port", "slot", "bridge"}), NUMBERED)
UPSTREAM = DeviceType("x3130-upstream", frozenset({"pcie", "port", "bridge"}))
DOWNSTREAM = DeviceType("xio3130-downstream", frozenset({"pcie", "port", "slot", "bridge"}),
                        (*NUMBERED, ("slot", "uint16")))
E1000 = DeviceType("e1000", frozenset({"conventional"}), (("mac", "str"), ("netdev", "str")))
E1000E = DeviceType("e1000e", frozenset({"pcie"}), (("mac", "str"), ("netdev", "str")))
VIRTIO_NET = DeviceType("virtio-net-pci", frozenset({"pcie", "conventional"}))
PCI_BRIDGE = DeviceType("pci-bridge", frozenset({"conventional", "bridge"}),
                        (("chassis_nr", "uint8"),))
CARRIERS = Carriers(port=PORT, upstream=UPSTREAM, filler=E1000)
ALL = [E1000, E1000E, VIRTIO_NET, PORT, DOWNSTREAM, PCI_BRIDGE]


def devices_of(m: Member) -> list[str]:
    """The -device values of a member, in order."""
    return [m.args[i + 1] for i, a in enumerate(m.args) if a == "-device"]


# --- members.py: each placement's PCI paths -----------------------------------------------------


def test_on_the_root_complex_a_device_is_its_slot() -> None:
    m = member(E1000E, Placement.PCIE_ROOT, 5, CARRIERS)
    assert m.parts == (Part("0000:00:05.0", "device", "e1000e"),)
    assert devices_of(m) == ["e1000e,id=s05d,bus=pcie.0,addr=0x5"]
    assert m.slot_port == ""


def test_behind_a_root_port_the_port_takes_the_slot() -> None:
    m = member(E1000E, Placement.ROOT_PORT, 5, CARRIERS)
    assert m.parts == (Part("0000:00:05.0", "port", "pcie-root-port"),
                       Part("0000:00:05.0:00.0", "device", "e1000e"))
    assert devices_of(m) == ["pcie-root-port,id=s05c0,bus=pcie.0,addr=0x5,chassis=16,port=16",
                             "e1000e,id=s05d,bus=s05c0,addr=0x0"]


def test_behind_a_switch_the_device_is_two_levels_below_the_slot() -> None:
    m = member(DOWNSTREAM, Placement.SWITCH, 5, CARRIERS)
    assert m.parts == (Part("0000:00:05.0", "port", "pcie-root-port"),
                       Part("0000:00:05.0:00.0", "port", "x3130-upstream"),
                       Part("0000:00:05.0:00.0:00.0", "device", "xio3130-downstream"))
    assert devices_of(m) == [
        "pcie-root-port,id=s05c0,bus=pcie.0,addr=0x5,chassis=16,port=16",
        "x3130-upstream,id=s05c1,bus=s05c0,addr=0x0",
        "xio3130-downstream,id=s05d,bus=s05c1,addr=0x0,chassis=15,port=15"]


def test_on_the_i440fx_host_bridge_a_device_is_on_pci_0() -> None:
    m = member(PCI_BRIDGE, Placement.PCI_ROOT, 0x1F, CARRIERS)
    assert m.parts == (Part("0000:00:1f.0", "device", "pci-bridge"),)
    assert devices_of(m) == ["pci-bridge,id=s1fd,bus=pci.0,addr=0x1f,chassis_nr=93"]


def test_the_slot_action_gets_a_filler_in_the_ports_slot() -> None:
    m = member(PORT, Placement.PCIE_ROOT, 5, CARRIERS, with_filler=True)
    assert m.parts == (Part("0000:00:05.0", "device", "pcie-root-port"),
                       Part("0000:00:05.0:00.0", "filler", "e1000"))
    assert devices_of(m)[1] == "e1000,id=s05f,bus=s05d,addr=0x0"
    assert m.slot_port == "s05d"  # the port the slot action powers off


@pytest.mark.parametrize("path, part", [
    ("0000:00:05.0", "pcie-root-port"),
    ("0000:00:05.0:00.0", "x3130-upstream"),
    ("0000:00:05.0:00.0:00.0", "xio3130-downstream"),
    ("0000:00:05.0:00.0:00.0:00.0", "xio3130-downstream"),  # its own bus's child is its own
    ("0000:00:05.0:00.0/1", "x3130-upstream"),  # an instance below a part: '<path>/<n>'
    ("0000:00:15.0", None),  # another slot
    ("0000:00:05.1", None),  # another function
], ids=lambda v: str(v))
def test_part_for_takes_the_longest_path_that_is_it_or_its_parent(path: str, part: str | None) -> None:
    m = member(DOWNSTREAM, Placement.SWITCH, 5, CARRIERS)
    found = m.part_for(path)
    assert (found.type if found else None) == part


NUMBER = re.compile(r",(chassis|chassis_nr|port)=(\d+)")


@pytest.mark.parametrize("placement, device", [
    (Placement.ROOT_PORT, PCI_BRIDGE), (Placement.SWITCH, DOWNSTREAM),
    (Placement.PCIE_ROOT, PORT), (Placement.PCI_ROOT, PCI_BRIDGE)])
def test_chassis_and_port_numbers_are_unique_in_a_group(placement: str, device: DeviceType) -> None:
    """A full group (30 members) of one type: no two ports share a chassis or a port number,
    and every number fits QEMU's uint8 (1..255)."""
    kinds = [DeviceType(f"{device.name}-{i:02}", device.kinds, device.properties) for i in range(30)]
    [group] = groups(kinds, placement, CARRIERS, with_filler=placement == Placement.PCIE_ROOT)
    assert len(group) == 30
    numbers: dict[str, list[int]] = {}
    for m in group:
        for value in devices_of(m):
            for name, number in NUMBER.findall(value):
                numbers.setdefault(name.removesuffix("_nr"), []).append(int(number))
    assert numbers, "no numbered property in the group"
    for name, values in numbers.items():
        assert len(values) == len(set(values)), f"{name} repeated: {sorted(values)}"
        assert all(1 <= v <= 255 for v in values), values


@pytest.mark.parametrize("placement, first, last", [
    (Placement.PCIE_ROOT, "0000:00:01.0", "0000:00:1e.0"),  # q35: 0x1f is LPC, SATA, SMBus
    (Placement.PCI_ROOT, "0000:00:02.0", "0000:00:1f.0"),  # i440fx: slot 1 is the PIIX3
])
def test_a_group_fills_the_root_bus_free_slots(placement: str, first: str, last: str) -> None:
    many = [DeviceType(f"dev-{i:02}", frozenset({"pcie", "conventional"})) for i in range(31)]
    laid = groups(many, placement, CARRIERS)
    assert [len(g) for g in laid] == [30, 1]
    paths = [m.parts[-1].path for m in laid[0]]
    assert (paths[0], paths[-1], len(set(paths))) == (first, last, 30)
    assert laid[1][0].parts[-1].path == first  # the next group starts again in the first slot
    assert [m.device for g in laid for m in g] == sorted(d.name for d in many)
    assert [len(g) for g in groups(many, placement, CARRIERS, size=8)] == [8, 8, 8, 7]
    assert [len(g) for g in groups(many, placement, CARRIERS, size=99)] == [30, 1]


# --- backends.py: what a device gets from its own properties ---------------------------------


@pytest.mark.parametrize("prop, qom, backends, extra", [
    ("drive", "str", ["-blockdev", "driver=null-co,node-name=s05d-disk,read-zeroes=on"],
     "drive=s05d-disk"),
    ("chardev", "str", ["-chardev", "null,id=s05d-chr"], "chardev=s05d-chr"),
    ("memdev", "link<memory-backend>", ["-object", "memory-backend-ram,id=s05d-mem,size=1M"],
     "memdev=s05d-mem"),
    ("audiodev", "str", ["-audiodev", "none,id=s05d-audio"], "audiodev=s05d-audio"),
    ("serial", "str", [], "serial=s05d"),
    ("chassis_nr", "uint8", [], "chassis_nr=7"),
], ids=["drive", "chardev", "memdev", "audiodev", "serial", "chassis_nr"])
def test_a_property_gets_its_generic_backend(prop: str, qom: str, backends: list[str],
                                             extra: str) -> None:
    device = DeviceType("dev", frozenset({"pcie"}), ((prop, qom), ("netdev", "str")))
    created = create(device, "s05d", 7, "bus=pcie.0,addr=0x5")
    assert created.args == [*backends, "-device", f"dev,id=s05d,bus=pcie.0,addr=0x5,{extra}"]


def test_a_nic_gets_no_netdev_and_a_child_property_nothing() -> None:
    own = DeviceType("dev", frozenset({"pcie"}), (("drive", "child<scsi-disk>"), ("netdev", "str")))
    assert create(own, "s05d", 7, "bus=pcie.0,addr=0x5").args == \
        ["-device", "dev,id=s05d,bus=pcie.0,addr=0x5"]


@pytest.mark.parametrize("device, why", [
    (DeviceType("vfio-pci", frozenset({"pcie"}), (("host", "str"),)), "vfio"),
    (DeviceType("vhost-user-blk-pci", frozenset({"pcie"}), (("chardev", "str"),)), "vhost"),
    (DeviceType("virtio-input-host-pci", frozenset({"pcie"}), (("evdev", "str"),)), "'evdev'"),
    (DeviceType("virtio-9p-pci", frozenset({"pcie"}), (("fsdev", "str"),)), "'fsdev'"),
    (E1000E, ""),
    (DeviceType("virtio-blk-pci", frozenset({"pcie"}), (("drive", "str"),)), ""),
], ids=lambda v: v.name if isinstance(v, DeviceType) else None)
def test_host_resources(device: DeviceType, why: str) -> None:
    found = host_resource(device)
    assert (why in found and found != "") if why else found == ""


# --- plan.py: which devices each layout takes, and the units of a sweep ----------------------


@pytest.mark.parametrize("layout, taken", [
    (Layout(Placement.PCIE_ROOT, Action.CREATED), [d.name for d in ALL]),
    (Layout(Placement.ROOT_PORT, Action.CREATED), ["e1000e", "virtio-net-pci"]),
    (Layout(Placement.SWITCH, Action.CREATED), ["pcie-root-port", "xio3130-downstream"]),
    (Layout(Placement.PCI_ROOT, Action.CREATED), ["e1000", "virtio-net-pci", "pci-bridge"]),
    (Layout(Placement.PCIE_ROOT, Action.SLOT), ["pcie-root-port", "xio3130-downstream"]),
], ids=lambda v: f"{v.placement} {v.action}" if isinstance(v, Layout) else None)
def test_each_layout_takes_devices_by_their_kinds(layout: Layout, taken: list[str]) -> None:
    assert [d.name for d in ALL if layout.takes(d)] == taken


def _units(directions: Sequence[str], actions: Sequence[str] = ("created", "slot"),
           size: int = 0) -> list[Unit]:
    placements = {lay.placement for lays in LAYOUTS.values() for lay in lays}
    return units(["pc-q35-7.2", "pc-i440fx-7.2", "pc-q35-8.0"], {p: ALL for p in placements},
                 CARRIERS, actions, directions, size)


def test_units_each_source_side_with_its_directions() -> None:
    found = _units(("forward", "backward", "control"))
    layouts = [(u.machine, u.layout.placement, u.layout.action) for u in found]
    assert len(found) == 2 * (4 + 1 + 4)  # q35: 4 layouts, i440fx: 1; each from A and from B
    assert [(u.source, u.directions) for u in found] == \
        [("a", ("forward", "control")), ("b", ("backward",))] * 9
    assert layouts[:8:2] == [("pc-q35-7.2", "pcie.0", "created"), ("pc-q35-7.2", "root-port", "created"),
                             ("pc-q35-7.2", "switch", "created"), ("pc-q35-7.2", "pcie.0", "slot")]
    assert layouts[8] == ("pc-i440fx-7.2", "pci.0", "created")
    slot = found[6]
    assert all(m.slot_port for m in slot.members)  # the slot action has its slots
    assert [m.device for m in found[2].members] == ["e1000e", "virtio-net-pci"]


@pytest.mark.parametrize("directions, expected", [
    (("forward",), [("a", ("forward",))]),
    (("backward",), [("b", ("backward",))]),
    (("control", "backward"), [("a", ("control",)), ("b", ("backward",))]),
])
def test_units_only_for_the_directions_asked(directions: tuple[str, ...],
                                             expected: list[tuple[str, tuple[str, ...]]]) -> None:
    found = _units(directions, actions=("created",))
    assert [(u.source, u.directions) for u in found] == expected * 7  # q35: 3 layouts, i440fx: 1


def test_a_group_size_splits_each_layout_into_units() -> None:
    found = _units(("forward",), actions=("created",), size=2)
    pcie = [u for u in found if (u.machine, u.layout.placement) == ("pc-q35-7.2", "pcie.0")]
    assert [len(u.members) for u in pcie] == [2, 2, 2]
    assert [m.parts[-1].path for u in pcie for m in u.members] == ["0000:00:01.0", "0000:00:02.0"] * 3


@pytest.mark.parametrize("carriers", [Carriers(), Carriers(port=PORT)],
                         ids=["no port", "no upstream port"])
def test_a_member_of_a_root_port_or_switch_unit_sits_behind_its_ports(carriers: Carriers) -> None:
    try:
        found = units(["pc-q35-7.2"], {Placement.ROOT_PORT: ALL, Placement.SWITCH: ALL},
                      carriers, ("created",), ("forward",))
    except (UsageError, ValueError):
        return  # refusing such a layout is as good as not claiming it
    behind: dict[str, int] = {Placement.ROOT_PORT: 1, Placement.SWITCH: 2}
    for unit in found:
        for m in unit.members:
            ports = [p for p in m.parts if p.role == "port"]
            assert len(ports) == behind[unit.layout.placement], (unit.label, m.parts)


def test_every_member_of_a_slot_unit_gets_the_slot_action() -> None:
    try:
        found = units(["pc-q35-7.2"], {Placement.PCIE_ROOT: ALL}, Carriers(port=PORT),
                      ("slot",), ("forward",))
    except (UsageError, ValueError):
        return
    assert all(m.slot_port for unit in found for m in unit.members), \
        [m.ident for unit in found for m in unit.members if not m.slot_port]


# --- inventory: `-device help` and a QEMU asked over QMP ----------------------------------------


HELP = """\
Controller/Bridge/Hub devices:
name "i82801b11-bridge", bus PCI
name "pcie-root-port", bus PCI
name "usb-hub", bus usb-bus

Network devices:
name "e1000", bus PCI, alias "e1000-82540em", desc "Intel Gigabit Ethernet"
name "e1000e", bus PCI, desc "Intel 82574L GbE Controller"
name "virtio-net-device", bus virtio-bus
name "virtio-net-pci", bus PCI, alias "virtio-net"

Display devices:
name "virtio-gpu-gl-pci", bus PCI
name "isa-vga", bus ISA

Uncategorized devices:
name "ipmi-bmc-sim"
"""


def test_help_lists_the_pci_types_with_their_descriptions() -> None:
    assert inventory.help_devices(HELP) == {
        "i82801b11-bridge": "", "pcie-root-port": "", "e1000": "Intel Gigabit Ethernet",
        "e1000e": "Intel 82574L GbE Controller", "virtio-net-pci": "",
        "virtio-gpu-gl-pci": ""}


DIES = "qemu-system-x86_64: ../ui/egl-helpers.c:486: egl_init: Assertion `dpy' failed."
KINDS = {"pci-express-device": ["e1000e", "pcie-root-port", "virtio-net-pci", "virtio-gpu-gl-pci"],
         "conventional-pci-device": ["e1000", "i82801b11-bridge", "virtio-net-pci",
                                     "virtio-gpu-gl-pci"],
         "pcie-slot": ["pcie-root-port"], "pcie-port": ["pcie-root-port"],
         "pci-bridge": ["i82801b11-bridge", "pcie-root-port"]}


class IntrospectedQemu(FakeQemu):
    """A QEMU started with `-machine none` that answers the inventory's questions; asked for
    the properties of virtio-gpu-gl-pci it aborts (as QEMU 7.2 does without a GL display)."""

    def cmd(self, command: str, **args: object) -> Any:
        answers: dict[str, Any] = {
            "query-version": {"qemu": {"major": 7, "minor": 2, "micro": 22}},
            "query-machines": [{"name": "pc-q35-7.2", "alias": "q35"},
                               {"name": "pc-i440fx-7.2", "alias": "pc"}, {"name": "none"}],
            "qom-list-types": [{"name": n} for n in KINDS.get(str(args.get("implements")), [])],
            "device-list-properties": [{"name": "addr", "type": "int32"},
                                       {"name": f"{args.get('typename')}-only", "type": "bool"}],
        }
        if command == "human-monitor-command" and args["command-line"] == "device_add help":
            answers[command] = HELP
        if command not in answers or not self.running():
            return super().cmd(command, **args)
        self.commands.append(command)
        if command == "device-list-properties" and args["typename"] == "virtio-gpu-gl-pci":
            with self.log_path.open("a") as log:
                log.write(DIES + "\n")
            self.exit(134)
            raise MachineError(f"{self.name}: {command}: QMP lost (EOFError)")
        return answers[command]


class IntrospectedHosts(FakeHosts):
    def machine(self, image_id: str, binary: str, argv: Sequence[str], rundir: Path, name: str,
                timeout: float) -> IntrospectedQemu:
        qemu = IntrospectedQemu(rundir, name, Src(), argv, hosts=self, binary=binary, timeout=timeout)
        self.launched.append(qemu)
        return qemu


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pcinv-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_qemu_that_dies_on_one_type_is_started_again_for_the_next(scratch: Path) -> None:
    hosts = IntrospectedHosts()
    side = SweepSide("bookworm", "debian-pkg:bookworm", "", "", "sha256:a", "/usr/bin/qemu-system-x86_64")
    found = inventories.take(hosts, side, scratch, timeout=1.0)
    assert (found.version, found.machines) == ("7.2.22", ("none", "pc-i440fx-7.2", "pc-q35-7.2"))
    assert sorted(found.devices) == ["e1000", "e1000e", "i82801b11-bridge", "pcie-root-port",
                                     "virtio-gpu-gl-pci", "virtio-net-pci"]
    gl = found.devices["virtio-gpu-gl-pci"]
    assert (gl.problem, gl.properties) == (DIES, ())
    after = found.devices["virtio-net-pci"]  # listed after the death, by a fresh QEMU
    assert after.problem == "" and after.property_names == {"addr", "virtio-net-pci-only"}
    assert after.kinds == {"pcie", "conventional"}
    assert found.devices["pcie-root-port"].kinds == {"pcie", "slot", "port", "bridge"}
    assert found.devices["e1000"].desc == "Intel Gigabit Ethernet"
    # one QEMU for the lists, one for the properties until it died, one for the rest
    assert len(hosts.launched) == 3
    assert [q.commands.count("device-list-properties") for q in hosts.launched] == [0, 5, 1]
    assert all(q.args == ["-machine", "none", "-nodefaults", "-S"] for q in hosts.launched)
    assert all(q.closed and not q.running() for q in hosts.launched)
    assert list(scratch.iterdir()) == []  # each QEMU's run directory removed
