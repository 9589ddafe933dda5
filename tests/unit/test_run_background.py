"""The probe runs beside the matrix's cases (jobs.in_background), the next builds are
prepared while one compiles (jobs.InOrder), and a runtime that is closing starts no
container (an interrupted run's probe thread cannot leave one behind)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from patchcheck.engine.docker import DockerRuntime
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.errors import InfraError
from patchcheck.jobs import InOrder, in_background


def test_background_work_runs_beside_the_caller_and_hands_over_its_result():
    go = threading.Event()
    result = in_background("t", lambda: (go.wait(5), 42)[1])
    go.set()  # the caller went on while it waited
    assert result() == 42


def test_background_work_hands_over_its_exception():
    def fails() -> None:
        raise InfraError("probe containers gone")

    with pytest.raises(InfraError, match="probe containers gone"):
        in_background("t", fails)()


def test_in_order_works_ahead_of_the_caller_one_key_after_the_other():
    started: list[str] = []
    compiling = threading.Event()

    def prepare(name: str) -> str:
        started.append(name)
        if name == "10.0":
            compiling.wait(5)  # the caller is busy with 7.2 meanwhile
        return f"prepared {name}"

    ahead = InOrder("t", ["7.2", "7.2-v2", "10.0"], prepare)
    assert ahead("7.2") == "prepared 7.2"
    compiling.set()
    assert ahead("10.0") == "prepared 10.0"
    assert ahead("7.2-v2") == "prepared 7.2-v2"  # asked late: kept
    assert started == ["7.2", "7.2-v2", "10.0"]  # each once, in order


def test_in_order_hands_each_key_its_own_exception_and_goes_on():
    def prepare(name: str) -> str:
        if name == "b":
            raise InfraError("apt-get source failed")
        return name

    ahead = InOrder("t", ["a", "b", "c"], prepare)
    with pytest.raises(InfraError, match="apt-get source"):
        ahead("b")
    assert ahead("c") == "c" and ahead("a") == "a"
    with pytest.raises(ValueError):
        ahead("not a key")


def test_in_order_runs_then_last_and_a_stopped_one_starts_no_further_key():
    done: list[str] = []
    ahead = InOrder("t", ["a", "b"], done.append, then=lambda: done.append("guest image"))
    ahead("b")
    deadline = time.monotonic() + 5
    while "guest image" not in done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == ["a", "b", "guest image"]

    release = threading.Event()
    later: list[str] = []

    def slow(name: str) -> None:
        later.append(name)
        release.wait(5)

    stopped = InOrder("t", ["a", "b"], slow, then=lambda: later.append("then"))
    while not later:
        time.sleep(0.01)
    stopped.stop()
    release.set()
    with pytest.raises(InterruptedError):
        stopped("b")
    assert later == ["a"]


class FakeClient:
    """The parts of docker.DockerClient that DockerRuntime uses to create and remove."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.removed: list[str] = []
        self.before_create: Any = None
        self.api = SimpleNamespace(
            base_url="http+docker://localhost", remove_container=self._remove,
            get=lambda url, timeout: SimpleNamespace(headers={"Api-Version": "1.41"},
                                                     raise_for_status=lambda: None),
            create_host_config=lambda **kwargs: dict(kwargs), create_container=self._create,
            start=lambda cid: None)

    def _create(self, *args: Any, **kwargs: Any) -> Any:
        if self.before_create:
            self.before_create()
        cid = f"c{len(self.created)}"
        self.created.append(cid)
        return {"Id": cid}

    def _remove(self, cid: str, force: bool = False) -> None:
        self.removed.append(cid)


def test_a_closed_runtime_starts_no_container_and_removes_one_created_meanwhile():
    client = FakeClient()
    runtime = DockerRuntime("unit", client=client)
    spec = ContainerSpec(image="img", role="qemu", network="none")
    runtime.start(spec)
    client.before_create = runtime.close  # close() runs while the next one is created
    with pytest.raises(InfraError, match="the run is ending"):
        runtime.start(spec)
    assert client.removed == ["c0", "c1"]  # the started one by close(), the late one at once
    with pytest.raises(InfraError, match="the run is ending"):
        runtime.start(spec)
    assert client.created == ["c0", "c1"]  # nothing created after close
