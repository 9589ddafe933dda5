"""The fakes unit tests share; no engine, no QEMU.

`FakeRuntime`: a container runtime; a test overrides `respond` (spec, argv) -> (exit code,
output), and the runtime records every container, command, build, import and removal.
`PortIoMonitor`: a PCI function's config space behind HMP port I/O (0xcf8/0xcfc) and
query-pci; a subclass models a device's writes. `FakeQemu`/`FakeHosts`: scripted QEMUs
behind patchcheck.qemu.hosts's machine factory (`Hosts.machine`): a destination loads,
rejects the stream, is killed, hangs in `inmigrate` or stays paused (`Dest`); a source
can die between cases (`Src`). A source migrated to a unix socket that no fake
destination listens on (patchcheck.run.stream's Capture) sends its `stream` bytes there; a
destination listens on its `-incoming` socket and takes a stream delivered to it
(`received`) as one from a source.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchcheck.build.record import BuildRecord
from patchcheck.engine.runtime import ContainerSpec, OwnContainer, Process
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import Machine, MachineError
from patchcheck.qemu.pciconf import PciAddress
from patchcheck.run.migrate import FINAL
from patchcheck.scenarios.pds.slot import ROOT_PORT_ID


class FakeContainer:
    def __init__(self, runtime: FakeRuntime, spec: ContainerSpec) -> None:
        self.runtime, self.spec = runtime, spec
        self.id = f"fake-{len(runtime.specs)}"
        self.user = spec.user

    def run(self, argv: Sequence[str], *, output: Callable[[str], None] | None = None,
            workdir: str | None = None, env: Mapping[str, str] | None = None,
            user: str | None = None) -> tuple[int, str]:
        self.runtime.commands.append(list(argv))
        code, text = self.runtime.respond(self.spec, list(argv))
        if output is not None:
            for line in text.splitlines():
                output(line)
        return code, text

    def spawn(self, argv: Sequence[str], *, log: str, pidfile: str) -> Process:
        raise NotImplementedError("the fake runtime starts no background processes")

    def remove(self) -> None:
        self.runtime.removed.append(self.id)


class FakeRuntime:
    """A Runtime (patchcheck.runtime) without an engine."""

    cli = "docker"

    def __init__(self, run_id: str = "fake") -> None:
        self.run_id = run_id
        self.specs: list[ContainerSpec] = []
        self.commands: list[list[str]] = []
        self.removed: list[str] = []
        self.images: dict[str, dict[str, str]] = {}  # ref -> labels
        self.imported: list[tuple[Path, str, str]] = []
        self.closed = False

    def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
        """What a command in a container prints and returns (default: nothing, success)."""
        return 0, ""

    def image_labels(self, ref: str) -> dict[str, str] | None:
        return self.images.get(ref)

    def image_id(self, ref: str) -> str | None:
        return f"sha256:{ref}" if ref in self.images else None

    def remove_image(self, ref: str) -> bool:
        return self.images.pop(ref, None) is not None

    def build_image(self, context: Path, dockerfile: str, tag: str,
                    labels: Mapping[str, str], log: Callable[[str], None]) -> str:
        self.images[tag] = dict(labels)
        return f"sha256:{tag}"

    def pull_image(self, repository: str, tag: str) -> bool:
        return False

    def import_image(self, tarball: Path, repository: str, tag: str,
                     changes: Sequence[str]) -> None:
        self.imported.append((tarball, repository, tag))
        self.images[f"{repository}:{tag}"] = {}

    def start(self, spec: ContainerSpec) -> FakeContainer:
        self.specs.append(spec)
        return FakeContainer(self, spec)

    def own_containers(self) -> list[OwnContainer]:
        return []

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def close(self) -> None:
        self.closed = True


def build_record(name: str, fix: str = "none", has_fix: bool = False) -> BuildRecord:
    """A build of Debian bookworm's QEMU 7.2 (the binary's path names the build)."""
    return BuildRecord(name=name, key=name, source="debian:bookworm", commit="c" * 40,
                       tree_id="t", qemu_version="7.2.22", package_version=None,
                       fix={"state": fix, "applied": "clean", "has_fix": has_fix},
                       generation="bookworm", image="patchcheck-builder:bookworm",
                       image_id="sha256:0", configure=[], seconds=0.0, ccache="",
                       binary=f"/cache/{name}/qemu-system-x86_64", binary_sha256="0",
                       reproduce="", machines=["pc-q35-6.0", "pc-q35-7.2"])


# --- configuration space behind HMP port I/O -------------------------------------------------

# Configuration space (first 256 bytes) of pcie-root-port18 at 00:12.0, read through
# 0xcf8/0xcfc from QEMU 7.2.22 (Debian bookworm), -machine pc-q35-6.0 -S, with the seed
# topology. Capabilities: 0x54 Express -> 0x48 MSI-X -> 0x40 SSVID. Slot Control (0x6c)
# = 0x07c0, Slot Status (0x6e) = 0x0040 (PDS).
ROOT_PORT_Q35_60 = bytes.fromhex(
    "361b0c00 00001000 00000406 00000100"  # 0x00
    "00000000 00000000 00000000 f0000000"  # 0x10
    "f0ff0000 f1ff0100 00000000 00000000"  # 0x20
    "00000000 54000000 00000000 00010000"  # 0x30
    "0d000000 361b0000 11400000 00000000"  # 0x40
    "00080000 10484201 00800000 00000000"  # 0x50
    "04063012 00000422 7b000200 c0074000"  # 0x60
    "00000000 00000000 20003000 00000000"  # 0x70
    "1e000000 04000000" + "00" * 0x78  # 0x80, then zeros to 0xff
)
ROOT_PORT_ADDRESS = PciAddress(0, 0x12, 0)
# QEMU's W1C mask of Slot Status (from "w1cmask:19" in the failure message); the rest is RO.
SLTSTA_W1C = {0x6E: 0x19, 0x6F: 0x01}

_HMP_IO = re.compile(r"([io]) /([bhw]) (0x[0-9a-f]+)(?: (0x[0-9a-f]+))?")
_SIZES = {"b": 1, "h": 2, "w": 4}


class PortIoMonitor:
    """Ports 0xcf8/0xcfc of one PCI function behind QEMU's HMP `i`/`o` commands and their
    output, and `query-pci` (a patchcheck.qemu.pciconf.Monitor; by default it lists only this
    function, as the root port). Bytes listed in `w1c` are
    read-only except for their write-1-to-clear bits. Another function reads all-ones and
    ignores writes; `strict`: any command but an access to this function fails the test."""

    def __init__(self, image: bytes, address: PciAddress = ROOT_PORT_ADDRESS,
                 w1c: Mapping[int, int] | None = None, *,
                 devices: list[dict[str, Any]] | None = None, strict: bool = False) -> None:
        self.space = bytearray(image)
        self.address = address
        self.w1c = dict(w1c or {})
        self.devices = devices if devices is not None else [{"bus": address.bus, "devices": [
            {"bus": address.bus, "slot": address.device, "function": address.function,
             "qdev_id": ROOT_PORT_ID}]}]
        self.strict = strict
        self.latch = 0
        self.commands: list[str] = []

    def qmp(self, command: str, **args: object) -> Any:
        assert command == "query-pci" and not args, command
        return self.devices

    def hmp(self, command: str) -> str:
        self.commands.append(command)
        match = _HMP_IO.fullmatch(command)
        assert match or not self.strict, command
        if not match:
            return f"unknown command: {command!r}\r\n"
        op, fmt, port_text, value_text = match.groups()
        size, port = _SIZES[fmt], int(port_text, 16)
        if op == "o":
            assert value_text is not None
            value = int(value_text, 16)
            if port == 0xCF8:
                assert size == 4, "CONFIG_ADDRESS takes 32-bit writes only"
                self.latch = value
            elif (offset := self._offset(port, size)) is not None:
                self.write_config(offset, size, value)
            return ""
        assert value_text is None
        if port == 0xCF8:
            value = self.latch
        else:
            offset = self._offset(port, size)
            value = (1 << (8 * size)) - 1 if offset is None else self.read_config(offset, size)
        # QEMU: monitor_printf(mon, "port%c[0x%04x] = 0x%0*x\n", suffix, addr, size * 2, val)
        return f"port{'bwl'[size // 2]}[0x{port:04x}] = 0x{value:0{size * 2}x}\r\n"

    def _offset(self, port: int, size: int) -> int | None:
        lane = port - 0xCFC
        assert 0 <= lane and lane + size <= 4, f"access {port:#x}/{size} crosses the data port"
        if self.latch & ~0xFF != self.address.cf8(0):
            assert not self.strict, f"only {self.address} exists: {self.latch:#x}"
            return None  # not our function (or enable bit clear)
        return (self.latch & 0xFC) + lane

    def read_config(self, offset: int, size: int) -> int:
        return int.from_bytes(self.space[offset:offset + size], "little")

    def write_config(self, offset: int, size: int, value: int) -> None:
        for i, byte in enumerate(value.to_bytes(size, "little")):
            mask = self.w1c.get(offset + i)
            old = self.space[offset + i]
            self.space[offset + i] = byte if mask is None else old & ~(byte & mask) & 0xFF


def root_port_monitor() -> PortIoMonitor:
    """The recorded root port (pc-q35-6.0) with Slot Status's W1C bits."""
    return PortIoMonitor(ROOT_PORT_Q35_60, w1c=SLTSTA_W1C)


