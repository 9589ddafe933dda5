"""The container-side launcher (patchcheck/engine/launcher.py) and its client, run on this host:
the launcher is plain Python, so no container is needed to check its protocol."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchcheck.engine.launched import LaunchedProcess
from patchcheck.engine.runtime import LAUNCHER
from patchcheck.errors import InfraError


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[str]:
    sock = str(tmp_path / "launcher.sock")
    server = subprocess.Popen([sys.executable, "-I", str(LAUNCHER), sock])
    yield sock
    assert server.poll() is None, "the launcher died"
    server.kill()
    server.wait()


def _start(sock: str, tmp_path: Path, *argv: str) -> LaunchedProcess:
    return LaunchedProcess.start(sock, argv, str(tmp_path / "out.log"),
                                 str(tmp_path / "out.pid"), alive=lambda: True, timeout=10)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_exit_status_and_output_reach_the_client(launcher: str, tmp_path: Path) -> None:
    proc = _start(launcher, tmp_path, "sh", "-c", 'echo "to stdout"; echo "to stderr" >&2; exit 3')
    assert proc.wait(10) == 3
    assert proc.poll() == 3
    assert (tmp_path / "out.log").read_text() == "to stdout\nto stderr\n"
    assert (tmp_path / "out.pid").read_text().strip() == str(proc.pid)


def test_poll_does_not_wait_and_kill_ends_the_process_as_a_shell_reports_it(
        launcher: str, tmp_path: Path) -> None:
    proc = _start(launcher, tmp_path, "sleep", "60")
    started = time.monotonic()
    assert proc.poll() is None and proc.wait(0.2) is None
    assert time.monotonic() - started < 2
    proc.kill()
    assert proc.wait(10) == 128 + 9


def test_closing_the_connection_ends_a_running_process(launcher: str, tmp_path: Path) -> None:
    proc = _start(launcher, tmp_path, "sleep", "60")
    assert _alive(proc.pid)
    proc.close()  # patchcheck gone: no process may outlive it
    deadline = time.monotonic() + 10
    while _alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(proc.pid)


def test_a_program_that_cannot_start_exits_127_with_the_reason_in_its_log(
        launcher: str, tmp_path: Path) -> None:
    proc = _start(launcher, tmp_path, "/nonexistent/qemu-system-x86_64", "-S")
    assert proc.poll() == 127
    assert "cannot start /nonexistent/qemu-system-x86_64" in (tmp_path / "out.log").read_text()


def test_many_processes_at_once(launcher: str, tmp_path: Path) -> None:
    procs = [LaunchedProcess.start(launcher, ["sh", "-c", f"exit {i}"], str(tmp_path / f"{i}.log"),
                                   "", alive=lambda: True) for i in range(20)]
    assert [p.wait(10) for p in procs] == list(range(20))


def test_a_launcher_that_never_appears_is_an_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="launcher in the container did not start"):
        LaunchedProcess.start(str(tmp_path / "none.sock"), ["true"], str(tmp_path / "log"), "",
                              alive=lambda: False)


def test_a_cut_lifeline_ends_the_launcher_and_what_it_started(tmp_path: Path) -> None:
    """The dead man's switch: the launcher holds patchcheck's lifeline; once it closes (as
    the kernel closes it when patchcheck dies, however), the launcher kills what it
    started and exits within a second."""
    from patchcheck.engine.lifeline import Lifeline

    line = Lifeline(str(tmp_path / "life.sock"))
    sock = str(tmp_path / "launcher.sock")
    server = subprocess.Popen([sys.executable, "-I", str(LAUNCHER), "--lifeline", line.path, sock])
    try:
        proc = _start(sock, tmp_path, "sleep", "300")
        pid = int((tmp_path / "out.pid").read_text())
        assert _alive(pid) and server.poll() is None
        line.close()
        assert server.wait(timeout=5) == 0
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid)
        assert proc.wait(5) is not None
    finally:
        if server.poll() is None:
            server.kill()


def test_a_launcher_without_a_socket_only_holds_the_lifeline(tmp_path: Path) -> None:
    from patchcheck.engine.lifeline import Lifeline

    line = Lifeline(str(tmp_path / "life.sock"))
    keeper = subprocess.Popen([sys.executable, "-I", str(LAUNCHER), "--lifeline", line.path])
    time.sleep(0.5)
    assert keeper.poll() is None  # holds on while the line does
    line.close()
    assert keeper.wait(timeout=5) == 0


def test_a_launcher_whose_lifeline_never_answers_does_not_linger(tmp_path: Path) -> None:
    from patchcheck.engine import launcher as module

    script = f"import sys; sys.path.insert(0, {str(Path(module.__file__).parent)!r}); " \
             f"import launcher; launcher.hold({str(tmp_path / 'none.sock')!r}, 0.3); " \
             "import time; time.sleep(5)"
    code = subprocess.run([sys.executable, "-I", "-c", script], timeout=10).returncode
    assert code == 3


def test_a_launcher_started_after_patchcheck_died_ends_at_once(tmp_path: Path) -> None:
    """patchcheck killed between creating a container and its launcher connecting: the
    socket is there but nobody listens; the launcher exits at once (not after 30 s)."""
    import socket

    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(tmp_path / "life.sock"))
    dead.listen(1)
    dead.close()  # the file stays, as after a SIGKILL
    started = time.monotonic()
    keeper = subprocess.run([sys.executable, "-I", str(LAUNCHER), "--lifeline",
                             str(tmp_path / "life.sock")], timeout=20)
    assert keeper.returncode == 3 and time.monotonic() - started < 5


def test_the_runtime_knows_when_a_launcher_holds_the_line(tmp_path: Path) -> None:
    from patchcheck.engine.lifeline import Lifeline

    line = Lifeline(str(tmp_path / "life.sock"))
    assert line.wait_taken(0.05) is False  # nothing connected yet: nothing may run
    keeper = subprocess.Popen([sys.executable, "-I", str(LAUNCHER), "--lifeline", line.path])
    try:
        assert line.wait_taken(10) is True
    finally:
        line.close()
        keeper.wait(timeout=5)
