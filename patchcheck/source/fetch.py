"""`apt-get source qemu` inside a container of the suite: the only step with network=host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patchcheck.engine.runtime import ContainerSpec, Mount, Runtime, invoking_user
from patchcheck.errors import UsageError


def debian_fetcher(runtime: Runtime, image_for_suite: Callable[[str], str],
                   log: Callable[[str], None] = print) -> Callable[[str, str | None, Path], None]:
    def fetch(suite: str, version: str | None, outdir: Path) -> None:
        image = image_for_suite(suite)
        container = runtime.start(ContainerSpec(
            image=image, role="fetch", network="host", mounts=(Mount(str(outdir), "/out"),),
            workdir="/out",
        ))
        try:
            code, text = container.run(["apt-get", "update", "-q"], output=log)
            if code != 0:
                raise UsageError(f"apt-get update failed in a {suite} container: "
                                 f"{apt_reason(text)}")
            package = f"qemu={version}" if version else "qemu"
            log(f"apt-get source {package} ({suite})")
            code, text = container.run(["apt-get", "source", "-q", "--only-source", package],
                                       workdir="/out")
            if code != 0:
                raise UsageError(f"debian:{suite}" + (f"={version}" if version else "")
                                 + f": {apt_reason(text)}")
            container.run(["chown", "-R", invoking_user(), "/out"])
        finally:
            container.remove()
    return fetch


def apt_reason(text: str) -> str:
    """apt's reason in words: its `E:` lines (joined), else its last line of output."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln.removeprefix("E:").strip() for ln in lines if ln.startswith("E:")]
    return "; ".join(dict.fromkeys(errors)) or (lines or ["failed without output"])[-1]