# --- scripted QEMU processes ----------------------------------------------------------------

# A destination without the PDS fix (QEMU 7.2, pc-q35-6.0) after the source's guest powered
# the empty slot off: what it prints when it rejects the stream, and then it exits 1.
BAD_CONFIG_LOG = (
    "qemu-system-x86_64: get_pci_config_device: Bad config data: i=0x6e read: 0 device: 40 "
    "cmask: ff wmask: 0 w1cmask:19\n"
    "qemu-system-x86_64: Failed to load PCIDevice:config\n"
    "qemu-system-x86_64: Failed to load pcie-root-port:parent_obj.parent_obj.parent_obj\n"
    "qemu-system-x86_64: error while loading state for instance 0x0 of device "
    "'0000:00:12.0/pcie-root-port'\n"
    "qemu-system-x86_64: load of migration failed: Invalid argument\n")
# The same root port rejected at another byte (Slot Capabilities): not the PDS bug.
OTHER_CONFIG_LOG = BAD_CONFIG_LOG.replace("i=0x6e read: 0 device: 40", "i=0x6a read: 0 device: 2")


@dataclass(frozen=True)
class Dest:
    """What a destination QEMU does once the stream arrives: `query-status` answers
    `inmigrate` `polls` more times (None: for ever); then the load ends (at once for 0,
    else during that query-status, whose monitor is lost if the process exits). It writes
    `log` and exits with `exit`, or lives: paused, its own migration status `migration`,
    running after `cont` if `runs`."""

    polls: int | None = 2
    exit: int | None = None
    log: str = ""
    migration: str = "completed"
    runs: bool = True
    reason: str = ""  # why it ended, as the launcher says (killed by the kernel for memory)


