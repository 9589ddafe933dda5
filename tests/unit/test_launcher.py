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

# Killed for memory (docs/reliability.md, "Memory"): the launcher reads the container's count
# of OOM kills from its cgroup; these tests give it a directory laid out as one.

V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill {}\n"
V2_EVENTS = "low 0\nhigh 0\nmax 12\noom 1\noom_kill {}\noom_group_kill 0\n"


def _cgroup_v1(root: Path, kills: int, limit: int) -> Path:
    (root / "memory").mkdir(parents=True, exist_ok=True)
    (root / "memory" / "memory.oom_control").write_text(V1_OOM_CONTROL.format(kills))
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{limit}\n")
    return root / "memory" / "memory.oom_control"


def test_the_oom_kill_count_and_the_limit_are_read_from_cgroup_v1_and_v2(tmp_path: Path) -> None:
    from patchcheck.engine import launcher as module

    v1, v2, none = tmp_path / "v1", tmp_path / "v2", tmp_path / "none"
    _cgroup_v1(v1, 3, 64 << 20)
    v2.mkdir()
    (v2 / "memory.events").write_text(V2_EVENTS.format(2))
    (v2 / "memory.max").write_text("max\n")
    none.mkdir()
    assert (module.oom_kills(str(v1)), module.memory_limit(str(v1))) == (3, 64 << 20)
    assert (module.oom_kills(str(v2)), module.memory_limit(str(v2))) == (2, None)
    assert (module.oom_kills(str(none)), module.memory_limit(str(none))) == (None, None)
    _cgroup_v1(v1, 3, 9223372036854771712)  # what cgroup v1 says for "no limit"
    assert module.memory_limit(str(v1)) is None
    assert module.counter("oom_kill_disable 0\n", "oom_kill") is None


def test_oom_reason_needs_the_count_to_have_gone_up(tmp_path: Path) -> None:
    from patchcheck.engine import launcher as module

    control = _cgroup_v1(tmp_path, 1, 16 << 20)
    assert module.oom_reason(1, str(tmp_path)) == ""
    assert module.oom_reason(None, str(tmp_path)) == ""  # unknown before: no claim
    control.write_text(V1_OOM_CONTROL.format(2))
    assert module.oom_reason(1, str(tmp_path)) == \
        "killed by the kernel: out of memory (container memory limit 16 MiB)"
    _cgroup_v1(tmp_path, 2, 9223372036854771712)
    assert module.oom_reason(1, str(tmp_path)) == \
        "killed by the kernel: out of memory (no container memory limit: the machine's memory)"


@pytest.fixture
def cgroup_launcher(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A launcher whose cgroup is tmp_path/cg (v1 layout, limit 16 MiB, no kill yet)."""
    control = _cgroup_v1(tmp_path / "cg", 0, 16 << 20)
    sock = str(tmp_path / "launcher.sock")
    server = subprocess.Popen([sys.executable, "-I", str(LAUNCHER), "--cgroup",
                               str(tmp_path / "cg"), sock])
    yield sock, control
    assert server.poll() is None, "the launcher died"
    server.kill()
    server.wait()


def _killed_by_the_kernel(control: Path) -> list[str]:
    """A process that does what the kernel does to it: count the kill, then SIGKILL."""
    return ["sh", "-c", f"echo started; printf 'oom_kill 1\\n' > {control}; kill -9 $$"]


def test_a_process_killed_for_memory_reports_it_in_its_log_and_to_the_client(
        cgroup_launcher: tuple[str, Path], tmp_path: Path) -> None:
    sock, control = cgroup_launcher
    proc = _start(sock, tmp_path, *_killed_by_the_kernel(control))
    assert proc.wait(10) == 128 + 9
    why = "killed by the kernel: out of memory (container memory limit 16 MiB)"
    assert proc.reason == why
    assert (tmp_path / "out.log").read_text().splitlines() == [
        "started", f"patchcheck launcher: sh was {why}"]


def test_a_sigkill_without_an_oom_kill_or_sent_by_the_launcher_is_no_memory_kill(
        cgroup_launcher: tuple[str, Path], tmp_path: Path) -> None:
    sock, control = cgroup_launcher
    proc = _start(sock, tmp_path, "sh", "-c", "kill -9 $$")  # killed, the count unchanged
    assert proc.wait(10) == 128 + 9 and proc.reason == ""
    proc = _start(sock, tmp_path, "sleep", "60")
    control.write_text(V1_OOM_CONTROL.format(5))  # another process's kill, while it ran
    proc.kill()  # patchcheck asked for this one's end
    assert proc.wait(10) == 128 + 9 and proc.reason == ""
    assert "patchcheck launcher" not in (tmp_path / "out.log").read_text()


def test_the_kernel_takes_a_started_process_before_the_launcher(
        launcher: str, tmp_path: Path) -> None:
    proc = _start(launcher, tmp_path, "sleep", "60")
    assert Path(f"/proc/{proc.pid}/oom_score_adj").read_text().strip() == "1000"
    proc.kill()
    assert proc.wait(10) == 128 + 9 and proc.reason == ""
