"""An interrupted matrix ends the register-semantics probe it started beside its cases: it
closes the probe's hosts, no further QEMU is launched, and the process exits without
waiting for a probe QEMU that is still starting (a run once hung at exit for 30 s, a
probe worker waiting for a QMP connection that was never to come)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from patchcheck.errors import InfraError
from patchcheck.probe.runner import ProbeRunner
from patchcheck.qemu.machine import Machine, MachineError
from patchcheck.run.migrate import Hosts
from patchcheck.scenarios import registry as scenarios

from ..fakes import FakeRuntime, build_record

PROJECT = Path(__file__).resolve().parents[2]


class StartingQemu(Machine):
    """A QEMU that never gets as far as its monitor: it waits until its hosts are closed
    (the run removed its container), or for ever."""

    def __init__(self, hosts: StuckHosts, rundir: Path) -> None:
        super().__init__(None, "qemu-system-x86_64", [], rundir, "probe")  # type: ignore[arg-type]
        self.hosts = hosts

    def launch(self) -> None:
        self.hosts.launches += 1
        self.hosts.started.release()
        if not self.hosts.forever:
            self.hosts.ended.wait()
            raise MachineError("probe: QEMU did not connect to QMP (its container went)")
        threading.Event().wait()

    def shutdown(self) -> None:
        pass


class StuckHosts(Hosts):
    def __init__(self, forever: bool = False) -> None:
        super().__init__(FakeRuntime(), ())
        self.forever = forever
        self.launches = 0
        self.started = threading.Semaphore(0)
        self.ended = threading.Event()

    def machine(self, image_id: str, binary: str, argv: Sequence[str], rundir: Path, name: str,
                timeout: float) -> Machine:
        self.get(image_id)  # raises once the run is ending, as the real one
        return StartingQemu(self, rundir)

    def close(self) -> None:
        super().close()
        self.ended.set()


def _runner(hosts: Hosts, scratch: Path) -> ProbeRunner:
    scen = scenarios.get("pds")
    assert scen.probe is not None
    return ProbeRunner(hosts, scratch, scen, scen.probe, jobs=2, timeout=30)


def test_closing_the_hosts_ends_the_probe_and_launches_nothing_more(tmp_path: Path) -> None:
    hosts = StuckHosts()
    runner = _runner(hosts, tmp_path)
    outcome: list[BaseException] = []

    def probe() -> None:
        try:
            runner.probe(build_record("7.2-none"), "pc-q35-6.0")
        except BaseException as exc:  # noqa: BLE001 - looked at below
            outcome.append(exc)
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    for _ in range(2):  # both workers are starting a QEMU
        assert hosts.started.acquire(timeout=10)
    hosts.close()
    thread.join(5)
    assert not thread.is_alive()
    assert hosts.launches == 2  # no experiment started after the close
    assert len(outcome) == 1 and isinstance(outcome[0], InfraError)
    assert "the run is ending" in str(outcome[0])


SCRIPT = """
import sys, threading
from pathlib import Path
sys.path.insert(0, {project!r})
from tests.unit.test_probe_stop import StuckHosts, _runner
from tests.fakes import build_record

hosts = StuckHosts(forever=True)
runner = _runner(hosts, Path({scratch!r}))
threading.Thread(target=runner.probe, args=(build_record("7.2-none"), "pc-q35-6.0"),
                 daemon=True).start()
hosts.started.acquire(timeout=10)
hosts.close()
print("closed", flush=True)
"""


def test_a_probe_qemu_still_starting_does_not_hold_the_process_at_exit(tmp_path: Path) -> None:
    """As an interrupted matrix: the probe runs on a thread of its own, a QEMU of it is still
    starting, the run closes the hosts and returns; the process ends at once."""
    script = SCRIPT.format(project=str(PROJECT), scratch=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("the process waited for the probe's QEMU at exit")
    assert proc.returncode == 0, err[-2000:]
    assert out.strip() == "closed"
