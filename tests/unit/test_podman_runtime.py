"""Podman through the docker SDK (patchcheck/engine/podman.py): what differs from Docker,
against a fake client that records what the runtime asks of the engine. No engine needed."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from docker.types import HostConfig

from patchcheck.config import settings as config
from patchcheck.engine import podman_conf
from patchcheck.engine import registry as engines
from patchcheck.engine.docker import DockerRuntime
from patchcheck.engine.podman import (
    SAFE_LIMITS,
    Limits,
    PodmanRuntime,
    default_socket,
    parse_limits,
    service_limits,
)
from patchcheck.engine.runtime import LABEL_RUN, ContainerSpec, Mount
from patchcheck.errors import ConfigError, InfraError, UsageError

PODMAN_PING = {"Api-Version": "1.41", "Libpod-Api-Version": "4.3.1"}
DOCKER_PING = {"Api-Version": "1.41"}

LIMITS_TEXT = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             32768                32768                processes
Max open files            1024                 20000                files
"""


class FakeResponse:
    def __init__(self, headers: dict[str, str] | None = None, lines: list[bytes] | None = None,
                 status: int = 200) -> None:
        self.headers = headers or {}
        self.status_code = status
        self.text = "" if status == 200 else "bad request"
        self._lines = lines or []

    def raise_for_status(self) -> None:
        if self.status_code != 200:
            raise RuntimeError(self.text)

    def iter_lines(self) -> Iterator[bytes]:
        return iter(self._lines)


class FakeClient:
    """The parts of docker.DockerClient the runtimes use, recording every request."""

    def __init__(self, ping: dict[str, str], rootless: bool = False) -> None:
        self.ping = ping
        self.security = ["name=seccomp,profile=default", *(["name=rootless"] if rootless else [])]
        self.created: list[dict[str, Any]] = []
        self.started: list[str] = []
        self.removed: list[str] = []
        self.imports: list[tuple[str, dict[str, Any]]] = []
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.build_lines: list[bytes] = []
        self.api = SimpleNamespace(
            base_url="http+docker://localhost", get=self._get, post=self._post,
            create_host_config=lambda **kw: HostConfig(version="1.41", **kw),
            create_container=self._create, start=self.started.append,
            remove_container=lambda cid, force=False: self.removed.append(cid),
            import_image_from_file=lambda path, **kw: self.imports.append((path, kw)),
            inspect_image=lambda ref: {"Id": f"sha256:{ref}"})
        self.images = SimpleNamespace(get=lambda ref: SimpleNamespace(id=f"sha256:{ref}",
                                                                      labels={}))

    def info(self) -> dict[str, Any]:
        return {"SecurityOptions": self.security}

    def _get(self, url: str, timeout: float) -> FakeResponse:
        assert url.endswith("/_ping")
        return FakeResponse(self.ping)

    def _post(self, url: str, **kwargs: Any) -> FakeResponse:
        kwargs["data"] = kwargs["data"].read()  # the context, as a tar stream
        self.posts.append((url, kwargs))
        return FakeResponse(lines=self.build_lines)

    def _create(self, image: str, command: list[str], **kwargs: Any) -> dict[str, str]:
        self.created.append({"image": image, "command": command, **kwargs})
        return {"Id": f"c{len(self.created)}"}


LIMITS = Limits(nofile=20000, nproc=32768)


def podman(client: FakeClient, **kwargs: Any) -> PodmanRuntime:
    return PodmanRuntime("unit", client, host="unix:///run/podman/podman.sock",
                         limits=LIMITS, **kwargs)


def spec(**kwargs: Any) -> ContainerSpec:
    return ContainerSpec(image="img", role="build", network="none", user="1000:1000",
                         mounts=(Mount("/src-on-host", "/src", read_only=True),), **kwargs)


# --- where the engine is, and which one answers ------------------------------------------


