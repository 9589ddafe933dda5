"""Which member a failure belongs to, and what it costs: the sweep's real `Migration`
(patchcheck.run.sweep.trial) and `Resolver` (patchcheck.run.sweep.resolve) on scripted QEMUs
(tests/fakes.py's FakeQemu, driven by the devices on their command lines): no engine, no QEMU.

Each build is a `Build`: the devices with which its QEMU refuses to start, refuses to migrate,
dies while saving, or rejects the stream (with the destination's own lines). The members are
laid out by patchcheck.run.sweep.members as the sweep lays them out, so every PCI path a
scripted QEMU names is the one the real QEMU would name. Each test asserts what the user
reads in the cells (the outcome per member and destination, the line, the failing instance)
and what the sweep paid for it: the number of migrations, each one source QEMU.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from patchcheck.qemu.inventory import DeviceType
from patchcheck.qemu.machine import QMP_LOST, MachineError
from patchcheck.result.cells import CellOutcome, Placement, SweepSide
from patchcheck.run.sweep.attribute import Answer
from patchcheck.run.sweep.members import Carriers, Member, groups
from patchcheck.run.sweep.resolve import Resolver
from patchcheck.run.sweep.trial import Migration, Setting

from ..fakes import LOADS, OOM, Dest, FakeHosts, FakeQemu, Src

PASSED, FAILED, ERROR = CellOutcome.PASSED, CellOutcome.FAILED, CellOutcome.ERROR
NOT_STARTED, UNMIGRATABLE = CellOutcome.NOT_STARTED, CellOutcome.UNMIGRATABLE
BLOCKED = CellOutcome.BLOCKED
A = SweepSide("bookworm", "debian-pkg:bookworm", "7.2.22", "Debian package", "sha256:a",
              "/a/qemu-system-x86_64")
B = SweepSide("trixie", "debian-pkg:trixie", "10.0.7", "Debian package", "sha256:b",
              "/b/qemu-system-x86_64")
SIDES = {"forward": B, "control": A}  # both from source A, as plan.DIRECTIONS has them
LOAD_FAILED = "load of migration failed: Invalid argument"
PORT = DeviceType("pcie-root-port", frozenset({"pcie", "port", "slot"}),
                  (("chassis", "uint8"), ("port", "uint8")))


# --- a scripted QEMU whose behaviour follows the devices it was given ------------------------


@dataclass(frozen=True)
class Build:
    """What one build's QEMU does with the devices on its command line. A rule's key is a
    device type, "<type> carrying <type>" (a port and the device behind it) or "<type> beside
    <type>" (two devices in one QEMU)."""

    refuses: Mapping[str, str] = field(default_factory=dict)  # -> its complaint; exits 1
    blocks: frozenset[str] = frozenset()  # a source will not migrate with these
    dies_saving: Mapping[str, int] = field(default_factory=dict)  # -> a source's exit status
    rejects: Mapping[str, str] = field(default_factory=dict)  # -> a destination's first line
    garbles: Mapping[str, str] = field(default_factory=dict)  # -> a rejection naming no device
    # -> why it was killed (SIGKILL; "" when nobody says): a source in the middle of `migrate`
    # (its monitor lost), a destination while it loads
    killed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    """One -device argument as QEMU reads it, with the PCI path QEMU names it by."""

    value: str
    type: str
    ident: str
    bus: str
    path: str

    def labels(self, others: Sequence[Device]) -> set[str]:
        return ({self.type} | {f"{self.type} carrying {o.type}" for o in others if o.bus == self.ident}
                | {f"{self.type} beside {o.type}" for o in others if o is not self})


def command_line_devices(argv: Sequence[str]) -> list[Device]:
    """The -device arguments in order; a device on a root bus is '0000:00:<slot>.0', one on a
    bridge's bus its parent's path and ':<slot>.0' (QEMU's pcibus_get_dev_path)."""
    found: list[Device] = []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag != "-device":
            continue
        kind, *rest = value.split(",")
        props = dict(p.partition("=")[::2] for p in rest)
        if "addr" not in props:
            continue  # a backend device (no PCI function of its own)
        slot = f"{int(props['addr'], 16):02x}.0"
        parent = next((d.path for d in found if d.ident == props["bus"]), "0000:00")
        found.append(Device(value, kind, props.get("id", ""), props["bus"], f"{parent}:{slot}"))
    return found


def qemu_log(*lines: str) -> str:
    return "".join(f"qemu-system-x86_64: {line}\n" for line in lines)


