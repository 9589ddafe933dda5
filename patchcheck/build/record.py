"""A build's record (build.json beside its binary): what was built, from which tree, fix,
image and options, and how; read back only when the binary it names is intact."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BINARY = "qemu-system-x86_64"
RECORD = "build.json"
# Fields added after records were first written, and what a record without them means: every
# build before them was made the way a trusted build is made now.
ADDED_LATER = ("trusted", "trust")


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
    ccache: str  # ccache's statistics of a full build; "" for an incremental one (ninja only)
    binary: str
    binary_sha256: str
    reproduce: str
    machines: list[str] = field(default_factory=list)
    cached: bool = False
    family: str = ""  # same commit, options and image: builds that can share a build directory
    lineage: str = ""  # same options and image, any commit: bases across commits
    incremental_from: str = ""  # key of the build whose directory this one was built from
    base: str = ""  # that build, for a person: "name commit (key)"
    base_commit: str = ""  # that build's commit
    compiled: list[str] = field(default_factory=list)  # incremental: what ninja recompiled
    # The device configuration actually used: "minimal", "default", or "default (configure
    # lacks ...)" when a minimal build was asked for and the tree cannot do it.
    devices: str = ""
    # Minimal build: the optimisation rules the compiler wrapper applied (PATTERN:FLAGS,
    # first match on the object's path wins); empty: QEMU's own flags everywhere.
    optimize: list[str] = field(default_factory=list)
    # Minimal build: the header precompiled per set of compiler flags (e.g. qemu/osdep.h);
    # empty: none.
    pch: str = ""
    # Subprojects copied into the tree before configure: name, path, revision, and where
    # they came from (fetched from a URL, or vendored in an imported tree).
    subprojects: list[dict[str, str]] = field(default_factory=list)
    # Untrusted (patchcheck.build.trust): built with the compiler cache read-only in a
    # sandbox, under a key of its own, its build directory never a base of another build.
    trusted: bool = True
    trust: str = ""  # why, in words ("untrusted: a patch not shipped with patchcheck (x)")

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
        """The record `to_dict` wrote (fields it does not know are ignored). Every version
        writes every field (but those ADDED_LATER): a record without one is damaged
        (ValueError)."""
        missing = cls.missing_fields(data)
        if missing:
            raise ValueError(f"build record {data.get('key', '')!r} is damaged: no "
                             + ", ".join(missing))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def missing_fields(cls, data: Mapping[str, Any]) -> list[str]:
        return [f for f in cls.__dataclass_fields__ if f not in data and f not in ADDED_LATER]


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
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return None