def test_the_socket_is_container_host_else_the_root_or_the_rootless_service() -> None:
    assert default_socket({"CONTAINER_HOST": "unix:///tmp/p.sock"}, 0) == "unix:///tmp/p.sock"
    # a remote CONTAINER_HOST (ssh://) cannot bind-mount this host's paths: the local one
    assert default_socket({"CONTAINER_HOST": "ssh://h/run/p.sock"}, 0) == \
        "unix:///run/podman/podman.sock"
    assert default_socket({}, 0) == "unix:///run/podman/podman.sock"
    assert default_socket({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000) == \
        "unix:///run/user/1000/podman/podman.sock"
    assert default_socket({}, 1001) == "unix:///run/user/1001/podman/podman.sock"


def test_podman_runtime_refuses_an_engine_that_is_not_podman_and_docker_one_that_is() -> None:
    with pytest.raises(InfraError, match="is not Podman: set patchcheck.runtime to docker"):
        podman(FakeClient(DOCKER_PING))
    with pytest.raises(InfraError, match="is Podman: set patchcheck.runtime to podman"):
        DockerRuntime("unit", FakeClient(PODMAN_PING))
    assert podman(FakeClient(PODMAN_PING)).cli == "podman"
    assert DockerRuntime("unit", FakeClient(DOCKER_PING)).cli == "docker"


def test_no_podman_service_is_one_line_that_says_how_to_start_it(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/none.sock"
    with pytest.raises(InfraError) as caught:
        PodmanRuntime("unit", host=host)
    assert str(caught.value) == (
        f"Podman engine not reachable at {host}: No such file or directory (start one: "
        f"podman system service --time=0 {host} &, or scripts/setup-host --podman)")


# --- limits -----------------------------------------------------------------------------


def test_the_service_limits_are_its_hard_limits() -> None:
    assert parse_limits(LIMITS_TEXT) == Limits(nofile=20000, nproc=32768)
    assert parse_limits(LIMITS_TEXT.replace("32768                32768",
                                            "unlimited            unlimited")) == \
        Limits(nofile=20000, nproc=1 << 20)
    assert parse_limits("Max open files 1 2 files\n") is None  # no process limit: unknown


def test_the_limits_come_from_the_process_behind_the_socket(tmp_path: Path) -> None:
    """SO_PEERCRED names the process that listens (here: this one); its /proc limits are read."""
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    accepted = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
    accepted.start()
    proc = tmp_path / "proc"
    (proc / str(os.getpid())).mkdir(parents=True)
    (proc / str(os.getpid()) / "limits").write_text(LIMITS_TEXT)
    try:
        assert service_limits(f"unix://{path}", proc) == Limits(nofile=20000, nproc=32768)
        accepted.join(5)  # it connected: the accept returns (closing first raced with it)
    finally:
        server.close()
    assert service_limits(f"unix://{tmp_path}/gone.sock", proc) == SAFE_LIMITS
    assert service_limits("tcp://127.0.0.1:2375", proc) == SAFE_LIMITS


# --- containers: the same hardening, plus limits and the user namespace -------------------


def test_a_container_gets_explicit_limits_and_the_same_hardening() -> None:
    client = FakeClient(PODMAN_PING)
    runtime = podman(client)
    container = runtime.start(spec())
    created = client.created[0]
    host = created["host_config"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 20000, "Hard": 20000},
                               {"Name": "nproc", "Soft": 32768, "Hard": 32768}]
    assert host["NetworkMode"] == "none" and not host.get("Privileged")
    assert host["CapDrop"] == ["NET_RAW"] and host["SecurityOpt"] == ["no-new-privileges"]
    mounts = [(m["Target"], m["ReadOnly"]) for m in host["Mounts"]]
    # the spec's mount, then the container's socket directory and the launcher, which holds
    # the dead man's switch (the container is removed once it ends)
    assert mounts[0] == ("/src", True) and len(mounts) == 3 and mounts[2][1] is True
    assert host["AutoRemove"] is True and "--lifeline" in created["command"]
    assert "UsernsMode" not in host  # rootful: the uid is the host's uid
    assert created["user"] == "1000:1000" and created["labels"][LABEL_RUN] == "unit"
    assert client.started == [container.id]
    runtime.close()
    assert client.removed == [container.id]


def test_rootless_podman_keeps_the_invoking_users_id() -> None:
    """Rootless, uid 1000 in a container is a subordinate id on the host unless keep-id
    maps it to the invoking user: the cache stays the user's own."""
    client = FakeClient(PODMAN_PING, rootless=True)
    runtime = podman(client)
    runtime.start(spec())
    runtime.start(ContainerSpec(image="img", role="probe"))  # the image's root: the user
    assert client.created[0]["host_config"]["UsernsMode"] == "keep-id"
    assert "UsernsMode" not in client.created[1]["host_config"]
    runtime.close()


def test_an_engines_fields_cannot_weaken_the_hardening() -> None:
    class Loose(PodmanRuntime):
        def host_config(self, spec: ContainerSpec) -> dict[str, Any]:
            return {"NetworkMode": "host", "Privileged": True, "Pids": 1}

    client = FakeClient(PODMAN_PING)
    runtime = Loose("unit", client, host="unix:///p.sock", limits=LIMITS)
    runtime.start(spec())
    host = client.created[0]["host_config"]
    assert host["NetworkMode"] == "none" and host["Privileged"] is False and host["Pids"] == 1
    runtime.close()


def test_docker_containers_get_no_podman_fields() -> None:
    client = FakeClient(DOCKER_PING)
    runtime = DockerRuntime("unit", client)
    runtime.start(spec())
    host = client.created[0]["host_config"]
    assert "Ulimits" not in host and "UsernsMode" not in host
    assert host["NetworkMode"] == "none" and not host.get("Privileged")
    runtime.close()


# --- images ---------------------------------------------------------------------------


def test_an_import_is_named_repository_colon_tag(tmp_path: Path) -> None:
    """Podman's compat import ignores `tag` (the image became debian:latest)."""
    client = FakeClient(PODMAN_PING)
    podman(client).import_image(tmp_path / "root.tar", "debian", "bookworm", ["LABEL a=1"])
    assert client.imports == [(str(tmp_path / "root.tar"),
                               {"repository": "debian:bookworm", "changes": ["LABEL a=1"]})]


def test_an_image_build_passes_the_limits_to_every_run_step(tmp_path: Path) -> None:
    (tmp_path / "builder-x.Dockerfile").write_text("FROM debian:bookworm\nRUN true\n")
    client = FakeClient(PODMAN_PING)
    client.build_lines = [json.dumps({"stream": "STEP 1/2: FROM debian:bookworm\n"}).encode(),
                          b"", json.dumps({"stream": "STEP 2/2: RUN true\n"}).encode()]
    logged: list[str] = []
    image = podman(client).build_image(tmp_path, "builder-x.Dockerfile", "pb:x",
                                       {"org.patchcheck": "1"}, logged.append)
    url, request = client.posts[0]
    assert url == "http+docker://localhost/v1.41/build"
    params = request["params"]
    assert json.loads(params["ulimits"]) == ["nofile=20000:20000", "nproc=32768:32768"]
    assert params["networkmode"] == "host" and params["t"] == "pb:x"
    assert json.loads(params["labels"]) == {"org.patchcheck": "1"}
    assert params["dockerfile"] == "builder-x.Dockerfile" and request["data"]  # the context
    assert logged == ["STEP 1/2: FROM debian:bookworm", "STEP 2/2: RUN true"]
    assert image == "sha256:pb:x"


def test_a_failing_image_build_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "builder-x.Dockerfile").write_text("FROM debian:bookworm\n")
    client = FakeClient(PODMAN_PING)
    client.build_lines = [json.dumps({"error": "building at STEP 2: exit status 1\n"}).encode()]
    with pytest.raises(InfraError, match=r"^image pb:x: building at STEP 2: exit status 1$"):
        podman(client).build_image(tmp_path, "builder-x.Dockerfile", "pb:x", {}, print)


