"""Issue 2 against the real engine: images, Debian sources, fixes, builds, the build cache."""

from __future__ import annotations

import json
from pathlib import Path

from patchcheck.build.record import RECORD, sha256_file
from patchcheck.config.settings import BuildSpec
from patchcheck.engine import images

from .conftest import PROJECT, invoke


def test_bookworm_builds_without_and_with_v2(builds):
    none, v2 = builds["7.2-none"], builds["7.2-v2"]
    for record in (none, v2):
        assert record.qemu_version.startswith("7.2.")
        assert record.package_version and record.package_version.startswith("1:7.2+dfsg")
        assert "pc-q35-6.0" in record.machines and "pc-q35-7.2" in record.machines
        assert Path(record.binary).is_file()
        assert record.generation == "bookworm"
        saved = json.loads((Path(record.binary).parent.parent / RECORD).read_text())
        for key in ("source", "commit", "qemu_version", "fix", "image_id", "configure", "seconds",
                    "binary", "reproduce"):
            assert saved[key] not in (None, ""), key
        if saved["incremental_from"]:  # ninja in a copy of a built directory: no compiler cache
            assert saved["ccache"] == "" and saved["compiled"], saved
        else:  # a full build compiles through ccache and records its statistics
            assert "miss" in saved["ccache"].lower() or "hit" in saved["ccache"].lower(), saved
        assert "--target-list=x86_64-softmmu" in saved["configure"]
        assert saved["reproduce"].startswith("docker run --rm --network none")
    assert none.fix["applied"] == "unchanged" and not none.has_fix
    assert v2.fix["applied"] == "clean" and v2.has_fix
    assert none.commit == v2.commit  # the same Debian import, two fix states
    assert none.tree_id != v2.tree_id
    assert sha256_file(Path(none.binary)) != sha256_file(Path(v2.binary))


def test_same_build_again_does_no_work(builds, pipeline, settings):
    first = builds["7.2-v2"]
    entry = Path(first.binary).parent.parent
    before = {p: p.stat().st_mtime_ns for p in (Path(first.binary), entry / RECORD)}
    again = pipeline.build(settings.builds["7.2-v2"])
    assert again.cached
    assert again.binary == first.binary and again.key == first.key
    # nothing compiled or written again: the binary and its record are the first build's
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_trixie_tree_already_carries_v2(builds):
    shipped, reverted = builds["10.0-v2"], builds["10.0-none"]
    assert shipped.qemu_version.startswith("10.0.")
    assert shipped.generation == "trixie"
    assert shipped.fix["applied"] == "already-present" and shipped.has_fix
    assert reverted.fix["applied"] == "reverted" and reverted.fix["patch"] == "v2"
    assert not reverted.has_fix
    for record in (shipped, reverted):
        assert {"pc-q35-6.0", "pc-q35-10.0", "pc-q35-4.0.1"} <= set(record.machines)
    assert sha256_file(Path(shipped.binary)) != sha256_file(Path(reverted.binary))


def test_builder_images_labelled_with_dockerfile_hash(runtime, settings, builds):
    builds["7.2-none"]  # makes sure the images exist
    for generation in ("bookworm", "trixie"):
        labels = runtime.image_labels(f"{images.BUILDER_REPO}:{generation}")
        digest = images.dockerfile_hash(images.dockerfile(settings.containers_dir, generation))
        assert labels is not None and labels[images.LABEL_DOCKERFILE] == digest
    rerun = invoke("images")
    assert rerun.returncode == 0, rerun.stderr
    assert "building image" not in rerun.stderr  # unchanged Dockerfiles: nothing rebuilt


def test_cli_build_prints_the_binary(builds):
    builds["7.2-v1"]
    result = invoke("build", "--source", "debian:bookworm", "--fix", "v1")
    assert result.returncode == 0, result.stderr
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file() and binary == Path(builds["7.2-v1"].binary)
    assert "cached" in result.stderr


def test_user_patch_file_builds_like_v2(builds, pipeline, tmp_path):
    """A user's patch file is applied with git and recorded; same content -> same tree as v2."""
    patch = tmp_path / "my-fix.patch"
    patch.write_text((PROJECT / "patchcheck" / "scenarios" / "pds" / "patches" / "v2.patch").read_text())
    record = pipeline.build(BuildSpec("mine", "debian:bookworm", str(patch)))
    assert record.fix["applied"] == "clean" and record.fix["patch"] == "my-fix.patch"
    assert record.tree_id == builds["7.2-v2"].tree_id


def test_incremental_fix_build_really_contains_the_fix(builds, pipeline, runtime, settings,
                                                       tmp_path):
    """A with-fix build made from the without-fix build directory recompiles pcie.c (not
    fooled by ninja's timestamps) and migrates like the fix: none -> it passes on 6.0."""
    import tempfile

    from patchcheck.engine.runtime import Mount
    from patchcheck.qemu.hosts import Hosts
    from patchcheck.result.model import Case
    from patchcheck.result.outcome import Observed
    from patchcheck.run.migrate import run_cases
    from patchcheck.scenarios.registry import get

    none = builds["7.2-none"]
    text = (PROJECT / "patchcheck" / "scenarios" / "pds" / "patches" / "v2.patch").read_text()
    patch = tmp_path / "v2-reworded.patch"
    patch.write_text(text.replace("Avoid migration abortion when this device hot-removed by guest",
                                  "Do not compare PDS on load (incremental build test)"))
    record = pipeline.build(BuildSpec("v2-reworded", "debian:bookworm", str(patch)))
    if not record.cached:
        assert record.incremental_from, "expected a build from the without-fix directory"
        assert any("hw_pci_pcie.c.o" in obj for obj in record.compiled), record.compiled
        # configured as the build it came from: its configure line, devices and machine types
        assert (record.configure, record.devices, record.machines) == (
            none.configure, none.devices, none.machines)
    assert record.binary_sha256 != none.binary_sha256
    scratch = Path(tempfile.mkdtemp(prefix="pc-"))
    builds_dir = str(settings.cache_dir / "builds")
    hosts = Hosts(runtime, (Mount(str(scratch), str(scratch)), Mount(builds_dir, builds_dir, True)))
    try:
        [result] = run_cases([Case("pc-q35-6.0", "7.2-none", "v2-reworded", "synthetic")],
                             {"7.2-none": none, "v2-reworded": record}, hosts, get("pds"),
                             scratch, lambda _: tmp_path / "logs")
    finally:
        hosts.close()
    assert result.observed == Observed.PASSED, result.message
