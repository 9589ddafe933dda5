"""One QEMU process under control: started in a container, driven over QMP (qemu.qmp).

In the spirit of QEMU's python/qemu/machine: the object owns its process, its QMP
socket, its stderr log, its timeout and its cleanup. The QMP socket is a unix socket
in a private (0700) run directory shared with the container; patchcheck listens and
QEMU connects, so there is no race on the socket's creation. When QEMU runs as another
user than patchcheck (nobody, when patchcheck runs as root), the run directory and the
sockets patchcheck makes for it are handed to that user (`let_in`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from patchcheck.engine.runtime import Container, Mount, Process, hand_over, run_command
from patchcheck.errors import PatchcheckError

FIRMWARE_DIRS = ("/usr/share/qemu", "/usr/share/seabios")


def reproducer(cli: str, image: str, binary: str, args: Sequence[str],
               mounts: Sequence[Mount] = ()) -> list[str]:
    """A QEMU as patchcheck runs it, by hand: in its builder image, network none, the monitor
    on stdio."""
    path = Path(binary)
    return run_command(cli, image, [f"/qemu/{path.name}",
                                    *(a for d in FIRMWARE_DIRS for a in ("-L", d)),
                                    "-display", "none", "-monitor", "stdio", *args],
                       mounts=[Mount(str(path.parent), "/qemu", read_only=True), *mounts],
                       interactive=True)


QMP_LOST = "QMP lost"  # a command's error when the monitor went away (not QEMU's answer)


class MachineError(PatchcheckError):
    """QEMU did not start, died, or stopped answering."""


class Machine:
    def __init__(self, container: Container, binary: str, args: Sequence[str], rundir: Path, name: str,
                 timeout: float = 30.0) -> None:
        self.container = container
        self.binary = binary
        self.args = list(args)
        self.rundir = rundir
        self.name = name
        self.timeout = timeout
        self.log_path = rundir / f"{name}.log"
        self.qmp_path = rundir / f"{name}.qmp"
        self._qmp: QEMUMonitorProtocol | None = None
        self._proc: Process | None = None

    @property
    def argv(self) -> list[str]:
        firmware = [arg for d in FIRMWARE_DIRS for arg in ("-L", d)]
        monitor = ["-chardev", f"socket,id=qmp,path={self.qmp_path}",
                   "-mon", "chardev=qmp,mode=control"]
        return [self.binary, *firmware, "-display", "none", *monitor, *self.args]

    def launch(self) -> None:
        """Start QEMU and wait until its monitor is connected."""
        self.start()
        self.connect()

    def start(self) -> None:
        """Listen on the QMP socket and start the process; `connect` completes the launch.
        (Two machines started first and connected second initialise concurrently.)"""
        self._qmp = QEMUMonitorProtocol(str(self.qmp_path), server=True)
        self.let_in(self.rundir)  # its log, its sockets, its console; the QMP socket too
        self._proc = self.container.spawn(self.argv, log=str(self.log_path),
                                          pidfile=str(self.rundir / f"{self.name}.pid"))

    def let_in(self, path: Path) -> None:
        """Hand `path` (a directory it writes in, with everything in it; a socket
        patchcheck listens on for it) to the user QEMU runs as, when that is not the
        invoking one (runtime.hand_over)."""
        hand_over(path, self.container.user)

    def connect(self) -> None:
        if self._qmp is None:
            raise MachineError(f"{self.name}: not started")
        accepted = threading.Event()
        threading.Thread(target=self._unblock_accept, args=(accepted,), daemon=True).start()
        try:
            self._qmp.accept(timeout=self.timeout)
            accepted.set()
        except Exception as exc:  # noqa: BLE001 - QEMU exited or never connected
            accepted.set()
            self.shutdown()
            raise MachineError(f"{self.name}: QEMU did not connect to QMP "
                               f"({type(exc).__name__}): {self.log_tail(3)}") from None

    def _unblock_accept(self, accepted: threading.Event) -> None:
        """A QEMU that exits before it connects (bad arguments, say) would leave `accept`
        waiting for the whole timeout: connect to the socket in its place and hang up, so
        that `accept` fails at once."""
        proc = self._proc
        if proc is None or proc.wait(self.timeout) is None or accepted.is_set():
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke:
                poke.connect(str(self.qmp_path))
        except OSError:
            pass

    def cmd(self, command: str, **args: object) -> Any:
        if self._qmp is None:
            raise MachineError(f"{self.name}: not running")
        try:
            self._qmp.settimeout(self.timeout)
            return self._qmp.cmd(command, **args)
        except ExecuteError as exc:  # QEMU's own answer to the command
            raise MachineError(f"{self.name}: {command}: {exc}") from None
        except QMPError as exc:  # the monitor went away (Disconnected) with the command
            raise MachineError(f"{self.name}: {command}: {QMP_LOST} ({type(exc).__name__}: "
                               f"{exc})") from None
        except (OSError, EOFError, TimeoutError, Exception) as exc:  # noqa: BLE001
            raise MachineError(f"{self.name}: {command}: {QMP_LOST} ({type(exc).__name__})") \
                from None

    def qmp(self, command: str, **args: object) -> Any:
        return self.cmd(command, **args)

    def reset(self) -> None:
        """`system_reset`, returning once QEMU has reset (its RESET event): QMP answers the
        command before the main loop performs the reset. A paused machine stays paused."""
        if self._qmp is None:
            raise MachineError(f"{self.name}: not running")
        self._qmp.clear_events()
        self.cmd("system_reset")
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._qmp.pull_event(wait=float(left))
            except Exception as exc:  # noqa: BLE001 - a timeout, or QEMU went away
                raise MachineError(f"{self.name}: no RESET event after system_reset "
                                   f"({type(exc).__name__})") from None
            if event is not None and event.get("event") == "RESET":
                return
        raise MachineError(f"{self.name}: no RESET event after system_reset")

    def hmp(self, command: str) -> str:
        return str(self.cmd("human-monitor-command", **{"command-line": command}))

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def end_reason(self) -> str:
        """Why the process ended when something outside it ended it and said so (the
        container's launcher: "killed by the kernel: out of memory (...)"); "" otherwise,
        and while it runs."""
        proc = self._proc
        return proc.reason if proc is not None and proc.poll() is not None else ""

    def wait_exit(self, timeout: float) -> int | None:
        if self._proc is None:
            return 0
        code = self._proc.wait(timeout)
        return None if code is None else int(code)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def shutdown(self) -> None:
        """Quit politely, then kill; always close the monitor."""
        if self._qmp is not None:
            if self.running():
                try:
                    self._qmp.settimeout(2)
                    self._qmp.cmd("quit")
                except Exception:  # noqa: BLE001
                    pass
            try:
                self._qmp.close()
            except Exception:  # noqa: BLE001
                pass
            self._qmp = None
        if self._proc is not None and self.wait_exit(2.0) is None:
            self._proc.kill()
            self.wait_exit(5.0)