# --- the setting, the registry, the containers.conf drop-in ---------------------------------


def test_the_registry_maps_names_to_runtimes() -> None:
    assert engines.names() == ["docker", "podman"]
    assert engines.engine("podman") is PodmanRuntime
    assert engines.engine("") is DockerRuntime
    with pytest.raises(UsageError, match="unknown container engine 'rkt'"):
        engines.engine("rkt")


def test_the_runtime_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert config.load({"patchcheck": {}}).runtime == "docker"
    chosen = config.load({"patchcheck": {"runtime": "podman", "runtime_host": "/run/p.sock"}})
    assert (chosen.runtime, chosen.runtime_host) == ("podman", "unix:///run/p.sock")
    with pytest.raises(ConfigError, match=r"runtime 'rkt' is not a known container engine "
                                          r"\(known: docker, podman\)"):
        config.load({"patchcheck": {"runtime": "rkt"}})
    with pytest.raises(ConfigError, match="runtime_host 'tcp://h:2375' is not a unix socket"):
        config.load({"patchcheck": {"runtime_host": "tcp://h:2375"}})


def test_the_containers_conf_dropin() -> None:
    text = podman_conf.dropin(Limits(nofile=20000, nproc=32768))
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in text
    assert 'runtime = "runc"' in text
    assert "default_ulimits" not in podman_conf.dropin(None)
