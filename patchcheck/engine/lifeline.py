"""The host side of every container's dead man's switch.

Each container patchcheck starts runs patchcheck/engine/launcher.py as its main process,
which connects to a unix socket of this process (one per container, in the runtime's
private socket directory, mounted into the container) and holds the connection. The
kernel closes the connection when this process ends, however it ends (exit, SIGKILL, the
OOM killer, a crash); the launcher then exits, which ends every process of the container,
and the engine removes it (auto-remove). A container thus lives no longer than the run
that started it, even when nothing of patchcheck is left to clean up."""

from __future__ import annotations

import contextlib
import socket
import threading


class Lifeline:
    """A listening socket at `path` whose accepted connections stay open until `close`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(4)
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._taken = threading.Event()  # the launcher connected
        threading.Thread(target=self._accept, name="lifeline", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            with self._lock:
                self._held.append(conn)
            self._taken.set()

    def wait_taken(self, timeout: float) -> bool:
        """Whether the container's launcher holds the line (waiting at most `timeout` s):
        nothing is run in a container before it does, so that no command outlives the run."""
        return self._taken.wait(timeout)

    def close(self) -> None:
        """Cut the line: the container's launcher sees it and ends the container."""
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()
