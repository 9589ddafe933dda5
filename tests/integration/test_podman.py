"""Issue 17, Podman: Debian's Podman, driven through the same docker SDK against its
Docker-compatible API (`podman system service`), builds QEMU, runs a small matrix with the
same outcomes as Docker, and an interrupted run leaves no container and no QEMU behind.

`scripts/setup-host --podman` installs Podman, starts its service and makes its images.
Where Podman cannot run, every test here is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import Settings
from patchcheck.engine.podman import PodmanRuntime
from patchcheck.engine.runtime import LABEL_RUN, Mount, sandbox_user
from patchcheck.errors import InfraError
from patchcheck.exit_codes import EXIT_OK
from patchcheck.run.matrix import MatrixOptions, run_matrix
from patchcheck.run.migrate import Hosts

from .conftest import PROJECT, Builds
from .test_reliability import _qemu_pids, _wait_for

BUILDS = ("7.2-none", "7.2-v2")
PODMAN_ENV = {"INVOKE_PATCHCHECK_RUNTIME": "podman"}


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanRuntime]:
    if shutil.which("podman") is None:
        pytest.skip("Podman is not installed (scripts/setup-host --podman installs Debian's)")
    try:
        runtime = PodmanRuntime("pytest-podman")
    except InfraError as exc:
        pytest.skip(f"Podman cannot run here: {exc}")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def podman_settings(settings: Settings) -> Settings:
    """The project's settings and cache with the Podman runtime: builds are keyed by the
    builder image's id, so Podman's builds sit beside Docker's in the same cache."""
    return replace(settings, runtime="podman")


@pytest.fixture(scope="module")
def podman_builds(podman: PodmanRuntime, podman_settings: Settings) -> Builds:
    return Builds(Pipeline(podman, podman_settings, log=lambda line: None), podman_settings)


def _small_matrix(settings: Settings, runtime: object, reports: Path, run_id: str
                  ) -> tuple[int, dict[str, str], list[dict[str, object]]]:
    """7.2 without and with v2, same-tree pairs, the synthetic guest on the scenario's
    boundary machine types (plus the forced case per pair), no probe."""
    local = replace(settings, reports_dir=reports, matrix=replace(
        settings.matrix, guests={"synthetic": "boundary"}, semantics=False))
    options = MatrixOptions(builds=BUILDS, pairs=("same-tree",), machines="",
                            guests=("synthetic",), jobs=2, run_id=run_id)
    code = run_matrix(local, runtime, options, log=lambda line: None)  # type: ignore[arg-type]
    cases = json.loads((reports / run_id / "results.json").read_text())["cases"]
    return code, {c["id"]: c["observed"] for c in cases}, cases


