"""Container engines: `patchcheck.runtime` names one; each is a module whose `RUNTIME` is
its runtime.Runtime class, built as RUNTIME(run_id, host=...) (host "": its default).

Adding an engine is a new module and one line in REGISTRY. The module is
imported only when its engine is chosen (the docker SDK is not needed to plan a run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

from patchcheck.errors import UsageError

if TYPE_CHECKING:
    from patchcheck.engine.runtime import Runtime

REGISTRY = {
    "docker": "patchcheck.engine.docker",
    "podman": "patchcheck.engine.podman",
}
DEFAULT = "docker"


# What a task that starts runtimes of its own takes (bisect, bench.sequence): run id ->
# the configured engine, as container_runtime gives it (functools.partial(container_runtime,
# settings)).
RuntimeFactory = Callable[[str], AbstractContextManager["Runtime"]]


class EngineSettings(Protocol):
    """What choosing an engine takes from the configuration (config.settings.Settings)."""
    @property
    def runtime(self) -> str: ...
    @property
    def runtime_host(self) -> str: ...


class Engine(Protocol):
    def __call__(self, run_id: str, *, host: str = "") -> Runtime: ...


def names() -> list[str]:
    return sorted(REGISTRY)


def engine(name: str = "") -> Engine:
    """The runtime class of that engine ("": the default one)."""
    name = name or DEFAULT
    if name not in REGISTRY:
        raise UsageError(f"unknown container engine '{name}' (known: {', '.join(names())})")
    found: Engine = import_module(REGISTRY[name]).RUNTIME
    return found


def connect(settings: EngineSettings, run_id: str) -> Runtime:
    """A runtime of the configured engine for one run; InfraError when it does not answer."""
    return engine(settings.runtime)(run_id, host=settings.runtime_host)


@contextmanager
def container_runtime(settings: EngineSettings, run_id: str) -> Iterator[Runtime]:
    """The configured engine for the duration of a task; every container it started is
    removed at the end, by id."""
    runtime = connect(settings, run_id)
    try:
        yield runtime
    finally:
        runtime.close()
