"""Builds carried between CI stages (patchcheck.build.artifacts), on a fake runtime: export, import
into another cache, the pipeline taking the pinned build, and every way an artifact is bad."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import pytest

from patchcheck.build import artifacts
from patchcheck.build.record import BINARY, BuildRecord, sha256_file
from patchcheck.config.settings import BuildSpec
from patchcheck.engine.images import BUILDER_REPO, LABEL_DOCKERFILE
from patchcheck.errors import InfraError

from ..fakes import FakeRuntime, build_record

SPEC = BuildSpec("master-none", "git:/srv/qemu@master", "none")


def _built(cache: Path, key: str = "k1") -> BuildRecord:
    binary = cache / "builds" / key / "bin" / BINARY
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"\x7fELF a qemu binary")
    record = dataclasses.replace(build_record("master-none"), key=key, binary=str(binary),
                                 binary_sha256=sha256_file(binary), generation="trixie",
                                 image_id="sha256:builder-there")
    (binary.parent.parent / "build.json").write_text(json.dumps(record.to_dict()))
    return record


def _runtime(digest: str = "d1") -> FakeRuntime:
    runtime = FakeRuntime()
    runtime.images[f"{BUILDER_REPO}:trixie"] = {LABEL_DOCKERFILE: digest}
    return runtime


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    record = _built(tmp_path / "there")
    out = tmp_path / "builds.tar.gz"
    manifest = artifacts.export_builds({SPEC.name: record}, {SPEC.name: SPEC}, "pds",
                                       _runtime(), out)
    assert manifest["images"] == {"trixie": "d1"} and list(manifest["builds"]) == [SPEC.name]
    return out


def test_an_imported_build_is_taken_as_it_is(artifact: Path, tmp_path: Path) -> None:
    here = tmp_path / "here"
    pins = artifacts.pins_path(here, "shard-1")
    logs: list[str] = []
    placed = artifacts.import_builds(artifact, here, _runtime(), pins, logs.append)
    record = placed[SPEC.name]
    assert Path(record.binary) == here / "builds" / "k1" / "bin" / BINARY
    assert Path(record.binary).read_bytes() == b"\x7fELF a qemu binary"
    assert record.image_id == f"sha256:{BUILDER_REPO}:trixie"  # this host's builder image
    assert logs and "imported" in logs[0]
    pinned = artifacts.pinned(pins, here, SPEC, "pds")
    assert pinned is not None and pinned.binary == record.binary and pinned.cached
    # another source, fix state or scenario is not this build; nor is another run's
    assert artifacts.pinned(pins, here, dataclasses.replace(SPEC, fix="v2"), "pds") is None
    assert artifacts.pinned(pins, here, SPEC, "aer") is None
    assert artifacts.pinned(artifacts.pins_path(here, "other"), here, SPEC, "pds") is None
    # a second import on this host (another shard) keeps the build in place
    first = Path(record.binary).stat().st_ino
    again = artifacts.import_builds(artifact, here, _runtime(), artifacts.pins_path(here, "s2"))
    assert Path(again[SPEC.name].binary).stat().st_ino == first
    assert not list((here / "builds").glob(".import-*"))  # the staging directory is gone


def test_the_pipeline_builds_nothing_that_was_imported(artifact: Path, tmp_path: Path) -> None:
    from patchcheck.build.pipeline import Pipeline
    from patchcheck.config import settings as config

    here = tmp_path / "here"
    pins = artifacts.pins_path(here, "shard-1")
    artifacts.import_builds(artifact, here, _runtime(), pins)
    settings = dataclasses.replace(config.load({"patchcheck": {"cache_dir": str(here)}}),
                                   imported=pins)
    runtime = _runtime()
    record = Pipeline(runtime, settings, log=lambda line: None).build(SPEC)
    assert record.key == "k1" and record.cached
    assert runtime.specs == [] and runtime.commands == []  # no container: nothing built


def _rewrite(path: Path, change: dict[str, bytes | None]) -> None:
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "no such file"),
    ("truncated", "unreadable"),
    ("not gzip", "unreadable"),
    ("binary changed", "does not match its record's sha256"),
    ("binary missing", "is missing or does not match"),
    ("manifest missing", "unreadable"),
    ("other format", "not a patchcheck build artifact"),
    ("other Dockerfile", "was not made from the Dockerfile"),
])
def test_a_bad_artifact_is_one_line_and_nothing_is_placed(artifact: Path, tmp_path: Path,
                                                          damage: str, message: str) -> None:
    binary = f"builds/k1/bin/{BINARY}"
    runtime = _runtime()
    if damage == "missing":
        artifact.unlink()
    elif damage == "truncated":
        artifact.write_bytes(artifact.read_bytes()[:40])
    elif damage == "not gzip":
        artifact.write_bytes(b"PK\x03\x04 a zip, say")
    elif damage == "binary changed":
        _rewrite(artifact, {binary: b"\x7fELF another binary"})
    elif damage == "binary missing":
        _rewrite(artifact, {binary: None})
    elif damage == "manifest missing":
        _rewrite(artifact, {artifacts.MANIFEST: None})
    elif damage == "other format":
        _rewrite(artifact, {artifacts.MANIFEST: json.dumps({"format": 99}).encode()})
    elif damage == "other Dockerfile":
        runtime = _runtime("d2")
    here = tmp_path / "here"
    pins = artifacts.pins_path(here, "shard-1")
    with pytest.raises(InfraError, match=message) as info:
        artifacts.import_builds(artifact, here, runtime, pins)
    assert "\n" not in str(info.value) and str(artifact) in str(info.value)
    assert artifacts.pinned(pins, here, SPEC, "pds") is None
    assert not (here / "builds" / "k1").exists()
