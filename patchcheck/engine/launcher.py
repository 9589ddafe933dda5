"""The process launcher inside a QEMU container: its main process, instead of `sleep infinity`.

Starting a process with `docker exec` costs ~55 ms of wall time and a runc start per
process; a migration case starts two QEMUs and the probe one per experiment. So a
container that runs processes in the background (ContainerSpec.spawns) runs this script
as its main process, and patchcheck.runtime asks it over a unix socket (in a directory of
the runtime, mounted into the container) to start each process: ~1 ms.

Standard library only, Python >= 3.7: it runs with the builder image's python3 (QEMU's
own build needs one), not with patchcheck's interpreter, and imports nothing of it.

Protocol, JSON lines, one connection per process:
    client -> {"argv": [...], "log": PATH, "pidfile": PATH}   stdout+stderr go to PATH
    client <- {"pid": N}  or  {"error": "..."} (and the connection closes)
    client -> "kill"                                           any number of times
    client <- {"exit": CODE}  when the process ended; a signal N is 128+N, as in a shell
When the client's side closes (patchcheck finished with it, or patchcheck died) and the
process still runs, it is killed: no QEMU outlives the run that started it.

The dead man's switch (`--lifeline PATH`, every container): the launcher connects to
patchcheck's socket PATH (patchcheck/engine/lifeline.py) and, when that connection closes
because patchcheck ended however it ended, exits at once; as the container's main process
its exit ends every process in the container. Without a launcher socket it only keeps the
lifeline (a container whose commands patchcheck runs with `exec`).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict


def _sender(conn: socket.socket) -> Callable[[Dict[str, Any]], None]:
    lock = threading.Lock()

    def send(message: Dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with lock:
            try:
                conn.sendall(data)
            except OSError:
                pass  # the client is gone; its end of the process is handled below
    return send


_RUNNING: "set[subprocess.Popen[bytes]]" = set()  # killed when the lifeline closes


def _start(request: Dict[str, Any]) -> "subprocess.Popen[bytes]":
    argv, log = request["argv"], request["log"]
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, close_fds=True)
    _RUNNING.add(proc)
    pidfile = request.get("pidfile")
    if pidfile:
        with open(pidfile, "w") as f:
            f.write("%d\n" % proc.pid)
    return proc


def handle(conn: socket.socket) -> None:
    send = _sender(conn)
    reader = conn.makefile("r", encoding="utf-8")
    try:
        proc = _start(json.loads(reader.readline() or "null"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        send({"error": "%s: %s" % (type(exc).__name__, exc)})
        conn.close()
        return
    send({"pid": proc.pid})

    def wait() -> None:
        code = proc.wait()
        _RUNNING.discard(proc)
        send({"exit": code if code >= 0 else 128 - code})

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        for line in reader:
            if line.strip() == '"kill"' and proc.poll() is None:
                proc.kill()
    except (OSError, ValueError):
        pass
    if proc.poll() is None:  # the client closed its end while the process runs
        proc.kill()
    waiter.join()
    conn.close()


def serve(path: str) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    server.bind(tmp)
    server.listen(128)
    os.rename(tmp, path)  # the socket appears only once it accepts
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def hold(path: str, timeout: float = 30.0) -> None:
    """Connect to patchcheck's lifeline and exit the whole process once it closes.
    patchcheck listens before it creates the container, so a refused connection or a
    missing socket means it is gone already (killed while this container started): exit."""
    deadline = time.monotonic() + timeout
    line = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    while True:
        try:
            line.connect(path)
            break
        except (ConnectionRefusedError, FileNotFoundError):
            os._exit(3)
        except OSError:
            if time.monotonic() > deadline:
                os._exit(3)  # nobody holds the other end: end, do not linger
            time.sleep(0.01)

    def watch() -> None:
        try:
            while line.recv(64):
                pass
        except OSError:
            pass
        for proc in list(_RUNNING):  # they end with the container's PID 1 anyway
            if proc.poll() is None:
                proc.kill()
        os._exit(0)  # patchcheck is gone
    threading.Thread(target=watch, daemon=True).start()


def main(argv: "list[str]") -> None:
    if argv[:1] == ["--lifeline"]:
        hold(argv[1])
        argv = argv[2:]
    if argv:
        serve(argv[0])
    else:
        threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