def first_rule(devices: Sequence[Device], rules: Mapping[str, Any]) -> tuple[Device, Any] | None:
    """The first device (in creation order, as QEMU saves and loads them) a rule is about."""
    for device in devices:
        for label in sorted(device.labels(devices)):
            if label in rules:
                return device, rules[label]
    return None


def landing(build: Build, devices: Sequence[Device]) -> Dest:
    """What a destination of `build` does with the stream of these devices."""
    rejected = first_rule(devices, build.rejects)
    garbled = first_rule(devices, build.garbles)
    killed = first_rule(devices, build.killed)
    if killed is not None:
        return Dest(exit=137, reason=killed[1], log=qemu_log("warning: a line before it died"))
    if rejected is not None:
        device, line = rejected
        return Dest(exit=1, log=qemu_log(line, "error while loading state for instance 0x0 of "
                                         f"device '{device.path}/{device.type}'", LOAD_FAILED))
    if garbled is not None:
        return Dest(exit=1, log=qemu_log(garbled[1], LOAD_FAILED))
    return LOADS


class SweepQemu(FakeQemu):
    """A FakeQemu of one build: a source (Src) or a destination (-incoming) whose script
    follows from its devices; its log holds QEMU's own lines only."""

    def __init__(self, rundir: Path, name: str, argv: Sequence[str], build: Build,
                 hosts: SweepHosts, binary: str, timeout: float) -> None:
        self.build = build
        self.devices = command_line_devices(argv)
        script = landing(build, self.devices) if "-incoming" in argv else Src()
        super().__init__(rundir, name, script, argv, hosts=hosts, binary=binary, timeout=timeout)

    def start(self) -> None:
        super().start()
        self.log_path.write_text("")
        refused = first_rule(self.devices, self.build.refuses)
        if refused is not None:
            device, complaint = refused
            self.log_path.write_text(qemu_log(f"-device {device.value}: {complaint}"))
            self.exit(1)  # as QEMU does on an argument it refuses, before its monitor

    def connect(self) -> None:
        super().connect()
        if self.code is not None:
            raise MachineError(f"{self.name}: QEMU did not connect to QMP (EOFError): "
                               f"{self.log_tail(3)}")

    def _migrate(self, uri: str) -> dict[str, Any]:
        blocker = next((d for d in self.devices if d.type in self.build.blocks), None)
        if blocker is not None:  # QMP's error, as Machine.cmd words it
            raise MachineError(f"{self.name}: migrate: State blocked by non-migratable device "
                               f"'{blocker.path}/{blocker.type}'")
        killed = first_rule(self.devices, self.build.killed)
        if killed is not None:
            self.exit(137, killed[1])  # killed while it answered: the monitor is lost
            raise MachineError(f"{self.name}: migrate: {QMP_LOST} (ExecInterruptedError: "
                               "Disconnected)")
        dying = first_rule(self.devices, self.build.dies_saving)
        if dying is not None:
            self.exit(dying[1])  # answered `migrate`, then died saving the device's state
            return {}
        return super()._migrate(uri)


class SweepHosts(FakeHosts):
    """Hands out SweepQemus, each of the build its binary names; `launched` keeps them all."""

    def __init__(self, builds: Mapping[str, Build]) -> None:
        super().__init__()
        self.builds = {side.binary: builds.get(side.name, Build()) for side in (A, B)}

    def machine(self, image_id: str, binary: str, argv: Sequence[str], rundir: Path, name: str,
                timeout: float) -> SweepQemu:
        qemu = SweepQemu(rundir, name, argv, self.builds[binary], self, binary, timeout)
        self.launched.append(qemu)
        return qemu

    def sources(self) -> list[SweepQemu]:
        return [q for q in self.launched if isinstance(q, SweepQemu) and q.name == "source"]

    def destinations(self) -> list[str]:
        """The side of each destination QEMU started, in order."""
        return ["a" if q.binary == A.binary else "b" for q in self.launched
                if q.name.startswith("dst-")]


# --- running a group through the real trial and resolver ---------------------------------------


@dataclass
class Swept:
    answers: list[Answer]
    migrations: int  # the resolver's count
    hosts: SweepHosts

    def outcomes(self) -> dict[tuple[str, str], CellOutcome]:
        return {(a.member.device, a.destination): a.outcome for a in self.answers}

    def answer(self, device: str, destination: str = "forward") -> Answer:
        [found] = [a for a in self.answers if (a.member.device, a.destination) == (device, destination)]
        return found


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A short directory for the trials' sockets (a unix socket's path is at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pcsw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


NO_CARRIERS = Carriers()


