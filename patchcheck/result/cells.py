"""The compatibility sweep's data: one `Cell` per (device, placement, machine type, direction,
guest action), what each side of the sweep is (`SweepSide`), the device types it could not run
(`Unrunnable`), and the whole sweep (`SweepResults`, results.json). No judgement here: what a
cell means (a finding, a known bug, a regression) is patchcheck.verdict.sweep's."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from patchcheck.result.files import write_whole

FORMAT = "patchcheck-sweep/1"


class CellOutcome(enum.StrEnum):
    """What one device did in one migration setting, as the destination QEMU showed it."""

    PASSED = "passed"  # the destination loaded the device's state and runs
    FAILED = "failed"  # the destination rejected the stream at this device's state, or a
    #                    QEMU crashed (a signal such as SIGSEGV) saving or loading it
    NOT_STARTED = "not-started"  # QEMU refused the device on this machine type or placement
    UNMIGRATABLE = "unmigratable"  # the source refused to migrate with the device present
    BLOCKED = "blocked"  # not tried: the port it sits behind failed (its own cell says why)
    ERROR = "error"  # no answer: a QEMU died, timed out, or the failure named no device

    @property
    def finding(self) -> bool:
        return self == CellOutcome.FAILED


class Direction(enum.StrEnum):
    FORWARD = "forward"  # A -> B
    BACKWARD = "backward"  # B -> A
    CONTROL = "control"  # A -> A: a failure here is a bug of A alone


class Placement(enum.StrEnum):
    PCIE_ROOT = "pcie.0"  # q35: on the root complex's bus
    ROOT_PORT = "root-port"  # q35: behind a root port of its own (PCIe capabilities)
    PCI_ROOT = "pci.0"  # i440fx: on the host bridge's bus
    SWITCH = "switch"  # q35: behind a switch's upstream port, itself behind a root port


class Action(enum.StrEnum):
    CREATED = "created"  # migrated as QEMU created it; the guest never ran
    SLOT = "slot"  # a hot-plug slot powered on, then off, events acknowledged (as pciehp does)
    LINUX = "linux"  # a Linux guest booted with the devices, its drivers programmed them


@dataclass(frozen=True, order=True)
class CellKey:
    device: str
    placement: str
    machine: str
    direction: str
    action: str

    @property
    def text(self) -> str:
        return f"{self.device} @{self.placement} {self.machine} {self.direction} {self.action}"


@dataclass
class Cell:
    """One device in one setting: its outcome and, when the destination rejected it, the
    destination's first error line (`error`) and every error line it printed (`lines`)."""

    device: str
    placement: str
    machine: str
    direction: str
    action: str
    source: str  # the side name of the source build
    destination: str
    outcome: str
    error: str = ""  # the first line that explains the outcome (QEMU's own words)
    lines: list[str] = field(default_factory=list)
    instance: str = ""  # the failing instance as the destination named it ('0000:00:03.0/e1000e')
    migrations: int = 0  # how many migrations this cell took part in before its answer
    group: str = ""  # the group it was migrated in (for the logs and reproduce.sh)
    known: str = ""  # the scenario whose signature the error matches ("" when none)
    args: list[str] = field(default_factory=list)  # the QEMU arguments that create the device
    hmp: list[str] = field(default_factory=list)  # the guest action, as monitor commands

    @property
    def key(self) -> CellKey:
        return CellKey(self.device, self.placement, self.machine, self.direction, self.action)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SweepSide:
    """One side of the sweep: a build or a distribution's package, and where its binary is."""

    name: str  # as the user named it ("bookworm", "master-none", "base+patch")
    spec: str  # "debian-pkg:bookworm", "git:<commit>", ...
    qemu_version: str  # "7.2.22"
    configuration: str  # "Debian package qemu-system-x86 1:7.2+dfsg-7+deb12u18", "default device set"
    image_id: str
    binary: str  # inside the image or a host path mounted into it
    image: str = ""  # the image's name, for reproduce.sh (an id is not portable)
    binary_in_image: bool = False  # a packaged QEMU: `binary` is a path inside the image
    package_version: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSide:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Unrunnable:
    """A device type the sweep did not run, and why ("unmigratable", "host resource",
    "only in <side>", "does not start", "introspection"), with QEMU's line where it gave one."""

    device: str
    reason: str
    detail: str = ""
    side: str = ""  # the side it concerns ("" both)


@dataclass
class SweepResults:
    a: SweepSide
    b: SweepSide
    cells: list[Cell] = field(default_factory=list)
    unrunnable: list[Unrunnable] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # the device types swept
    machines: list[str] = field(default_factory=list)  # the machine types swept
    actions: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # grouping, accel, ram, ...
    started: str = ""
    finished: str = ""
    partial: bool = False  # interrupted or ended by a failure: not every cell has an answer
    notes: list[str] = field(default_factory=list)  # what was not swept as a whole, and why
    migrations: int = 0
    seconds: float = 0.0
    # What the time went on: qemu_starts, qemu_start_seconds (from each start until its
    # monitor answered), group_seconds (the groups' own time, all workers added up)
    figures: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResults:
        return cls(
            a=SweepSide.from_dict(data["a"]), b=SweepSide.from_dict(data["b"]),
            cells=[Cell.from_dict(c) for c in data.get("cells", [])],
            unrunnable=[Unrunnable(**u) for u in data.get("unrunnable", [])],
            **{k: data[k] for k in ("devices", "machines", "actions", "settings", "started",
                                    "finished", "partial", "migrations", "seconds", "notes", "figures")
               if k in data})

    def write(self, path: Path) -> None:
        """results.json, written whole or not at all (a temporary file renamed)."""
        write_whole(path, json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> SweepResults:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a sweep's results.json (format {data.get('format')!r})")
        return cls.from_dict(data)
