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
    client <- {"exit": CODE}  when the process ended; a signal N is 128+N, as in a shell;
              {"exit": 137, "oom": WHY} when the kernel killed it for memory
When the client's side closes (patchcheck finished with it, or patchcheck died) and the
process still runs, it is killed: no QEMU outlives the run that started it.

Killed for memory: a process that ends by SIGKILL the launcher did not send, while the
container's count of the kernel's OOM kills went up (cgroup v1 memory.oom_control, v2
memory.events: `oom_kill N`), was killed by the kernel for memory; one line saying so goes
into its log and the reason to the client. Docker's own OOMKilled flag says nothing here:
it is about the container's main process, this launcher, which lives on. The processes it
starts get oom_score_adj 1000, so the kernel takes one of them before the launcher, whose
end would end them all without a word.

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
from typing import Any, Callable, Dict, Optional

CGROUP = "/sys/fs/cgroup"  # the container's own cgroup (`--cgroup DIR` for tests)
# The count of the kernel's OOM kills in the container, and its memory limit: cgroup v1 (the
# memory controller's directory), then v2 (one directory).
OOM_FILES = ("memory/memory.oom_control", "memory.events")
LIMIT_FILES = ("memory/memory.limit_in_bytes", "memory.max")
NO_LIMIT = 1 << 62  # cgroup v1 says "no limit" with a number near 2**63, v2 with "max"
OOM_SCORE_ADJ = "1000"  # the processes started: the kernel's first choice, not the launcher


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


def _read(root: str, names: "tuple[str, ...]") -> str:
    """The first of the files `names` under `root` that can be read; "" when none can."""
    for name in names:
        try:
            with open(os.path.join(root, name)) as f:
                return f.read()
        except OSError:
            continue
    return ""


def counter(text: str, key: str) -> Optional[int]:
    """The number on the line `KEY N` of a cgroup file; None when there is none."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def oom_kills(root: str = CGROUP) -> Optional[int]:
    """How many processes of this container the kernel killed for memory so far; None
    where that cannot be read (no memory controller, a kernel before 4.13)."""
    return counter(_read(root, OOM_FILES), "oom_kill")


def memory_limit(root: str = CGROUP) -> Optional[int]:
    """The container's memory limit in bytes; None when it has none (or it cannot be read)."""
    text = _read(root, LIMIT_FILES).strip()
    if not text.isdigit() or int(text) >= NO_LIMIT:
        return None
    return int(text)


def oom_reason(before: Optional[int], root: str = CGROUP) -> str:
    """Why a process that ended by a SIGKILL nobody here sent was killed, when the container's
    count of OOM kills went up since it started (`before`); "" otherwise."""
    after = oom_kills(root)
    if before is None or after is None or after <= before:
        return ""
    limit = memory_limit(root)
    where = ("container memory limit %d MiB" % (limit >> 20) if limit is not None
             else "no container memory limit: the machine's memory")
    return "killed by the kernel: out of memory (%s)" % where


def _first_victim(pid: int) -> None:
    """The kernel's OOM killer takes this process before the launcher (a process may raise
    its own kind's score; nothing is lost when it cannot)."""
    try:
        with open("/proc/%d/oom_score_adj" % pid, "w") as f:
            f.write(OOM_SCORE_ADJ)
    except OSError:
        pass


def _start(request: Dict[str, Any]) -> "subprocess.Popen[bytes]":
    argv, log = request["argv"], request["log"]
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, close_fds=True)
    _RUNNING.add(proc)
    _first_victim(proc.pid)
    pidfile = request.get("pidfile")
    if pidfile:
        with open(pidfile, "w") as f:
            f.write("%d\n" % proc.pid)
    return proc


def handle(conn: socket.socket, root: str = CGROUP) -> None:
    send = _sender(conn)
    reader = conn.makefile("r", encoding="utf-8")
    before = oom_kills(root)  # before the process exists: a kill of it counts after this
    try:
        request = json.loads(reader.readline() or "null")
        proc = _start(request)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        send({"error": "%s: %s" % (type(exc).__name__, exc)})
        conn.close()
        return
    send({"pid": proc.pid})
    killed: "list[bool]" = []  # the launcher killed it (asked to, or its client went): not the kernel

    def wait() -> None:
        code = proc.wait()
        _RUNNING.discard(proc)
        why = oom_reason(before, root) if code == -9 and not killed else ""
        if why:
            _note(request["log"], request["argv"][0], why)
        send({"exit": code if code >= 0 else 128 - code, **({"oom": why} if why else {})})

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        for line in reader:
            if line.strip() == '"kill"' and proc.poll() is None:
                killed.append(True)
                proc.kill()
    except (OSError, ValueError):
        pass
    if proc.poll() is None:  # the client closed its end while the process runs
        killed.append(True)
        proc.kill()
    waiter.join()
    conn.close()


def _note(log: str, program: str, why: str) -> None:
    """One line in the process's log, after what it wrote: why it ended."""
    try:
        with open(log, "a") as f:
            f.write("patchcheck launcher: %s was %s\n" % (os.path.basename(program), why))
    except OSError:
        pass


def serve(path: str, root: str = CGROUP) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    server.bind(tmp)
    server.listen(128)
    os.rename(tmp, path)  # the socket appears only once it accepts
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn, root), daemon=True).start()


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
    root = CGROUP
    if argv[:1] == ["--cgroup"]:  # tests: a directory laid out as the container's cgroup
        root, argv = argv[1], argv[2:]
    if argv[:1] == ["--lifeline"]:
        hold(argv[1])
        argv = argv[2:]
    if argv:
        serve(argv[0], root)
    else:
        threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
