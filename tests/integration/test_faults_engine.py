"""Issue 27: the container engine restarted in the middle of a matrix (dockerd killed with
SIGKILL, as a crash or an OOM kill of the daemon does, then started again).

The test kills an engine of its own: a second dockerd with its own socket, data and exec
roots, given the builder image of the session's builds, so that the rest of the suite (and
anything else on the machine) keeps its engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from .conftest import PROJECT, task_env

SMALL = ["--builds", "7.2-none,7.2-v2", "--machines", "5.0..7.2", "--jobs", "2"]


class PrivateEngine:
    """A dockerd of the test's own (network: no bridge, no iptables, as setup-host starts
    one); `kill` ends it as a crash does, `start` brings it back on the same roots."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = f"unix://{root}/docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        r = self.root
        return ["dockerd", "--host", self.socket, "--data-root", f"{r}/data", "--exec-root",
                f"{r}/exec", "--pidfile", f"{r}/docker.pid", "--bridge=none",
                "--iptables=false"]

    def start(self) -> None:
        with open(self.root / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, cwd="/",
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        raise AssertionError(f"dockerd did not start: {(self.root / 'dockerd.log').read_text()}")

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.socket, timeout=120)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """End dockerd and wait for the containerd it started to go too (a restarted
        dockerd that finds the old one still exiting cannot connect to it)."""
        assert self.proc is not None
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        containerd = int(pidfile.read_text()) if pidfile.is_file() else 0
        self.proc.send_signal(sig)
        self.proc.wait(60)
        deadline = time.monotonic() + 60
        while containerd and Path(f"/proc/{containerd}").exists() and \
                time.monotonic() < deadline:
            time.sleep(0.1)

    def containers(self) -> list:
        return self.client().containers.list(all=True)


@pytest.fixture()
def engine(builds) -> Iterator[PrivateEngine]:
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        pytest.skip("needs dockerd and root to start an engine of its own")
    image = builds["7.2-none"].image  # the builder image the session's 7.2 builds ran in
    private = PrivateEngine(Path(tempfile.mkdtemp(prefix="pcE-", dir="/tmp")))
    private.start()
    try:
        saved = docker.from_env().images.get(image).save(named=True)
        private.client().images.load(b"".join(saved))
        yield private
    finally:
        if private.proc is not None and private.proc.poll() is None:
            private.kill(signal.SIGTERM)
        shutil.rmtree(private.root, ignore_errors=True)


def _matrix(engine: PrivateEngine, reports: Path, *extra: str) -> subprocess.Popen[str]:
    env = task_env({"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports), "CI": "true",
                    "INVOKE_PATCHCHECK_RUNTIME_HOST": engine.socket})
    return subprocess.Popen([sys.executable, "-m", "invoke", "matrix", *SMALL, *extra],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_engine_restarted_mid_matrix_exit_3_finished_cases_kept_resume_completes(engine,
                                                                                  tmp_path):
    """dockerd killed and started again while the matrix runs (a daemon crash and its
    restart): the restarted engine kills the containers it finds running, so the cases in
    flight lose their QEMUs: errors, never verdicts; the run ends with exit 3 and its
    finished cases written, and `--resume` completes it."""
    reports = tmp_path / "r"
    proc = _matrix(engine, reports, "--run-id", "restart")
    cases = reports / "restart" / "cases"
    deadline = time.monotonic() + 300
    while len(list(cases.glob("*/result.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    engine.kill()  # the engine crashes in the middle of the matrix ...
    engine.start()  # ... and is started again
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "unexpected error" not in err, err[-2000:]
    total = int(re.findall(r"\[\d+/(\d+)\]", err)[0])  # the run's own count of its cases
    finished = json.loads((reports / "restart" / "results.json").read_text())["cases"]
    assert len(finished) >= 3  # what finished is written
    assert all(c["observed"] in (c["expected"], "error") for c in finished), \
        [(c["id"], c["observed"]) for c in finished if c["observed"] not in (c["expected"], "error")]
    assert _left_of(engine, "restart") == []
    resumed = _matrix(engine, reports, "--resume", "restart")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode in (0, 1), err[-2000:]
    data = json.loads((reports / "restart" / "results.json").read_text())
    assert data["partial"] is False
    by_id = {c["id"]: c for c in data["cases"]}
    assert len(by_id) == total
    assert all(c["observed"] == c["expected"] for c in by_id.values()), \
        [c["id"] for c in by_id.values() if c["observed"] != c["expected"]]
    for case in finished:  # a case judged before the crash is reused as it was
        if case["observed"] not in ("error", "skipped"):
            assert by_id[case["id"]]["observed"] == case["observed"]
    assert _left_of(engine, "restart") == []


def _left_of(engine: PrivateEngine, run_id: str) -> list:
    return [c for c in engine.containers()
            if c.labels.get("org.patchcheck.run.matrix") == run_id]
