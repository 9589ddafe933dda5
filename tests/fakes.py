"""The fakes unit tests share: a container runtime that implements patchcheck.runtime.Runtime
without an engine. A test says what a command in a container does by overriding `respond`
(spec, argv) -> (exit code, output); the runtime records every container, command, build,
import and removal for the test to assert on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from patchcheck.runtime import ContainerSpec, OwnContainer, Process


class FakeContainer:
    def __init__(self, runtime: FakeRuntime, spec: ContainerSpec) -> None:
        self.runtime, self.spec = runtime, spec
        self.id = f"fake-{len(runtime.specs)}"

    def run(self, argv: Sequence[str], *, output: Callable[[str], None] | None = None,
            workdir: str | None = None, env: Mapping[str, str] | None = None,
            user: str | None = None) -> tuple[int, str]:
        self.runtime.commands.append(list(argv))
        code, text = self.runtime.respond(self.spec, list(argv))
        if output is not None:
            for line in text.splitlines():
                output(line)
        return code, text

    def spawn(self, argv: Sequence[str], *, log: str, pidfile: str) -> Process:
        raise NotImplementedError("the fake runtime starts no background processes")

    def remove(self) -> None:
        self.runtime.removed.append(self.id)


class FakeRuntime:
    """A Runtime (patchcheck.runtime) without an engine."""

    cli = "docker"

    def __init__(self, run_id: str = "fake") -> None:
        self.run_id = run_id
        self.specs: list[ContainerSpec] = []
        self.commands: list[list[str]] = []
        self.removed: list[str] = []
        self.images: dict[str, dict[str, str]] = {}  # ref -> labels
        self.imported: list[tuple[Path, str, str]] = []
        self.closed = False

    def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
        """What a command in a container prints and returns (default: nothing, success)."""
        return 0, ""

    def image_labels(self, ref: str) -> dict[str, str] | None:
        return self.images.get(ref)

    def image_id(self, ref: str) -> str | None:
        return f"sha256:{ref}" if ref in self.images else None

    def build_image(self, context: Path, dockerfile: str, tag: str,
                    labels: Mapping[str, str], log: Callable[[str], None]) -> str:
        self.images[tag] = dict(labels)
        return f"sha256:{tag}"

    def pull_image(self, repository: str, tag: str) -> bool:
        return False

    def import_image(self, tarball: Path, repository: str, tag: str,
                     changes: Sequence[str]) -> None:
        self.imported.append((tarball, repository, tag))
        self.images[f"{repository}:{tag}"] = {}

    def start(self, spec: ContainerSpec) -> FakeContainer:
        self.specs.append(spec)
        return FakeContainer(self, spec)

    def own_containers(self) -> list[OwnContainer]:
        return []

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def close(self) -> None:
        self.closed = True