@pytest.fixture(scope="module")
def podman_run(podman: PodmanRuntime, podman_settings: Settings, podman_builds: Builds,
               tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[int, dict[str, str], list[dict[str, object]], float]:
    for name in BUILDS:
        podman_builds[name]
    started = time.monotonic()
    code, observed, cases = _small_matrix(podman_settings, podman,
                                          tmp_path_factory.mktemp("podman"), "podman-small")
    return code, observed, cases, time.monotonic() - started


def test_podman_builds_qemu_in_its_own_builder_image(podman, podman_builds, podman_settings):
    record = podman_builds["7.2-none"]
    assert Path(record.binary).is_file() and record.qemu_version.startswith("7.2")
    assert record.image_id == podman.image_id("patchcheck-builder:bookworm")  # Podman's image
    # the builder image is labelled with its Dockerfile's hash, as Docker's is
    labels = podman.image_labels("patchcheck-builder:bookworm") or {}
    assert labels.get("org.patchcheck.dockerfile-sha256")


def test_a_podman_qemu_container_is_hardened_like_dockers(podman, podman_builds,
                                                          podman_settings):
    scratch = Path(tempfile.mkdtemp(prefix="pcP-"))
    builds_dir = str(podman_settings.cache_dir / "builds")
    hosts = Hosts(podman, (Mount(str(scratch), str(scratch)),
                           Mount(builds_dir, builds_dir, True)))
    try:
        container = hosts.get(podman_builds["7.2-none"].image_id)
        info = podman.client.api.inspect_container(container.id)
        host = info["HostConfig"]
        assert host["NetworkMode"] == "none" and host["Privileged"] is False
        assert not host["Devices"]  # no /dev/kvm under TCG
        assert info["Config"]["User"] == sandbox_user()  # nobody under root (issue 27)
        assert "NET_RAW" in host["CapDrop"] and "no-new-privileges" in host["SecurityOpt"]
        mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
        assert mounts[builds_dir] is False and mounts[str(scratch)] is True
        assert info["Config"]["Labels"][LABEL_RUN] == podman.run_id
        limits = {u["Name"]: u["Hard"] for u in host["Ulimits"]}
        assert limits == {"RLIMIT_NOFILE": podman.limits.nofile,
                          "RLIMIT_NPROC": podman.limits.nproc}
    finally:
        hosts.close()
        shutil.rmtree(scratch, ignore_errors=True)


def test_podman_small_matrix_comes_out_as_the_model_expects(podman_run):
    code, observed, cases, _ = podman_run
    unexpected = [f"{c['id']}: {c['observed']} (expected {c['expected']}): {c['message']}"
                  for c in cases if c["observed"] != c["expected"]]
    assert unexpected == [] and code == EXIT_OK
    # 4 same-tree pairs x (3 boundary types + the forced case): the bug reproduces without
    # the fix at the destination on an old type, and v2 removes it
    assert len(cases) == 16
    assert "failed" in observed.values() and "passed" in observed.values()


def test_podman_and_docker_give_the_same_outcomes(podman_run, runtime, settings, builds,
                                                   tmp_path):
    _, on_podman, _, podman_seconds = podman_run
    for name in BUILDS:
        builds[name]
    started = time.monotonic()
    _, on_docker, _ = _small_matrix(settings, runtime, tmp_path, "docker-small")
    docker_seconds = time.monotonic() - started
    assert on_podman == on_docker
    print(f"small matrix ({len(on_podman)} cases): Podman {podman_seconds:.1f} s, "
          f"Docker {docker_seconds:.1f} s")


def test_sigint_mid_matrix_under_podman_leaves_no_container_and_no_qemu(podman, podman_builds,
                                                                         tmp_path):
    for name in BUILDS:
        podman_builds[name]
    scratch = Path(tempfile.mkdtemp(prefix="pcQ-"))  # short: it holds unix sockets
    reports = tmp_path / "r"
    env = {**os.environ, **PODMAN_ENV, "INVOKE_PATCHCHECK_REPORTS_DIR": str(reports),
           "CI": "true", "TMPDIR": str(scratch)}
    run_id = f"intr-podman-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "matrix", "--builds", ",".join(BUILDS),
         "--machines", "5.0..7.2", "--guest", "synthetic", "--jobs", "2", "--run-id", run_id],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cases = reports / run_id / "cases"
    _wait_for(lambda: len(list(cases.glob("*/result.json"))) >= 3 or proc.poll() is not None,
              timeout=300)
    assert proc.poll() is None, proc.communicate()[1][-2000:]  # still mid-matrix
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 3 and "Traceback" not in err, err[-2000:]
    left = podman.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
    assert left == []
    # every QEMU of the run had its sockets under the run's TMPDIR
    assert _qemu_pids(str(scratch), incoming=False) == []
    assert _qemu_pids(str(scratch), incoming=True) == []
    assert list(scratch.iterdir()) == []  # the run's private temp dirs are gone
    scratch.rmdir()
    data = json.loads((reports / run_id / "results.json").read_text())
    assert data["partial"] is True and data["cases"]