LOADS = Dest()
REJECTS = Dest(exit=1, log=BAD_CONFIG_LOG)  # QEMU's exit status for a stream it cannot load
REJECTS_OTHER = Dest(exit=1, log=OTHER_CONFIG_LOG)  # rejected, but not with the bug's error
KILLED = Dest(exit=-9)  # SIGKILL (a shell reports it as 137)
OOM = "killed by the kernel: out of memory (container memory limit 16 MiB)"
KILLED_FOR_MEMORY = Dest(exit=137, reason=OOM)  # and the launcher said why
HANGS = Dest(polls=None)
STAYS_PAUSED = Dest(runs=False)


@dataclass(frozen=True)
class Src:
    """A source QEMU: its `query-migrate` answers during each migration (the last repeats);
    `dies_after`: it is killed (-9) once its n-th migration reached a final status."""

    statuses: tuple[str, ...] = ("active", "completed")
    dies_after: int | None = None
    stream: bytes = b"QEVM fake stream"  # what it sends to a socket that is not a destination
    # killed (137) with this reason right after its first answer of each migration, while
    # it sends (the launcher's words: the kernel killed it for memory)
    killed_sending: str = ""


class FakeQemu(Machine):
    """A patchcheck.qemu.machine.Machine without a process: a scripted QEMU (`Dest` or `Src`) and
    its QMP monitor. It answers query-status, query-migrate, migrate, cont, stop, quit,
    query-pci and human-monitor-command (port I/O on `monitor`, the recorded root port);
    any other command fails as QEMU's unknown commands do. It writes its log (a first line
    names it and its run directory), records the commands it got; `exit` ends it."""

    def __init__(self, rundir: Path, name: str, script: Dest | Src, argv: Sequence[str] = (), *,
                 hosts: FakeHosts | None = None, binary: str = "/qemu/qemu-system-x86_64",
                 timeout: float = 30.0) -> None:
        super().__init__(None, binary, argv, rundir, name, timeout)
        self.script, self.hosts = script, hosts
        self.monitor = root_port_monitor()
        self.commands: list[str] = []
        self.started = self.closed = False
        self.code: int | None = None  # the exit status, once the process is gone
        self.reason = ""  # why it ended, as the launcher says
        self.status = "inmigrate" if "-incoming" in self.args else "prelaunch"
        self.migration = ""  # its query-migrate status
        self.migrations = 0  # a source: `migrate` commands so far
        self._answers: list[str] = []  # a source: query-migrate answers left in this migration
        self._polls: int | None = None  # a destination: inmigrate answers left once streamed
        self.received: bytes | None = None  # a destination: a stream delivered to its socket
        self._listener: socket.socket | None = None

    def let_in(self, path: Path) -> None:
        """A scripted QEMU has no container and no user of its own: nothing to hand over."""

    def start(self) -> None:
        assert not self.started, f"{self.name} started twice"
        self.started = True
        self.log_path.write_text(f"fake {self.name} {self.binary} in {self.rundir.name}\n")
        if self.hosts is not None and "-incoming" in self.args:
            uri = self.args[self.args.index("-incoming") + 1]
            self.hosts.incoming[uri] = self
            self._listen(Path(uri.removeprefix("unix:")))

    def _listen(self, path: Path) -> None:
        """Take a stream delivered to the -incoming socket (not by a fake source)."""
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)

        def take(listener: socket.socket) -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: nothing came
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            self.received = data
            if self.status == "inmigrate":
                self.stream_arrives()
        threading.Thread(target=take, args=(self._listener,), daemon=True).start()

    def connect(self) -> None:
        if not self.started:
            raise MachineError(f"{self.name}: not started")

    def running(self) -> bool:
        return self.started and self.code is None

    def wait_exit(self, timeout: float) -> int | None:
        return self.code if self.started else 0

    def exit(self, code: int, reason: str = "") -> None:
        """The process ends (as scripted, or killed from outside) with this status."""
        self.code, self.status, self.reason = code, "", reason

    def end_reason(self) -> str:
        return self.reason

    def shutdown(self) -> None:
        if self.running():
            self.commands.append("quit")
            self.exit(0)
        self.closed = True
        if self._listener is not None:
            self._listener.close()

    def cmd(self, command: str, **args: object) -> Any:
        if not self.started:
            raise MachineError(f"{self.name}: not running")
        if self.code is not None:
            raise MachineError(f"{self.name}: {command}: QMP lost (EOFError)")
        self.commands.append(command)
        if command == "human-monitor-command":
            return self.monitor.hmp(str(args["command-line"]))
        if command == "query-pci":
            return self.monitor.qmp(command)
        if command == "query-status":
            self._inmigrate_poll()
            if self.code is not None:  # the load ended the process while it answered
                raise MachineError(f"{self.name}: {command}: QMP lost (EOFError)")
            return {"status": self.status, "running": self.status == "running"}
        if command == "query-migrate":
            return self._query_migrate()
        if command == "migrate":
            return self._migrate(str(args["uri"]))
        if command in ("cont", "stop"):
            runs = not isinstance(self.script, Dest) or self.script.runs
            if command == "cont" and runs and self.status in ("prelaunch", "paused", "postmigrate"):
                self.status = "running"
            elif command == "stop" and self.status == "running":
                self.status = "paused"
            return {}
        raise MachineError(f"{self.name}: {command}: The command {command} has not been found")

    def _migrate(self, uri: str) -> dict[str, Any]:
        assert isinstance(self.script, Src), f"{self.name} is not a source"
        if self.status == "postmigrate":  # as QEMU: a paused source migrates once
            raise MachineError(f"{self.name}: migrate: Can't migrate the vm that was paused "
                               "due to previous migration")
        dest = self.hosts.incoming.get(uri) if self.hosts is not None else None
        if dest is None:  # a socket of patchcheck's own
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.connect(uri.removeprefix("unix:"))
                    conn.sendall(self.script.stream)
            except OSError:
                raise MachineError(f"{self.name}: migrate: Failed to connect to '{uri}'") \
                    from None
        elif not dest.running():
            raise MachineError(f"{self.name}: migrate: Failed to connect to '{uri}'")
        else:
            dest.stream_arrives()
        self.migrations += 1
        self._answers = list(self.script.statuses)
        return {}

    def _query_migrate(self) -> dict[str, Any]:
        if isinstance(self.script, Src) and self._answers:
            self.migration = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
            if self.migration == "completed":
                self.status = "postmigrate"
            if self.migration in FINAL and self.migrations == self.script.dies_after:
                self._answers = []
                self.exit(-9)  # right after it answered
            elif self.script.killed_sending:
                self._answers = []
                self.exit(137, self.script.killed_sending)
        return {"status": self.migration} if self.migration else {}

    def stream_arrives(self) -> None:
        assert isinstance(self.script, Dest) and self.status == "inmigrate", self.name
        self._polls = self.script.polls
        if self._polls == 0:
            self._load_ends()

    def _inmigrate_poll(self) -> None:
        if self.status != "inmigrate" or self._polls is None:
            return  # not a destination, done loading, nothing arrived yet, or for ever
        if self._polls > 0:
            self._polls -= 1
        else:
            self._load_ends()

    def _load_ends(self) -> None:
        assert isinstance(self.script, Dest)
        with self.log_path.open("a") as out:
            out.write(self.script.log)
        if self.script.exit is not None:
            self.exit(self.script.exit, self.script.reason)
        else:
            self.status, self.migration = "paused", self.script.migration


