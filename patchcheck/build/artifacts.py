"""Builds carried between CI stages: the build stage exports them, matrix shards on other
runners import them and build nothing.

An artifact is one gzip'd tar: `manifest.json` (per build: its name, source spec, fix state,
scenario and record; per builder generation: the Dockerfile hash its image was made from)
and each build's binary under `builds/<key>/bin/`. Import checks everything before it
places anything: the manifest, each binary's sha256 against its record, and that this
host's builder image of each generation was made from the same Dockerfile (its label). Then
the builds go into `<cache>/builds/<key>/` with the record's paths and image id made local
(a build already there with the same binary is kept as it is: another shard on this host may
be running it), and a pins file of the importing run maps each (name, source, fix, scenario)
to its key. That run's pipeline (`Settings.imported`) takes a pinned build as it is,
resolving no source and compiling nothing; other runs never see the pins.

A missing, truncated or corrupt artifact, or a builder image that differs, is one line and
exit 3 (InfraError): never a silent rebuild that would hide the cost.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from patchcheck.build.record import BINARY, RECORD, BuildRecord, load_record, sha256_file
from patchcheck.config.settings import BuildSpec
from patchcheck.engine.images import LABEL_DOCKERFILE, builder_tag
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import InfraError
from patchcheck.locks import file_lock

MANIFEST = "manifest.json"
FORMAT = 1


def export_builds(records: Mapping[str, BuildRecord], specs: Mapping[str, BuildSpec],
                  scenario: str, runtime: Runtime, out: Path) -> dict[str, Any]:
    """Write the artifact; its manifest."""
    images: dict[str, str] = {}
    for record in records.values():
        labels = runtime.image_labels(builder_tag(record.generation)) or {}
        images[record.generation] = labels.get(LABEL_DOCKERFILE, "")
    manifest = {"format": FORMAT, "scenario": scenario, "images": images,
                "builds": {name: {"source": specs[name].source, "fix": specs[name].fix,
                                  "record": record.to_dict()}
                           for name, record in records.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for record in records.values():
            tar.add(record.binary, arcname=f"builds/{record.key}/bin/{BINARY}")
    tmp.replace(out)
    return manifest


def pins_path(cache_dir: Path, run_id: str) -> Path:
    """The pins of one importing run."""
    return cache_dir / "imported" / f"{run_id}.json"


def import_builds(path: Path, cache_dir: Path, runtime: Runtime, pins: Path,
                  log: Callable[[str], None] = print) -> dict[str, BuildRecord]:
    """Check the artifact, then place its builds and pin them in `pins`; the records by
    name."""
    where = f"build artifact {path}"
    if not path.is_file():
        raise InfraError(f"{where}: no such file (did the build stage's artifact arrive?)")
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_root(cache_dir)))
    try:
        manifest = _unpack(path, staging, where)
        ids = _images(manifest, runtime, where)
        records = {}
        for name, entry in manifest["builds"].items():
            record = BuildRecord.from_dict(entry["record"])
            binary = staging / "builds" / record.key / "bin" / BINARY
            if not binary.is_file() or sha256_file(binary) != record.binary_sha256:
                raise InfraError(f"{where}: the binary of {name} is missing or does not match "
                                 "its record's sha256")
            records[name] = record
        placed = {name: _place(record, staging, cache_dir, ids[record.generation])
                  for name, record in records.items()}
        _pin(pins, {name: {"source": e["source"], "fix": e["fix"],
                                "scenario": manifest.get("scenario", ""),
                                "key": placed[name].key}
                         for name, e in manifest["builds"].items()})
        for name, record in placed.items():
            log(f"[{name}] imported: QEMU {record.qemu_version}, fix {record.fix_state} "
                f"-> {record.binary}")
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pinned(pins_file: Path, cache_dir: Path, spec: BuildSpec, scenario: str
           ) -> BuildRecord | None:
    """The imported build pinned to this name, source, fix state and scenario, if any."""
    try:
        pins = json.loads(pins_file.read_text())
    except (OSError, ValueError):
        return None
    pin = pins.get(spec.name) if isinstance(pins, dict) else None
    if not isinstance(pin, dict) or (pin.get("source"), pin.get("fix"), pin.get("scenario")) \
            != (spec.source, spec.fix, scenario):
        return None
    record = load_record(_root(cache_dir) / str(pin.get("key")))
    if record is not None:
        record.name, record.cached = spec.name, True
    return record


def _root(cache_dir: Path) -> Path:
    root = cache_dir / "builds"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _unpack(path: Path, staging: Path, where: str) -> dict[str, Any]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            tar.extractall(staging, filter="data")  # no path leaves the staging directory
        manifest = json.loads((staging / MANIFEST).read_text())
    except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
        raise InfraError(f"{where}: unreadable ({type(exc).__name__}: {exc})".splitlines()[0]
                         ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            not isinstance(manifest.get("builds"), dict):
        raise InfraError(f"{where}: not a patchcheck build artifact (format {FORMAT})")
    return manifest


def _images(manifest: dict[str, Any], runtime: Runtime, where: str) -> dict[str, str]:
    """generation -> this host's builder image id, made from the same Dockerfile."""
    ids = {}
    for generation, digest in manifest.get("images", {}).items():
        tag = builder_tag(generation)
        labels = runtime.image_labels(tag)
        image_id = runtime.image_id(tag)
        if labels is None or image_id is None or labels.get(LABEL_DOCKERFILE) != digest:
            raise InfraError(f"{where}: this host's {tag} was not made from the Dockerfile the "
                             "builds were made with (run scripts/setup-host from the same "
                             "checkout)")
        ids[generation] = image_id
    return ids


def _place(record: BuildRecord, staging: Path, cache_dir: Path, image_id: str) -> BuildRecord:
    """Into <cache>/builds/<key>/ (atomically), with its paths and image id made local."""
    directory = _root(cache_dir) / record.key
    with file_lock(_root(cache_dir) / f"{record.key}.lock"):
        present = load_record(directory)
        if present is not None and present.binary_sha256 == record.binary_sha256:
            return present  # this very build: built or imported here before
        record.binary = str(directory / "bin" / BINARY)
        record.image_id = image_id
        record.cached = False
        work = staging / "builds" / record.key
        (work / RECORD).write_text(json.dumps({**record.to_dict(), "imported": True}, indent=2))
        shutil.rmtree(directory, ignore_errors=True)
        work.rename(directory)
    return record


def _pin(path: Path, pins: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    current.update(pins)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(current, indent=2))
    tmp.replace(path)
