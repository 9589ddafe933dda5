"""`-dump-vmstate` of each build, and a comparison in the spirit of QEMU's
scripts/vmstate-static-checker.py.

`qemu-system-x86_64 -machine M -dump-vmstate FILE` writes, as JSON, the migration stream
description of every device class and the machine's sections (name, version_id,
minimum_version_id, fields with sizes, subsections), then exits. The dump runs in the
build's own builder container, like every QEMU of patchcheck.

`diff()` reports every section and field that differs between a without-fix and a
with-fix dump and, like the static checker, which migration direction each difference
would break (a section, field or subsection the destination does not know; a source
version the destination does not accept; a field whose size differs).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchcheck.build.record import BuildRecord
from patchcheck.engine.runtime import Container
from patchcheck.errors import InfraError
from patchcheck.qemu.machine import FIRMWARE_DIRS

FORWARD = "without->with"  # a without-fix source migrating to a with-fix destination
BACKWARD = "with->without"


class VmstateError(InfraError):
    """QEMU did not write a usable vmstate dump."""


def dump_argv(record: BuildRecord, args: Sequence[str], path: Path) -> list[str]:
    firmware = [a for d in FIRMWARE_DIRS for a in ("-L", d)]
    plain = [a for a in args if a != "-S"]
    return [record.binary, *firmware, "-display", "none", *plain, "-dump-vmstate", str(path)]


DUMP_TIMEOUT = 120.0  # seconds: a dump takes well under one


def dump(container: Container, record: BuildRecord, args: Sequence[str], path: Path) -> dict[str, Any]:
    """Run -dump-vmstate in the build's container (started by its launcher, as every QEMU:
    the kernel takes it, not the launcher, when the container runs out of memory, and says
    so); return the parsed dump."""
    path.unlink(missing_ok=True)
    log = path.with_suffix(".log")
    proc = container.spawn(dump_argv(record, args, path), log=str(log),
                           pidfile=str(path.with_suffix(".pid")))
    code = proc.wait(DUMP_TIMEOUT)
    if code is None:
        proc.kill()
        proc.wait(5.0)
    if code != 0 or not path.is_file():
        output = log.read_text(errors="replace") if log.is_file() else ""
        why = proc.reason or output.strip()[-300:]
        ended = f"exit {code}" if code is not None else f"no end within {DUMP_TIMEOUT:g} s"
        raise VmstateError(f"{record.name}: -dump-vmstate failed ({ended}): {why}")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise VmstateError(f"{record.name}: -dump-vmstate wrote no valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise VmstateError(f"{record.name}: -dump-vmstate wrote {type(data).__name__}, not an object")
    return data


def keep(path: Path, directory: Path, name: str) -> str:
    """Store a dump gzip-compressed under `directory`; return the stored path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.json.gz"
    with open(path, "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(target)


def digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class VmstateDiff:
    path: str
    kind: str  # section-/field-/subsection-added|removed, version, changed
    without: Any
    with_fix: Any
    breaks: tuple[str, ...] = ()  # FORWARD and/or BACKWARD

    def __str__(self) -> str:
        arrow = f": {self.without!r} -> {self.with_fix!r}" if self.kind in ("changed", "version") \
            else ""
        breaks = f" (breaks {', '.join(self.breaks)})" if self.breaks else ""
        return f"{self.kind} {self.path}{arrow}{breaks}"


@dataclass
class VmstateComparison:
    machine: str
    without: str
    with_fix: str
    identical: bool = False
    sections: int = 0
    without_sha256: str = ""
    with_sha256: str = ""
    differences: list[VmstateDiff] = field(default_factory=list)
    dumps: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    @property
    def incompatible(self) -> list[VmstateDiff]:
        return [d for d in self.differences if d.breaks]

    @property
    def sections_differing(self) -> list[str]:
        return sorted({d.path.split("/", 1)[0] for d in self.differences})


def diff(without: dict[str, Any], with_fix: dict[str, Any]) -> list[VmstateDiff]:
    """Every difference between two dumps, with the migration directions it breaks."""
    out: list[VmstateDiff] = []
    for name in sorted(set(without) | set(with_fix)):
        a, b = without.get(name), with_fix.get(name)
        if a is None:
            out.append(VmstateDiff(name, "section-added", None, _brief(b), (BACKWARD,)))
        elif b is None:
            out.append(VmstateDiff(name, "section-removed", _brief(a), None, (FORWARD,)))
        elif isinstance(a, dict) and isinstance(b, dict):
            _versions(name, a, b, out)
            _other_keys(name, a, b, out, skip=("version_id", "minimum_version_id", "Description"))
            if "Description" in a or "Description" in b:
                _description(f"{name}/Description", a.get("Description") or {},
                             b.get("Description") or {}, out)
        elif a != b:
            out.append(VmstateDiff(name, "changed", a, b))
    return out


def _brief(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: value[k] for k in ("Name", "name", "version_id", "size", "field") if k in value}
    return value


def _versions(path: str, a: dict[str, Any], b: dict[str, Any], out: list[VmstateDiff]) -> None:
    va, vb = a.get("version_id"), b.get("version_id")
    ma, mb = a.get("minimum_version_id"), b.get("minimum_version_id")
    if (va, ma) == (vb, mb):
        return
    breaks = []
    if isinstance(va, int) and isinstance(vb, int):
        if va > vb or (isinstance(mb, int) and va < mb):
            breaks.append(FORWARD)
        if vb > va or (isinstance(ma, int) and vb < ma):
            breaks.append(BACKWARD)
    out.append(VmstateDiff(f"{path}/version", "version", [va, ma], [vb, mb], tuple(breaks)))


def _other_keys(path: str, a: dict[str, Any], b: dict[str, Any], out: list[VmstateDiff],
                skip: Sequence[str]) -> None:
    for key in sorted((set(a) | set(b)) - set(skip)):
        if a.get(key) != b.get(key):
            out.append(VmstateDiff(f"{path}/{key}", "changed", a.get(key), b.get(key)))


def _keyed(items: Sequence[Any], key: str) -> dict[str, Any]:
    """Entries by name; repeated names get #2, #3 (PCIDevice has two `config` fields)."""
    seen: dict[str, int] = {}
    out: dict[str, Any] = {}
    for item in items or []:
        name = str(item.get(key, "?")) if isinstance(item, dict) else str(item)
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name}#{seen[name]}"] = item
    return out