class FakeHosts(Hosts):
    """patchcheck.qemu.hosts.Hosts whose machine factory hands out scripted QEMUs: each
    destination takes the next `Dest` (a test that launches more than it scripted fails),
    each source the next `Src` (then `Src()`). `launched`: every QEMU made, in order."""

    def __init__(self, destinations: Sequence[Dest] = (), sources: Sequence[Src] = ()) -> None:
        super().__init__(FakeRuntime(), ())
        self.destination_scripts = list(destinations)
        self.source_scripts = list(sources)
        self.launched: list[FakeQemu] = []
        self.incoming: dict[str, FakeQemu] = {}  # -incoming URI -> the destination listening

    def machine(self, image_id: str, binary: str, argv: Sequence[str], rundir: Path, name: str,
                timeout: float) -> FakeQemu:
        script: Dest | Src
        if name == "destination":
            assert self.destination_scripts, "a destination launched that the test did not script"
            script = self.destination_scripts.pop(0)
        else:
            script = self.source_scripts.pop(0) if self.source_scripts else Src()
        qemu = FakeQemu(rundir, name, script, argv, hosts=self, binary=binary, timeout=timeout)
        self.launched.append(qemu)
        return qemu

    def named(self, name: str) -> list[FakeQemu]:
        return [qemu for qemu in self.launched if qemu.name == name]