def group(names: Sequence[str], placement: str = Placement.PCIE_ROOT,
          carriers: Carriers = NO_CARRIERS) -> list[Member]:
    [members] = groups([DeviceType(n, frozenset({"pcie"})) for n in names], placement, carriers)
    return members


def sweep(scratch: Path, members: Sequence[Member], builds: Mapping[str, Build],
          destinations: Sequence[str] = ("forward", "control"), share: bool = True) -> Swept:
    hosts = SweepHosts(builds)
    migration = Migration(Setting("pc-q35-7.2", hosts, scratch, timeout=5.0, start_timeout=1.0),
                          A, {d: SIDES[d] for d in destinations}, slot_action=False)
    resolver = Resolver(migration, share=share)
    answers = resolver.run(members, destinations)
    assert len(answers) == len(members) * len(destinations), "one answer per member and destination"
    assert all(q.closed and not q.running() for q in hosts.launched), "a QEMU left running"
    assert len(hosts.named("source")) == resolver.migrations  # each migration: one source QEMU
    return Swept(answers, resolver.migrations, hosts)


def every(members: Sequence[Member], destinations: Sequence[str], outcome: CellOutcome,
          but: Mapping[tuple[str, str], CellOutcome] | None = None
          ) -> dict[tuple[str, str], CellOutcome]:
    """`outcome` for every member and destination, but those in `but` ((device, destination))."""
    return {(m.device, d): outcome for m in members for d in destinations} | dict(but or {})


# --- (a) the destination names the instance: the member in that slot -------------------------


NICS = ["ac97", "e1000", "e1000-82544gc", "e1000-82545em", "e1000e", "edu"]  # e1000e: slot 5


def test_the_destinations_instance_path_names_the_member_in_its_slot(scratch: Path) -> None:
    members = group(NICS)
    assert [m.ident for m in members if m.device == "e1000e"] == ["s05d"]
    builds = {"trixie": Build(rejects={"e1000e": "Failed to load e1000e:parent_obj"})}
    swept = sweep(scratch, members, builds, ("forward",))
    assert swept.outcomes() == every(members, ["forward"], PASSED,
                                     {("e1000e", "forward"): FAILED})
    failed = swept.answer("e1000e")
    assert failed.instance == "0000:00:05.0/e1000e"
    assert failed.lines == ("Failed to load e1000e:parent_obj",
                            "error while loading state for instance 0x0 of device "
                            "'0000:00:05.0/e1000e'", LOAD_FAILED)
    assert swept.migrations == 2  # the group, then the group without e1000e
    assert (failed.migrations, swept.answer("edu").migrations) == (1, 2)
    assert swept.hosts.destinations() == ["b", "b"]


# --- (b) a device QEMU refuses: tried alone, then not started ---------------------------------


STARTERS = ["ac97", "bochs-display", "cirrus-vga", "e1000", "e1000e", "edu", "foo", "i6300esb"]
FOO_LINE = "-device foo,id=s07d,bus=pcie.0,addr=0x7: no such thing"


def test_a_device_that_does_not_start_is_tried_alone_then_not_started(scratch: Path) -> None:
    members = group(STARTERS)
    both = {side: Build(refuses={"foo": "no such thing"}) for side in ("bookworm", "trixie")}
    swept = sweep(scratch, members, both)
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("foo", "forward"): NOT_STARTED,
                                      ("foo", "control"): NOT_STARTED})
    for destination in ("forward", "control"):
        refused = swept.answer("foo", destination)
        assert refused.lines == (FOO_LINE,)  # QEMU's line, its program name taken off
        assert refused.migrations == 2  # in the group, then alone
    # the group (refused), foo alone (refused again), the rest (passes)
    assert swept.migrations == 3
    sources = swept.hosts.sources()
    assert [len(s.devices) for s in sources] == [8, 1, 7]
    assert swept.hosts.destinations() == ["b", "a"]  # only the last source started


def test_a_device_refused_only_beside_another_passes_alone(scratch: Path) -> None:
    """A conflict: QEMU refuses e1000e only beside edu; alone, e1000e starts and migrates."""
    members = group(NICS)
    line = "a second controller of this kind is not supported"
    both = {side: Build(refuses={"e1000e beside edu": line}) for side in ("bookworm", "trixie")}
    swept = sweep(scratch, members, both, ("forward",))
    assert swept.outcomes() == every(members, ["forward"], PASSED)
    assert swept.migrations == 3  # the group, e1000e alone, the rest


def test_a_device_only_the_destination_refuses_is_not_started_there_only(scratch: Path) -> None:
    members = group(NICS)
    builds = {"trixie": Build(refuses={"edu": "Property 'edu.dma_mask' not found"})}
    swept = sweep(scratch, members, builds)
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("edu", "forward"): NOT_STARTED})
    assert swept.answer("edu").lines == (
        "-device edu,id=s06d,bus=pcie.0,addr=0x6: Property 'edu.dma_mask' not found",)
    assert swept.migrations == 3  # both; edu alone to B; the rest to B


# --- (c) a device the source cannot migrate ---------------------------------------------------


BLOCKER = "State blocked by non-migratable device '0000:00:03.0/nvme'"


def test_a_device_the_source_cannot_migrate_is_unmigratable_everywhere(scratch: Path) -> None:
    members = group(["e1000", "e1000e", "nvme", "virtio-net-pci"])
    swept = sweep(scratch, members, {"bookworm": Build(blocks=frozenset({"nvme"}))})
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("nvme", "forward"): UNMIGRATABLE,
                                      ("nvme", "control"): UNMIGRATABLE})
    for destination in ("forward", "control"):
        assert swept.answer("nvme", destination).lines == (BLOCKER,)
    assert swept.migrations == 2
    assert swept.hosts.destinations() == ["b", "a"]  # none started for the refused migration


# --- (d) a first failure that hides a second ---------------------------------------------------


def test_a_second_failure_shows_once_the_first_is_out(scratch: Path) -> None:
    members = group(NICS)
    builds = {"trixie": Build(rejects={"e1000": "Failed to load e1000:mac_reg",
                                       "e1000e": "Failed to load e1000e:parent_obj"})}
    swept = sweep(scratch, members, builds)
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("e1000", "forward"): FAILED,
                                      ("e1000e", "forward"): FAILED})
    first, second = swept.answer("e1000"), swept.answer("e1000e")
    assert (first.instance, first.lines[0]) == ("0000:00:02.0/e1000", "Failed to load e1000:mac_reg")
    assert (second.instance, second.lines[0]) == ("0000:00:05.0/e1000e",
                                                  "Failed to load e1000e:parent_obj")
    assert not any("e1000e" in line for line in first.lines)  # each its own lines
    assert (first.migrations, second.migrations) == (1, 2)
    assert swept.migrations == 3  # e1000 found, then e1000e, then the rest pass
    assert swept.hosts.destinations() == ["b", "a", "b", "b"]  # the control answered at once


# --- (e) a failure that names no member: halves ----------------------------------------------


EIGHT = ["ac97", "bochs-display", "cirrus-vga", "e1000", "e1000e", "edu", "i6300esb", "nvme"]
NAMELESS = "Unknown savevm section type 110"


def test_a_failure_naming_nobody_is_halved_down_to_its_member(scratch: Path) -> None:
    members = group(EIGHT)
    swept = sweep(scratch, members, {"trixie": Build(garbles={"edu": NAMELESS})}, ("forward",))
    assert swept.outcomes() == every(members, ["forward"], PASSED,
                                     {("edu", "forward"): FAILED})
    found = swept.answer("edu")
    assert found.lines == (NAMELESS, LOAD_FAILED) and found.instance == ""
    # 8, then 4 + 4, then 2 + 2 of the failing half, then 1 + 1: 1 + 2 log2(8)
    assert swept.migrations == 7
    assert found.migrations == 4
    sizes = [len(s.devices) for s in swept.hosts.sources()]
    assert sizes == [8, 4, 4, 2, 2, 1, 1]


# --- (f) destinations that share a source, until their members differ --------------------------


def test_destinations_share_a_source_until_their_members_differ(scratch: Path) -> None:
    """e1000 fails on both destinations, e1000e on B only: the first two migrations serve B
    (forward) and A (control) from one source each; the third goes to B alone."""
    members = group(NICS)
    builds = {"bookworm": Build(rejects={"e1000": "Failed to load e1000:mac_reg"}),
              "trixie": Build(rejects={"e1000": "Failed to load e1000:mac_reg",
                                       "e1000e": "Failed to load e1000e:parent_obj"})}
    swept = sweep(scratch, members, builds)
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("e1000", "forward"): FAILED,
                                      ("e1000", "control"): FAILED,
                                      ("e1000e", "forward"): FAILED})
    assert swept.migrations == 3
    assert swept.hosts.destinations() == ["b", "a", "b", "a", "b"]
    assert [len(s.devices) for s in swept.hosts.sources()] == [6, 5, 4]
    assert swept.answer("ac97", "control").migrations == 2
    assert swept.answer("ac97", "forward").migrations == 3