def _description(path: str, a: dict[str, Any], b: dict[str, Any], out: list[VmstateDiff]) -> None:
    _versions(path, a, b, out)
    _other_keys(path, a, b, out, skip=("version_id", "minimum_version_id", "Fields",
                                       "Subsections"))
    fa, fb = _keyed(a.get("Fields") or [], "field"), _keyed(b.get("Fields") or [], "field")
    order_a, order_b = [k for k in fa if k in fb], [k for k in fb if k in fa]
    if order_a != order_b:
        out.append(VmstateDiff(f"{path}/Fields", "changed", list(fa), list(fb),
                               (FORWARD, BACKWARD)))
    for name in list(fa) + [k for k in fb if k not in fa]:
        where = f"{path}/Fields[{name}]"
        if name not in fb:
            out.append(VmstateDiff(where, "field-removed", _brief(fa[name]), None,
                                   (FORWARD, BACKWARD)))
        elif name not in fa:
            out.append(VmstateDiff(where, "field-added", None, _brief(fb[name]),
                                   (FORWARD, BACKWARD)))
        else:
            _field(where, fa[name], fb[name], out)
    sa, sb = _keyed(a.get("Subsections") or [], "name"), _keyed(b.get("Subsections") or [], "name")
    for name in sorted(set(sa) | set(sb)):
        where = f"{path}/Subsections[{name}]"
        if name not in sb:
            out.append(VmstateDiff(where, "subsection-removed", _brief(sa[name]), None, (FORWARD,)))
        elif name not in sa:
            out.append(VmstateDiff(where, "subsection-added", None, _brief(sb[name]), (BACKWARD,)))
        else:
            _description(where, sa[name], sb[name], out)


def _field(path: str, a: dict[str, Any], b: dict[str, Any], out: list[VmstateDiff]) -> None:
    for key in sorted((set(a) | set(b)) - {"Description", "field"}):
        if a.get(key) != b.get(key):
            breaks = (FORWARD, BACKWARD) if key in ("size", "version_id", "field_exists") else ()
            out.append(VmstateDiff(f"{path}/{key}", "changed", a.get(key), b.get(key), breaks))
    if "Description" in a or "Description" in b:
        _description(f"{path}/Description", a.get("Description") or {},
                     b.get("Description") or {}, out)
