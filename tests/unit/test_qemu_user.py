"""QEMU containers run as nobody when patchcheck runs as root (issue 27): the mounts under
/root reach them through a skeleton, the scratch and run directories and the sockets
patchcheck listens on are handed to them, /dev/kvm's group joins them. No engine needed;
what only root can do (chown) is skipped otherwise. The real engine: test_reliability.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from patchcheck.engine.docker import DockerRuntime
from patchcheck.engine.runtime import (
    SANDBOX_UID,
    ContainerSpec,
    Mount,
    device_groups,
    is_root,
    opened_dirs,
    skeleton,
)
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine import Machine
from patchcheck.run import accel
from tests.fakes import FakeRuntime
from tests.unit.test_podman_runtime import DOCKER_PING, FakeClient

NOBODY = f"{SANDBOX_UID}:{SANDBOX_UID}"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="hands files to another user: root only")
CACHE = "/root/.cache/patchcheck"


def qemu_spec(user: str | None, *targets: str) -> ContainerSpec:
    return ContainerSpec(image="img", role="qemu", user=user, spawns=True, hardened=True,
                         mounts=tuple(Mount(f"/host{t}", t, read_only=True) for t in targets))


def owner(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_only_a_user_that_is_not_root_gets_the_private_directories_opened() -> None:
    assert is_root(None) and is_root("0:0") and is_root("root") and not is_root(NOBODY)
    builds, guest = f"{CACHE}/builds", f"{CACHE}/guests"
    assert opened_dirs(qemu_spec(NOBODY, builds, guest, "/tmp/pc-1")) == ("/root",)
    assert opened_dirs(qemu_spec("0:0", builds)) == ()
    assert opened_dirs(qemu_spec(None, builds)) == ()
    assert opened_dirs(qemu_spec(NOBODY, "/tmp/pc-1", "/qemu")) == ()
    assert opened_dirs(qemu_spec(NOBODY, "/root", "/rootfs/x")) == ()  # not under /root


def test_the_skeleton_holds_only_the_mount_points(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir(mode=0o700)  # as mkdtemp makes it
    old = os.umask(0o077)  # a private umask: the skeleton is 0755 all the same
    try:
        laid = skeleton(tmp_path / "s", "/root", [f"{CACHE}/builds", f"{CACHE}/guests",
                                                  "/tmp/x", "/root/../etc"])
    finally:
        os.umask(old)
    found = sorted(str(p.relative_to(laid)) for p in laid.rglob("*"))
    assert found == [".cache", ".cache/patchcheck", ".cache/patchcheck/builds",
                     ".cache/patchcheck/guests"]
    assert all(owner(p)[2] == 0o755 for p in (laid, *laid.rglob("*")))
    assert all(p.is_dir() for p in laid.rglob("*"))


def test_docker_binds_a_read_only_skeleton_at_root_for_a_user_that_is_not_root() -> None:
    client = FakeClient(DOCKER_PING)
    runtime = DockerRuntime("unit", client)
    nobody = runtime.start(qemu_spec(NOBODY, f"{CACHE}/builds"))
    runtime.start(qemu_spec("0:0", f"{CACHE}/builds"))
    try:
        assert nobody.user == NOBODY
        first, second = (c["host_config"]["Mounts"] for c in client.created)
        [opened] = [m for m in first if m["Target"] == "/root"]
        assert opened["ReadOnly"] is True and opened["Type"] == "bind"
        assert (Path(opened["Source"]) / ".cache/patchcheck/builds").is_dir()
        assert owner(Path(opened["Source"]))[::2] == (os.getuid(), 0o755)
        assert not [m for m in second if m["Target"] == "/root"]  # root enters /root
        assert client.created[0]["user"] == NOBODY
    finally:
        runtime.close()
    assert not Path(opened["Source"]).exists()  # gone with the runtime's socket directory


@as_root
def test_a_devices_group_joins_a_container_of_nobody_never_group_0(tmp_path: Path,
                                                                  monkeypatch) -> None:
    kvm, rootish = tmp_path / "kvm", tmp_path / "rootish"
    kvm.touch()
    rootish.touch()
    os.chown(kvm, 0, 108)
    spec = ContainerSpec(image="img", role="qemu", user=NOBODY, devices=(str(kvm), str(rootish)))
    assert device_groups(spec) == ("108",)
    assert device_groups(ContainerSpec(image="img", role="qemu", user="0:0",
                                       devices=(str(kvm),))) == ()
    client = FakeClient(DOCKER_PING)
    runtime = DockerRuntime("unit", client)
    try:
        runtime.start(spec)
        assert client.created[0]["host_config"]["GroupAdd"] == ["108"]
    finally:
        runtime.close()
    monkeypatch.setattr(os, "getuid", lambda: 1000)  # a user runs patchcheck: as before
    assert device_groups(ContainerSpec(image="img", role="qemu", user="1000:1000",
                                       devices=(str(kvm),))) == ()


@as_root
def test_hosts_run_qemus_as_nobody_and_hand_it_the_scratch_directory(tmp_path: Path) -> None:
    scratch, builds = tmp_path / "scratch", tmp_path / "builds"
    scratch.mkdir(mode=0o700)
    builds.mkdir()
    runtime = FakeRuntime()
    hosts = Hosts(runtime, (Mount(str(scratch), str(scratch)), Mount(str(builds), str(builds),
                                                                     read_only=True)))
    hosts.get("img")
    assert runtime.specs[0].user == NOBODY == hosts.user
    assert owner(scratch) == (SANDBOX_UID, SANDBOX_UID, 0o700)  # still private: nobody's
    assert owner(builds)[:2] == (0, 0)  # read-only mounts stay as they are


def test_a_user_who_runs_patchcheck_runs_the_qemus_as_before(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1000)
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700)
    before = owner(scratch)
    runtime = FakeRuntime()
    Hosts(runtime, (Mount(str(scratch), str(scratch)),)).get("img")
    assert runtime.specs[0].user == "1000:1000"
    assert owner(scratch) == before


class _Ended:
    reason = ""

    def poll(self) -> int | None:
        return 0

    def wait(self, timeout: float) -> int | None:
        return 0

    def kill(self) -> None:
        pass


class _Container:
    """A container whose processes run as `user`; it records what it was asked to spawn."""

    id = "unit"

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.spawned: list[Any] = []

    def spawn(self, argv: Any, *, log: str, pidfile: str) -> _Ended:
        self.spawned.append(argv)
        return _Ended()


@as_root
def test_a_qemu_gets_its_run_directory_and_the_sockets_it_connects_to(tmp_path: Path) -> None:
    rundir = tmp_path / "case"
    rundir.mkdir(mode=0o700)
    (rundir / "own").mkdir()  # made by patchcheck before the start: a console's directory
    qemu = Machine(_Container(NOBODY), "/qemu/qemu-system-x86_64", [], rundir,  # type: ignore[arg-type]
                   "destination", timeout=1)
    qemu.start()
    try:
        for path in (rundir, rundir / "own", qemu.qmp_path):
            assert owner(path)[:2] == (SANDBOX_UID, SANDBOX_UID), path
        assert owner(rundir)[2] == 0o700
        assert stat.S_ISSOCK(os.lstat(qemu.qmp_path).st_mode)
        later = rundir / "stream.sock"  # a socket bound after the start (stream.Capture)
        later.touch()
        qemu.let_in(later)
        assert owner(later)[:2] == (SANDBOX_UID, SANDBOX_UID)
    finally:
        qemu.shutdown()


def test_a_qemu_of_the_invoking_user_keeps_what_it_has(tmp_path: Path) -> None:
    rundir = tmp_path / "case"
    rundir.mkdir(mode=0o700)
    me = f"{os.getuid()}:{os.getgid()}"
    qemu = Machine(_Container(me), "/qemu/qemu-system-x86_64", [], rundir,  # type: ignore[arg-type]
                   "source", timeout=1)
    qemu.start()
    try:
        assert owner(rundir) == (os.getuid(), os.getgid(), 0o700)
        assert owner(qemu.qmp_path)[:2] == (os.getuid(), os.getgid())
    finally:
        qemu.shutdown()


@as_root
@pytest.mark.parametrize(("mode", "gid", "usable"), [
    (0o600, 0, False),  # these machines: root's alone
    (0o660, 0, False),  # group 0 is never given to nobody
    (0o660, 108, True),  # the usual kvm group: the container joins it
    (0o666, 0, True),
])
def test_kvm_is_refused_with_its_reason_when_nobody_cannot_open_it(
        tmp_path: Path, mode: int, gid: int, usable: bool) -> None:
    device = tmp_path / "kvm"
    device.touch()
    os.chown(device, 0, gid)
    device.chmod(mode)
    why = accel.closed_to(str(device), NOBODY)
    assert (why == "") == usable
    if not usable:
        assert why.startswith(f"{device} (mode {mode:04o}, uid 0, gid {gid}) cannot be opened "
                              f"by the QEMU containers' user {NOBODY}")
    assert accel.closed_to(str(device), "0:0") == ""
