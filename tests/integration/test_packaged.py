"""Packaged QEMUs as sweep sides, for real: Debian's `qemu-system-x86` of bookworm and trixie
installed from the machine's APT mirror into images of those suites (patchcheck.build.packaged),
what the images say they hold, and a version the mirror does not have."""

from __future__ import annotations

import pytest

from patchcheck.build.packaged import BINARY, packaged_side
from patchcheck.engine.images import Images
from patchcheck.engine.runtime import ContainerSpec, Runtime
from patchcheck.errors import UsageError
from patchcheck.result.cells import SweepSide


def _side(runtime: Runtime, settings, spec: str) -> SweepSide:
    images = Images(runtime, settings, log=lambda line: None)
    return packaged_side(runtime, images, spec, spec.rpartition(":")[2], log=lambda line: None)


def _ask(runtime: Runtime, image_id: str, argv: list[str]) -> str:
    container = runtime.start(ContainerSpec(image=image_id, role="probe", network="none"))
    try:
        code, text = container.run(argv)
    finally:
        container.remove()
    assert code == 0, text
    return text


@pytest.mark.parametrize(("suite", "series"), [("bookworm", "7.2."), ("trixie", "10.0.")])
def test_a_debian_package_is_a_side_whose_qemu_answers(runtime, settings, suite, series):
    side = _side(runtime, settings, f"debian-pkg:{suite}")
    assert side.qemu_version.startswith(series), side
    assert side.image == f"patchcheck-qemu-pkg:{suite}" and side.binary_in_image
    assert side.image_id == runtime.image_id(side.image)
    installed = _ask(runtime, side.image_id,
                     ["dpkg-query", "-W", "-f", "${Version}", "qemu-system-x86"])
    assert side.package_version == installed.strip() and side.package_version
    assert side.package_version in side.configuration
    machines = _ask(runtime, side.image_id, [BINARY, "-machine", "help"])
    assert "pc-q35-" + series.rstrip(".") in machines, machines
    assert "pc-q35-6.0" in machines
    _ask(runtime, side.image_id, ["python3", "-c", "pass"])  # the launcher's interpreter
    assert _side(runtime, settings, f"debian-pkg:{suite}") == side  # the image, reused


def test_a_version_the_mirror_lacks_is_one_line_of_usage_error(runtime, settings):
    spec = "debian-pkg:bookworm=0.0-nonexistent"
    with pytest.raises(UsageError) as caught:
        _side(runtime, settings, spec)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{spec}: "), message
    assert "E: Version '0.0-nonexistent' for 'qemu-system-x86' was not found" in message
    assert runtime.image_id("patchcheck-qemu-pkg:bookworm-0.0-nonexistent") is None