def test_a_source_per_destination_gives_the_same_answers(scratch: Path) -> None:
    """The shortcut off (sweep.share_sources: false): each destination gets a source of its
    own; every answer is the same, in more migrations."""
    members = group(NICS)
    builds = {"bookworm": Build(rejects={"e1000": "Failed to load e1000:mac_reg"}),
              "trixie": Build(rejects={"e1000": "Failed to load e1000:mac_reg",
                                       "e1000e": "Failed to load e1000e:parent_obj"})}
    shared = sweep(scratch, members, builds)
    alone = sweep(scratch, members, builds, share=False)
    assert alone.outcomes() == shared.outcomes()
    assert {(a.member.device, a.destination): a.lines for a in alone.answers} == \
        {(a.member.device, a.destination): a.lines for a in shared.answers}
    assert alone.migrations == 5 > shared.migrations == 3
    assert sorted(alone.hosts.destinations()) == ["a", "a", "b", "b", "b"]


# --- (g) the port a device sits behind fails ---------------------------------------------------


def test_a_member_whose_port_fails_is_blocked_by_its_port(scratch: Path) -> None:
    members = group(["e1000e", "nvme", "virtio-net-pci"], Placement.ROOT_PORT, Carriers(port=PORT))
    slot_status = "get_pci_config_device: Bad config data: i=0x6e read: 0 device: 40"
    builds = {"trixie": Build(rejects={"pcie-root-port carrying nvme": slot_status})}
    swept = sweep(scratch, members, builds, ("forward",))
    assert swept.outcomes() == every(members, ["forward"], PASSED,
                                     {("nvme", "forward"): BLOCKED})
    blocked = swept.answer("nvme")
    assert blocked.lines[0] == f"its port pcie-root-port failed: {slot_status}"
    assert blocked.instance == "0000:00:02.0/pcie-root-port"  # the port, not nvme behind it
    assert swept.migrations == 2


# --- (h) a source that dies while it migrates ---------------------------------------------------


@pytest.mark.parametrize("status, outcome, line", [
    (139, FAILED, "source QEMU crashed while saving its state (SIGSEGV)"),
    (137, ERROR, "source QEMU ended while migrating (exit 137)"),
], ids=["crashed (SIGSEGV)", "killed"])
def test_a_source_that_dies_while_migrating(scratch: Path, status: int, outcome: CellOutcome,
                                             line: str) -> None:
    """Death names no device: halves, until the one member with which the source dies."""
    members = group(["e1000", "e1000e", "edu", "nvme"])
    swept = sweep(scratch, members, {"bookworm": Build(dies_saving={"e1000e": status})})
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("e1000e", "forward"): outcome,
                                      ("e1000e", "control"): outcome})
    for destination in ("forward", "control"):
        assert swept.answer("e1000e", destination).lines[0] == line
    assert swept.migrations == 5  # 4; 2 (dies) + 2; 1 + 1 (dies)


# --- (i) a QEMU the kernel killed for memory: an error that says so, never a finding ------------


@pytest.mark.parametrize("why, line", [
    (OOM, f"source QEMU was {OOM}"),
    ("", "source QEMU ended while migrating (exit 137)"),
], ids=["for memory", "by someone"])
def test_a_source_killed_in_the_middle_of_migrate_is_an_error_not_unmigratable(
        scratch: Path, why: str, line: str) -> None:
    """Its monitor went with it: no answer of QEMU's to `migrate`, so no migration blocker."""
    members = group(["e1000", "e1000e", "edu", "nvme"])
    swept = sweep(scratch, members, {"bookworm": Build(killed={"e1000e": why})})
    assert swept.outcomes() == every(members, ["forward", "control"], PASSED,
                                     {("e1000e", "forward"): ERROR,
                                      ("e1000e", "control"): ERROR})
    for destination in ("forward", "control"):
        assert swept.answer("e1000e", destination).lines[0] == line


def test_a_destination_killed_for_memory_while_it_loads_is_an_error_with_the_reason(
        scratch: Path) -> None:
    members = group(["e1000", "e1000e", "edu", "nvme"])
    swept = sweep(scratch, members, {"trixie": Build(killed={"nvme": OOM})}, ("forward",))
    # a kill names no device: halved, as a death, until the member with which it comes
    assert swept.outcomes() == every(members, ["forward"], PASSED, {("nvme", "forward"): ERROR})
    killed = swept.answer("nvme")
    assert killed.lines[:2] == (f"destination QEMU was {OOM}",
                                "destination QEMU crashed or was killed (exit 137)")
