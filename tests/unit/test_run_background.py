"""The probe runs beside the matrix's cases (jobs.in_background), and a runtime that is
closing starts no container (an interrupted run's probe thread cannot leave one behind)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from patchcheck.docker_runtime import DockerRuntime
from patchcheck.errors import InfraError
from patchcheck.jobs import in_background
from patchcheck.runtime import ContainerSpec


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
