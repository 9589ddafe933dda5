"""A paused source's migration stream, taken once and given to several destinations.

QEMU migrates a source only once while it is paused: the first migration leaves it in
`postmigrate`, and `migrate` then says "Can't migrate the vm that was paused due to previous
migration" until the guest runs again (`cont`). A guest action that leaves the guest paused
(the synthetic one: config-space writes on a source that never ran) cannot run it again
without changing the device state it is about (the firmware would program the devices).
But such a source is frozen: every migration of it would send the same device state. So
the source migrates once into a unix socket of patchcheck's (`Capture`), and each
destination gets those bytes on its `-incoming` socket (`deliver`), as a source would
send them. Precopy migration is one-way (no return path unless a capability asks for
one), so a destination cannot tell; its verdict is its own, as always.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

from patchcheck.errors import PatchcheckError

CHUNK = 1 << 16


class StreamError(PatchcheckError):
    """The source's stream could not be taken."""


class Capture:
    """A unix socket that takes one migration stream, whole, until the sender hangs up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._chunks: list[bytes] = []
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._take, daemon=True)
        self._thread.start()

    def _take(self) -> None:
        try:
            conn, _ = self._server.accept()
            with conn:
                while data := conn.recv(CHUNK):
                    self._chunks.append(data)
        except OSError as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout: float) -> bytes:
        """The whole stream, once the sender closed its end."""
        if not self._done.wait(timeout):
            raise StreamError(f"the source's migration stream did not end within {timeout:g} s")
        if self._error is not None:
            raise StreamError(f"the source's migration stream was lost: {self._error}")
        return b"".join(self._chunks)

    def close(self) -> None:
        """Stop listening (an accept still waiting ends with an error)."""
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(1.0)
        with contextlib.suppress(OSError):
            self.path.unlink()


def deliver(stream: bytes, path: Path, timeout: float) -> threading.Thread:
    """Send `stream` to the destination listening on `path` and hang up, as a source does
    when its migration completed; in a thread, so that the caller watches the destination
    meanwhile. A destination that rejects the stream may close its end early: that is its
    verdict to give, not an error here."""
    def send() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            try:
                conn.connect(str(path))
                conn.sendall(stream)  # then closed: what is sent stays readable
            except OSError:
                pass
    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread
