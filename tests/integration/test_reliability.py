"""Issue 8: interruption, faults, container hardening — against the real engine and QEMU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from patchcheck.engine.runtime import LABEL_ROLE, LABEL_RUN, SANDBOX_UID, Mount, sandbox_user
from patchcheck.errors import InfraError
from patchcheck.result.model import Case
from patchcheck.result.outcome import Observed
from patchcheck.run.matrix import MatrixOptions, run_matrix
from patchcheck.run.migrate import Hosts, run_cases
from patchcheck.scenarios.registry import get

from .conftest import PROJECT, invoke

SMALL = ["--builds", "7.2-none,7.2-v2", "--machines", "5.0..7.2", "--jobs", "2"]


def _containers(run_id: str) -> list:
    return docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _qemu_pids(marker: str, incoming: bool) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                any(marker.encode() in a for a in argv) and (b"-incoming" in argv) == incoming:
            pids.append(int(proc.name))
    return pids


def _uids(pid: int) -> tuple[int, ...]:
    """The process's real, effective, saved and file-system uids as the host sees them; ()
    once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ()
    line = next((ln for ln in status.splitlines() if ln.startswith("Uid:")), "")
    return tuple(int(x) for x in line.split()[1:])


# QEMU's user: nobody when patchcheck runs as root (issue 27), else the invoking user
QEMU_UID = SANDBOX_UID if os.getuid() == 0 else os.getuid()


def _build_of_a_new_fix(tmp_path: Path) -> list[str]:
    """`invoke build` of v2 with a comment no build has seen: a real (incremental) build."""
    token = uuid.uuid4().hex[:8]
    text = (PROJECT / "patchcheck" / "scenarios" / "pds" / "patches" / "v2.patch").read_text()
    patch = tmp_path / f"v2-{token}.patch"
    patch.write_text(text.replace("hot-removed by guest", f"hot-removed by guest ({token})"))
    return [sys.executable, "-m", "invoke", "build", "--source", "debian:bookworm", "--fix",
            str(patch)]


@pytest.fixture()
def hosts(runtime, settings):
    scratch = Path(tempfile.mkdtemp(prefix="pc-"))
    builds_dir = str(settings.cache_dir / "builds")
    h = Hosts(runtime, (Mount(str(scratch), str(scratch)), Mount(builds_dir, builds_dir, True)))
    yield h, scratch
    h.close()


def test_sigint_mid_matrix_cleans_up_within_10s(builds, tmp_path):
    builds["7.2-none"], builds["7.2-v2"]
    scratch = Path(tempfile.mkdtemp(prefix="pcT-"))  # short: it holds unix sockets
    env = {**os.environ, "INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "r"), "CI": "true",
           "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "matrix", *SMALL, "--run-id", "intr"],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cases = tmp_path / "r" / "intr" / "cases"
    uids: dict[int, tuple[int, ...]] = {}  # the run's QEMUs, as the host sees them

    def watched() -> bool:
        for pid in (*_qemu_pids(str(scratch), False), *_qemu_pids(str(scratch), True)):
            uids[pid] = _uids(pid) or uids.get(pid, ())
        return len(list(cases.glob("*/result.json"))) >= 3 and any(uids.values())
    _wait_for(watched)
    users = {c.attrs["Config"]["User"] for c in _containers("intr")
             if c.labels.get(LABEL_ROLE) == "qemu"}
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 3 and "Traceback" not in err, err[-2000:]
    assert _containers("intr") == []
    assert list(scratch.iterdir()) == []  # the run's private temp dirs are gone
    # its QEMUs ran as nobody (patchcheck as root), never as root
    assert users == {sandbox_user()}, users
    seen = [u for u in uids.values() if u]
    assert seen and all(set(u) == {QEMU_UID} for u in seen), uids
    data = json.loads((tmp_path / "r" / "intr" / "results.json").read_text())
    assert data["partial"] is True and data["cases"]
    assert 'name="partial" value="true"' in (tmp_path / "r" / "intr" / "junit.xml").read_text()


def test_sigterm_mid_build_leaves_nothing_and_next_run_builds(builds, settings, tmp_path):
    builds["7.2-none"]
    args = _build_of_a_new_fix(tmp_path)
    before = set((settings.cache_dir / "builds").glob(".*.tmp"))
    proc = subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    client = docker.from_env()

    def building() -> list:
        return client.containers.list(filters={"label": "org.patchcheck.role=build"})
    _wait_for(lambda: any(c.labels.get("org.patchcheck.pid") == str(proc.pid) for c in building()))
    ours = [c for c in building() if c.labels.get("org.patchcheck.pid") == str(proc.pid)]
    info = client.api.inspect_container(ours[0].id)  # hardening, as the engine sees it
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["HostConfig"]["Privileged"] is False
    assert not info["HostConfig"]["Devices"]
    # a user's patch: an untrusted build (test_untrusted.py), sandboxed, the ccache read-only
    assert info["Config"]["User"] == sandbox_user() != "0:0"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    writable = {m["Destination"] for m in info["Mounts"] if m["RW"]}
    assert writable == {"/build"}, writable
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 3 and "Traceback" not in err
    assert not [c for c in building() if c.labels.get("org.patchcheck.pid") == str(proc.pid)]
    assert set((settings.cache_dir / "builds").glob(".*.tmp")) <= before  # nothing half-built
    again = subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Path(again.stdout.strip().splitlines()[-1]).is_file()


def test_qemu_containers_are_hardened(builds, hosts, runtime):
    h, scratch = hosts
    container = h.get(builds["7.2-none"].image_id)
    info = runtime.client.api.inspect_container(container.id)
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["HostConfig"]["Privileged"] is False
    assert not info["HostConfig"]["Devices"]  # no /dev/kvm under TCG
    # nobody when patchcheck runs as root (issue 27), whether its builds are trusted or not
    assert info["Config"]["User"] == sandbox_user()
    assert os.getuid() != 0 or info["Config"]["User"] == f"{SANDBOX_UID}:{SANDBOX_UID}"
    assert info["HostConfig"]["ReadonlyRootfs"] is True  # its binaries may be untrusted
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert set(info["HostConfig"]["Tmpfs"]) == {"/tmp"}
    builds_mount = [m for m in info["Mounts"] if m["Destination"].endswith("/builds")]
    assert builds_mount and builds_mount[0]["RW"] is False
    # the cache under /root (0700 in the image): a read-only skeleton of its mount points there
    opened = [m for m in info["Mounts"] if m["Destination"] == "/root"]
    under_root = builds_mount[0]["Destination"].startswith("/root/") and os.getuid() == 0
    assert len(opened) == under_root and all(m["RW"] is False for m in opened), opened
    assert (scratch.stat().st_uid, scratch.stat().st_mode & 0o777) == (QEMU_UID, 0o700)
    # writable: the scratch directory, and the launcher's own socket directory
    writable = {m["Destination"] for m in info["Mounts"] if m["RW"]}
    others = writable - {str(scratch)}
    assert len(others) == 1 and (Path(next(iter(others))) / "life.sock").exists(), writable
    assert info["Config"]["Labels"][LABEL_RUN] == runtime.run_id


def test_a_qemu_container_that_cannot_start_is_an_error_and_is_not_left_behind(runtime):
    """The QEMU containers run patchcheck/engine/launcher.py with the image's python3; an image
    without one (the plain base image) fails at start, says why, and is removed."""
    from patchcheck.engine.runtime import ContainerSpec

    def ours() -> set[str]:  # "ancestor" would also match the builder images' containers
        image = runtime.client.images.get("debian:bookworm").id
        return {c.id for c in runtime.client.containers.list(all=True, filters={
            "label": [f"{LABEL_RUN}={runtime.run_id}", "org.patchcheck.role=qemu"]})
            if c.attrs["Image"] == image}

    before = ours()
    with pytest.raises(InfraError, match="cannot start a qemu container.*python3"):
        runtime.start(ContainerSpec(image="debian:bookworm", role="qemu", spawns=True))
    assert ours() == before


def test_a_qemu_that_exits_at_once_fails_its_launch_quickly(builds, hosts, tmp_path):
    from patchcheck.qemu.machine import Machine, MachineError

    h, scratch = hosts
    record = builds["7.2-none"]
    rundir = Path(tempfile.mkdtemp(dir=scratch))
    qemu = Machine(h.get(record.image_id), record.binary, ["-machine", "no-such-board"], rundir,
                   "bad", timeout=30)
    started = time.monotonic()
    with pytest.raises(MachineError, match="did not connect to QMP.*unsupported machine type"):
        qemu.launch()
    assert time.monotonic() - started < 10  # not the 30 s QMP timeout


def test_hung_destination_becomes_an_error_and_the_next_case_runs(builds, hosts, tmp_path):
    h, scratch = hosts
    records = {"n": replace(builds["7.2-none"], name="n")}
    case = Case("pc-q35-6.0", "n", "n", "none")
    stopped: list[int] = []

    def stop_destination() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stopped:
            for pid in _qemu_pids(str(scratch), incoming=True):
                os.kill(pid, signal.SIGSTOP)  # a hung QEMU: alive, silent
                stopped.append(pid)
            time.sleep(0.005)
    thread = threading.Thread(target=stop_destination)
    thread.start()
    started = time.monotonic()
    [result] = run_cases([case], records, h, get("pds"), scratch, lambda _: tmp_path / "hung",
                         timeout=5)
    thread.join()
    assert stopped
    assert result.observed == Observed.ERROR and result.expected == Observed.PASSED
    assert time.monotonic() - started < 20
    assert all(not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()
               .split(b")")[-1][:3] for pid in stopped)  # killed (or a zombie being reaped)
    [after] = run_cases([Case("pc-q35-6.0", "n", "n", "synthetic")], records, h, get("pds"),
                        scratch, lambda _: tmp_path / "after")
    assert after.observed == Observed.FAILED and "i=0x6e" in after.destination_error


def test_qemu_killed_mid_case_is_an_error_with_its_log(builds, hosts, tmp_path):
    h, scratch = hosts
    records = {"n": replace(builds["7.2-none"], name="n")}
    killed: list[int] = []

    def kill_destination() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            for pid in _qemu_pids(str(scratch), incoming=True):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.002)
    thread = threading.Thread(target=kill_destination)
    thread.start()
    [result] = run_cases([Case("pc-q35-7.2", "n", "n", "synthetic")], records, h, get("pds"),
                         scratch, lambda _: tmp_path / "killed", timeout=10)
    thread.join()
    assert killed
    assert result.observed == Observed.ERROR, result
    assert Path(result.logs["destination"]).is_file()  # its log is kept


def test_failed_build_skips_only_its_cases(builds, tmp_path):
    builds["7.2-none"]
    broken = tmp_path / "broken.patch"
    broken.write_text("diff --git a/hw/pci/pcie.c b/hw/pci/pcie.c\n--- a/hw/pci/pcie.c\n"
                      "+++ b/hw/pci/pcie.c\n@@ -657,2 +657,3 @@\n"
                      "     dev->exp.hpev_notified = false;\n+#error broken on purpose\n \n")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("patchcheck:\n  builds:\n    broken: {source: 'debian:bookworm', fix: '"
                   f"{broken}'}}\n")
    result = invoke("-f", str(cfg), "matrix", "--builds", "7.2-none,broken", "--machines", "6.0",
                    "--guest", "synthetic", "--run-id", "skips",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "r")})
    assert result.returncode == 3, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    data = json.loads((tmp_path / "r" / "skips" / "results.json").read_text())
    for case in data["cases"]:
        uses_broken = "broken" in (case["source"]["build"], case["destination"]["build"])
        assert (case["observed"] == "skipped") == uses_broken, case["id"]
    ran = [c for c in data["cases"] if c["observed"] != "skipped"]
    assert ran and ran[0]["observed"] == "failed"  # 7.2-none->7.2-none still ran
    assert "failed" in data["builds"]["broken"]
    junit = (tmp_path / "r" / "skips" / "junit.xml").read_text()
    assert junit.count("<skipped") == len(data["cases"]) - len(ran)


class _EngineGoesAway:
    """The real runtime, until the engine "goes away" after a number of QEMU starts."""

    def __init__(self, runtime, after: int) -> None:
        self.runtime, self.left = runtime, after
        self.run_id = runtime.run_id
        self.client = runtime.client

    def __getattr__(self, name):
        return getattr(self.runtime, name)

    def start(self, spec):
        container = self.runtime.start(spec)
        outer = self

        class Wrapped:
            id = container.id

            def spawn(self, argv, **kw):
                outer.left -= 1
                if outer.left < 0:
                    raise ConnectionError("engine socket closed")
                return container.spawn(argv, **kw)

            def __getattr__(self, name):
                return getattr(container, name)
        return Wrapped()


def test_engine_gone_mid_run_ends_with_partial_results(builds, settings, runtime, tmp_path):
    builds["7.2-none"], builds["7.2-v2"]
    local = replace(settings, reports_dir=tmp_path)
    # 6 QEMU starts: a source and its two destinations (7.2-none, 7.2-v2) on each of two
    # machine types, then the engine is gone
    flaky = _EngineGoesAway(runtime, after=6)
    options = MatrixOptions(builds=("7.2-none", "7.2-v2"), machines="5.0..7.2", jobs=1,
                            run_id="gone", guests=("synthetic",))
    with pytest.raises(InfraError, match="container engine failed"):
        run_matrix(local, flaky, options, log=lambda line: None)
    data = json.loads((tmp_path / "gone" / "results.json").read_text())
    assert data["partial"] is True and 1 <= len(data["cases"]) <= 6
    assert (tmp_path / "gone" / "junit.xml").is_file()


def test_two_runs_at_once_build_once_and_a_corrupt_binary_is_rebuilt(builds, tmp_path):
    builds["7.2-none"]
    args = _build_of_a_new_fix(tmp_path)
    procs = [subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    binaries = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(binaries) == 1  # one entry, built once: the other run waited and reused it
    built = [o for o in outs if "built:" in o[1]]
    assert len(built) == 1 and sum("cached:" in o[1] for o in outs) == 1
    binary = Path(binaries.pop())
    binary.write_bytes(binary.read_bytes()[: 1 << 20])  # truncated on disk
    again = subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "built:" in again.stderr  # detected and rebuilt
    assert binary.stat().st_size > 1 << 20


def test_sigterm_mid_source_fetch_leaves_nothing(builds, tmp_path):
    """Interrupting `apt-get source` (the network=host step): its container goes, and no
    half-imported source stays in the cache."""
    builds["7.2-none"]  # the builder image exists
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "build", "--source", "debian:bookworm"],
                            cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "INVOKE_PATCHCHECK_CACHE_DIR": str(cache)})
    client = docker.from_env()

    def fetching() -> list:
        return [c for c in client.containers.list(filters={"label": "org.patchcheck.role=fetch"})
                if c.labels.get("org.patchcheck.pid") == str(proc.pid)]
    _wait_for(lambda: bool(fetching()), timeout=120)
    info = client.api.inspect_container(fetching()[0].id)
    assert info["HostConfig"]["NetworkMode"] == "host"  # the only step that may use it
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 3 and "Traceback" not in err, err[-1500:]
    assert fetching() == []
    debian = cache / "debian" / "bookworm"
    assert not debian.exists() or list(debian.iterdir()) == []


def _matrix_in_background(tmp_path: Path, run_id: str) -> tuple[subprocess.Popen[str], Path]:
    scratch = Path(tempfile.mkdtemp(prefix="pcK-"))  # short: it holds unix sockets
    env = {**os.environ, "INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "r"), "CI": "true",
           "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "matrix", *SMALL, "--run-id", run_id],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    cases = tmp_path / "r" / run_id / "cases"
    _wait_for(lambda: len(list(cases.glob("*/result.json"))) >= 3)
    return proc, scratch


def _qemus_of(scratch: Path) -> list[int]:
    return _qemu_pids(str(scratch), True) + _qemu_pids(str(scratch), False)


def test_sigkill_mid_matrix_leaves_no_container_and_no_qemu_after_10s(builds, tmp_path):
    """kill -9 (an OOM kill, a CI job killed at its limit): nothing of patchcheck can clean
    up, so every container ends itself once its lifeline to the process is cut."""
    builds["7.2-none"], builds["7.2-v2"]
    proc, scratch = _matrix_in_background(tmp_path, "killed")
    assert _containers("killed")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while (_containers("killed") or _qemus_of(scratch)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers("killed") == [] and _qemus_of(scratch) == []


def test_sighup_is_an_interruption_with_partial_reports(builds, tmp_path):
    """The terminal closed: as Ctrl-C, the finished cases reported and marked partial."""
    builds["7.2-none"], builds["7.2-v2"]
    proc, _ = _matrix_in_background(tmp_path, "hungup")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    run = tmp_path / "r" / "hungup"
    data = json.loads((run / "results.json").read_text())
    assert data["partial"] is True and data["cases"]
    assert 'name="partial" value="true"' in (run / "junit.xml").read_text()
    deadline = time.monotonic() + 10
    while _containers("hungup") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers("hungup") == []


def test_sigkill_mid_build_leaves_no_container_after_10s_and_next_run_builds(builds, settings,
                                                                            tmp_path):
    """kill -9 while the compiler runs (in the build container, through `docker exec`): the
    launcher, the container's PID 1, ends with its lifeline and takes the compiler with it;
    the half-built work directory is the next build's to clear (its lock died with the
    process), and that build succeeds."""
    builds["7.2-none"]
    args = _build_of_a_new_fix(tmp_path)
    proc = subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    client = docker.from_env()

    def building() -> list:
        return [c for c in client.containers.list(all=True,
                                                  filters={"label": "org.patchcheck.role=build"})
                if c.labels.get("org.patchcheck.pid") == str(proc.pid)]

    def processes(ids: set[str]) -> list[Path]:  # the containers' processes, from the host
        return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _in_container(p, ids)]

    def compiling() -> bool:
        return any(_comm(p) in ("ninja", "cc1", "gcc", "ccache", "ld")
                   for p in processes({c.id for c in building()}))
    _wait_for(compiling)
    ids = {c.id for c in building()}
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while (building() or processes(ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert building() == [] and processes(ids) == []
    again = subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Path(again.stdout.strip().splitlines()[-1]).is_file()


def _in_container(proc: Path, ids: set[str]) -> bool:
    """Whether the process runs in one of the containers `ids` (its cgroup names the id)."""
    try:
        cgroup = (proc / "cgroup").read_text()
    except OSError:
        return False
    return any(cid in cgroup for cid in ids)


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""
