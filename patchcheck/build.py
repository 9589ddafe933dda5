"""Prepared tree -> QEMU binary, built in a container, cached under a content key.

The key is (git tree id of the prepared tree, configure options, builder image id):
asking again for the same build does no work. Every build writes a JSON record with
what went in, how long it took, ccache statistics, the binary's path and a command
line that reproduces the build by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BuildFailed
from .locks import file_lock
from .runtime import ContainerSpec, Mount, invoking_user
from .trees import PreparedTree

BINARY = "qemu-system-x86_64"
FIRMWARE_DIRS = ("/usr/share/qemu", "/usr/share/seabios")
SRC, OUT, CCACHE = "/src", "/build", "/ccache"
RECORD = "build.json"


@dataclass
class BuildRecord:
    name: str
    key: str
    source: str
    commit: str
    tree_id: str
    qemu_version: str
    package_version: str | None
    fix: dict[str, Any]
    generation: str
    image: str
    image_id: str
    configure: list[str]
    seconds: float
    ccache: str
    binary: str
    binary_sha256: str
    reproduce: str
    machines: list[str] = field(default_factory=list)
    cached: bool = False

    @property
    def has_fix(self) -> bool:
        return bool(self.fix.get("has_fix"))

    @property
    def fix_state(self) -> str:
        return str(self.fix.get("state"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def build_key(tree_id: str, configure: Sequence[str], image_id: str) -> str:
    blob = json.dumps([tree_id, list(configure), image_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def supported_options(options: Sequence[str], help_text: str) -> list[str]:
    """Keep the configure options this tree's `configure --help` knows about."""
    kept = []
    for opt in options:
        name = opt.split("=", 1)[0]
        feature = re.match(r"--(?:enable|disable)-(.+)$", name)
        if name in help_text or (feature and re.search(rf"^\s+{re.escape(feature.group(1))}\s",
                                                     help_text, re.M)):
            kept.append(opt)
    return kept


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_record(directory: Path) -> BuildRecord | None:
    """A finished build, or None when the entry is missing, truncated or corrupt."""
    try:
        record = BuildRecord.from_dict(json.loads((directory / RECORD).read_text()))
        binary = Path(record.binary)
        if binary.is_file() and sha256_file(binary) == record.binary_sha256:
            return record
    except (OSError, ValueError, TypeError):
        pass
    return None


class Builder:
    def __init__(self, runtime: Any, cache_dir: Path, configure: Sequence[str], jobs: int = 0,
                 log: Callable[[str], None] = print) -> None:
        self.runtime = runtime
        self.root = cache_dir / "builds"
        self.ccache = cache_dir / "ccache"
        self.configure = list(configure)
        self.jobs = jobs or os.cpu_count() or 1
        self.log = log

    def build(self, name: str, tree: PreparedTree, generation: str, image: str,
              image_id: str) -> BuildRecord:
        key = build_key(tree.tree_id, self.configure, image_id)
        directory = self.root / key
        with file_lock(self.root / f"{key}.lock"):
            record = load_record(directory)
            if record is not None:
                record.cached = True
                record.name = name
                return record
            shutil.rmtree(directory, ignore_errors=True)
            return self._build(name, key, directory, tree, generation, image, image_id)

    def _build(self, name: str, key: str, directory: Path, tree: PreparedTree, generation: str,
               image: str, image_id: str) -> BuildRecord:
        work = self.root / f".{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        (work / "build").mkdir(parents=True)
        self.ccache.mkdir(parents=True, exist_ok=True)
        log_path = work / "build.log"
        env = {"CCACHE_DIR": CCACHE, "CC": "ccache gcc", "CXX": "ccache g++", "HOME": OUT,
               "CCACHE_BASEDIR": SRC}
        spec = ContainerSpec(
            image=image_id, role="build", network="none", user=invoking_user(), env=env,
            mounts=(Mount(str(tree.path), SRC, read_only=True),
                    Mount(str(work / "build"), OUT),
                    Mount(str(self.ccache), CCACHE)),
            workdir=OUT,
        )
        started = time.monotonic()
        container = self.runtime.start(spec)
        try:
            with open(log_path, "w") as logf:
                def out(line: str) -> None:
                    logf.write(line + "\n")
                    self.log(f"[{name}] {line}")

                code, help_text = container.run([f"{SRC}/configure", "--help"])
                options = supported_options(self.configure, help_text)
                configure = [f"{SRC}/configure", *options]
                steps = [configure, ["ninja", "-j", str(self.jobs), BINARY]]
                container.run(["ccache", "-z"])
                for argv in steps:
                    out("$ " + shlex.join(argv))
                    code, tail = container.run(argv, output=out, workdir=OUT)
                    if code != 0:
                        raise BuildFailed(f"build {name} failed at `{argv[0]}` (exit {code}); "
                                          f"log: {log_path}", str(log_path))
                _, stats = container.run(["ccache", "-s"])
        finally:
            container.remove()
        seconds = round(time.monotonic() - started, 1)
        (work / "bin").mkdir()
        shutil.copy2(work / "build" / BINARY, work / "bin" / BINARY)
        shutil.rmtree(work / "build", ignore_errors=True)
        binary = directory / "bin" / BINARY
        reproduce = shlex.join([
            "docker", "run", "--rm", "--network", "none", "-v", f"{tree.path}:{SRC}:ro",
            "-v", f"{directory}/rebuild:{OUT}", "-w", OUT, image, "sh", "-c",
            shlex.join(configure) + " && ninja " + BINARY,
        ])
        record = BuildRecord(
            name=name, key=key, source=tree.source.spec, commit=tree.source.commit,
            tree_id=tree.tree_id, qemu_version=tree.source.qemu_version,
            package_version=tree.source.package_version, fix=tree.fix.to_dict(),
            generation=generation, image=image, image_id=image_id, configure=configure,
            seconds=seconds, ccache=_ccache_summary(stats), binary=str(binary),
            binary_sha256=sha256_file(work / "bin" / BINARY), reproduce=reproduce,
        )
        record.machines = self.machine_types(record, work / "bin" / BINARY)
        record.binary = str(binary)
        (work / RECORD).write_text(json.dumps(record.to_dict(), indent=2))
        work.rename(directory)
        return record

    def machine_types(self, record: BuildRecord, binary: Path) -> list[str]:
        spec = ContainerSpec(image=record.image_id, role="probe", network="none",
                             user=invoking_user(),
                             mounts=(Mount(str(binary.parent), "/qemu", read_only=True),))
        container = self.runtime.start(spec)
        try:
            code, text = container.run([f"/qemu/{BINARY}", "-machine", "help"])
        finally:
            container.remove()
        if code != 0:
            raise BuildFailed(f"build {record.name}: `{BINARY} -machine help` failed: {text[-200:]}")
        return sorted({line.split()[0] for line in text.splitlines()
                       if line.startswith("pc-q35-")})


def _ccache_summary(stats: str) -> str:
    keep = [ln.strip() for ln in stats.splitlines()
            if re.match(r"\s*(Hits|Misses|cache hit|cache miss|Direct|Preprocessed)", ln, re.I)]
    return "; ".join(keep[:4])
