"""The client side of patchcheck/engine/launcher.py: a process the container's launcher started,
one unix socket connection per process (how DockerRuntime spawns QEMUs)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from patchcheck.errors import InfraError


class LaunchedProcess:
    """A process started by the container's launcher (patchcheck/engine/launcher.py): one unix
    socket connection per process, which carries its exit status back. A thread per
    process reads it, so `wait` may be called from any thread."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid  # in the container's PID namespace
        self._code: int | None = None
        self.reason = ""  # why it ended, when the kernel killed it for memory (the launcher's)
        self._exited = threading.Event()
        self._pending = b""  # received, not yet read: the exit status may come with the pid

    @classmethod
    def start(cls, path: str, argv: Sequence[str], log: str, pidfile: str,
              alive: Callable[[], bool], timeout: float = 30.0) -> LaunchedProcess:
        """Connect to the launcher at `path` (waiting while its container starts) and start
        argv. A launcher that answers with an error gives a process that exited with 127."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline or not alive():
                    raise InfraError(f"the launcher in the container did not start ({path})") \
                        from None
                time.sleep(0.01)
        proc = cls(sock, 0)
        reply: dict[str, Any] = {}
        try:
            sock.settimeout(timeout)
            sock.sendall((json.dumps({"argv": list(argv), "log": log, "pidfile": pidfile})
                          + "\n").encode())
            while b"\n" not in proc._pending:
                data = sock.recv(4096)
                if not data:
                    break
                proc._pending += data
            line, _, proc._pending = proc._pending.partition(b"\n")
            reply = json.loads(line) if line else {}
            sock.settimeout(None)
        except (OSError, ValueError):
            pass
        if "pid" not in reply:
            why = reply.get("error", "no answer from the launcher")
            with open(log, "a") as f:  # like a shell that cannot exec: the reason in the log
                f.write(f"patchcheck launcher: cannot start {argv[0]}: {why}\n")
            proc._finish(127)
            return proc
        proc.pid = int(reply["pid"])
        threading.Thread(target=proc._read, daemon=True).start()
        return proc

    def _read(self) -> None:
        code = -1  # the connection ended without a status: the launcher (container) is gone
        pending = self._pending
        while b"\n" not in pending:  # the only message after the pid is the exit status
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            pending += data
        if b"\n" in pending:
            try:
                message = json.loads(pending.partition(b"\n")[0])
                code = int(message["exit"])
                self.reason = str(message.get("oom") or "")
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        self._finish(code)

    def _finish(self, code: int) -> None:
        self._code = code
        self._sock.close()
        self._exited.set()

    def wait(self, timeout: float) -> int | None:
        """The exit status, waiting at most `timeout` seconds for it."""
        self._exited.wait(timeout)
        return self._code

    def poll(self) -> int | None:
        return self._code

    def kill(self) -> None:
        if not self._exited.is_set():
            try:
                self._sock.sendall(b'"kill"\n')
            except OSError:
                pass

    def close(self) -> None:
        """Drop the connection: the launcher ends the process if it still runs."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
