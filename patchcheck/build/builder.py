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

from patchcheck.build.configure import (
    DEFAULT,
    DEVICES,
    MINIMAL,
    OUT,
    device_configuration,
    devices_mak,
    supported_options,
)
from patchcheck.build.incremental import (
    PCH_DIR,
    IncrementalUnsafe,
    age_sources,
    build_system_changes,
    changed_files,
    check_incremental_plan,
    choose_base,
    copy_build_dir,
    drop_stale_pch,
    in_repository,
)
from patchcheck.engine.runtime import ContainerSpec, Mount, Runtime, invoking_user, run_command
from patchcheck.errors import BuildFailed
from patchcheck.locks import file_lock
from patchcheck.tree.prepare import PreparedTree

BINARY = "qemu-system-x86_64"
SRC, CCACHE = "/src", "/ccache"  # the tree and the compiler cache in the container; OUT: the build
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
        record = cls(**{k: v for k, v in data.items() if k in known})
        if not record.devices and record.configure:  # recorded before the field existed
            record.devices = MINIMAL if "--without-default-devices" in record.configure \
                else DEFAULT
        if record.base and not record.base_commit:  # recorded before the field existed
            record.base_commit = record.base.split()[1]
        return record


def build_key(tree_id: str, configure: Sequence[str], image_id: str) -> str:
    blob = json.dumps([tree_id, list(configure), image_id])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def family_key(commit: str, configure: Sequence[str], image_id: str) -> str:
    return build_key(f"commit:{commit}", configure, image_id)


def lineage_key(configure: Sequence[str], image_id: str) -> str:
    return build_key("lineage", configure, image_id)


# The compiler wrapper of minimal builds: CC in the build container, mounted read-only. It
# appends the flags of the first rule matching the object file's path and runs the real
# compiler; the default rules (invoke.yaml, build.minimal_optimize) compile the target
# library (libqemu-<target>: TCG, the target CPU, memory, RAM migration: what runs the
# guest) at -O1 and the rest of QEMU, which runs little, at -O0: nearly the compile time of
# -O0 everywhere, the run time of -O1 (see README, "Minimal build"). With build.minimal_pch
# it also precompiles that header (qemu/osdep.h: glib and the C library, most of a small
# file's compile time) once per set of compiler flags, in the build directory; GCC uses it
# where it is valid and reads the header itself elsewhere. Same binary, byte for byte.
CC_WRAPPER = Path(__file__).with_name("cc-minimal")
CC_IN_CONTAINER = "/patchcheck/cc"


def wrapper_env(rules: Sequence[str], compiler: str, pch: str = "") -> dict[str, str]:
    """The build container's environment for the compiler wrapper."""
    env = {"CC": CC_IN_CONTAINER, "PATCHCHECK_CC": compiler,
           "PATCHCHECK_OPTIMIZE": "\n".join(rules)}
    if pch:
        env.update(PATCHCHECK_PCH=pch, PATCHCHECK_PCH_FILE=f"{SRC}/include/{pch}",
                   PATCHCHECK_PCH_DIR=f"{OUT}/{PCH_DIR}")
    return env


# ccache's depend mode: a miss runs the compiler once (with the -MD that meson passes anyway)
# instead of the preprocessor and then the compiler; a cold build pays almost nothing for
# the cache. Hits are as before (direct mode, from the dependency list).
CCACHE_MODE = {"CCACHE_DEPEND": "1"}

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


class Builder:
    def __init__(self, runtime: Runtime, cache_dir: Path, configure: Sequence[str], jobs: int = 0,
                 log: Callable[[str], None] = print, incremental: bool = True,
                 devices: Sequence[str] = (), minimal_configure: Sequence[str] = (),
                 minimal_optimize: Sequence[str] = (), minimal_pch: str = "") -> None:
        """`configure`: the options of every build. `devices` non-empty: a minimal build,
        --without-default-devices with this Kconfig list, plus the options `minimal_configure`
        (further trimming that only makes sense with it) and the compiler wrapper's
        optimisation rules `minimal_optimize` and its precompiled header `minimal_pch`; empty:
        QEMU's default device set and `configure` alone (the `minimal_*` are ignored)."""
        self.runtime = runtime
        self.root = cache_dir / "builds"
        self.ccache = cache_dir / "ccache"
        self.devices = list(devices)
        self.configure = [*configure, *(minimal_configure if self.devices else ())]
        self.optimize = list(minimal_optimize) if self.devices else []
        self.pch = minimal_pch if self.devices else ""
        wrapper = [f"cc-minimal:{sha256_file(CC_WRAPPER)}"] if self.optimize or self.pch else []
        self._keyed = [*self.configure, *(f"device:{d}" for d in self.devices),
                       *(f"optimize:{rule}" for rule in self.optimize),
                       *([f"pch:{self.pch}"] if self.pch else []), *wrapper]
        self.jobs = jobs or os.cpu_count() or 1
        self.log = log
        self.incremental = incremental
        self.keep_build_dir = incremental  # full builds keep their directory for later fix builds

    def build(self, name: str, tree: PreparedTree, generation: str, image: str,
              image_id: str) -> BuildRecord:
        key = build_key(tree.tree_id, self._keyed, image_id)
        directory = self.root / key
        with file_lock(self.root / f"{key}.lock"):
            record = self._cached(name, tree, directory)
            if record is not None:
                return record
            shutil.rmtree(directory, ignore_errors=True)
            family = family_key(tree.source.commit, self._keyed, image_id)
            lineage = lineage_key(self._keyed, image_id)
            base = self.incremental_base(family, lineage, tree) if self.incremental else None
            if base is not None:
                try:
                    return self._build(name, key, directory, tree, generation, image, image_id,
                                       (family, lineage), base)
                except IncrementalUnsafe as exc:
                    self.log(f"[{name}] incremental build not trusted ({exc}); building afresh")
            return self._build(name, key, directory, tree, generation, image, image_id,
                               (family, lineage))

    def cached(self, name: str, tree: PreparedTree, image_id: str) -> BuildRecord | None:
        """The build of this tree if it is in the cache, else None (nothing is built)."""
        key = build_key(tree.tree_id, self._keyed, image_id)
        with file_lock(self.root / f"{key}.lock"):
            return self._cached(name, tree, self.root / key)

    @staticmethod
    def _cached(name: str, tree: PreparedTree, directory: Path) -> BuildRecord | None:
        record = load_record(directory)
        if record is not None:
            record.cached = True
            # the same tree may come from another request: another fix state, or another
            # source (a git clone of a Debian import, say) with the same content
            record.name = name
            record.fix = tree.fix.to_dict()
            record.source, record.commit = tree.source.spec, tree.source.commit
            record.package_version = tree.source.package_version
        return record

    def incremental_base(self, family: str, lineage: str, tree: PreparedTree
                         ) -> BuildRecord | None:
        """A finished build with the same options and image whose build directory is kept
        and whose tree is in this tree's repository (incremental.in_repository, choose_base)."""
        kept = []
        for path in self.root.glob(f"*/{RECORD}"):
            try:
                if (path.parent / "build" / "build.ninja").is_file():
                    kept.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        kept = [r for r in kept if isinstance(r, dict)]
        chosen = choose_base(in_repository(kept, family, lineage, tree), family, lineage, tree)
        return BuildRecord.from_dict(dict(chosen)) if chosen is not None else None

    def _build(self, name: str, key: str, directory: Path, tree: PreparedTree, generation: str,
               image: str, image_id: str, family: tuple[str, str],
               base: BuildRecord | None = None) -> BuildRecord:
        work = self.root / f".{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            return self._build_in(work, name, key, directory, tree, generation, image, image_id,
                                  family, base)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-built stays in the cache
            raise

    def _build_in(self, work: Path, name: str, key: str, directory: Path, tree: PreparedTree,
                  generation: str, image: str, image_id: str, keys: tuple[str, str],
                  base: BuildRecord | None) -> BuildRecord:
        family, lineage = keys
        changed: list[str] = []
        across = base is not None and base.family != family  # from another commit's build
        if base is not None:
            changed = changed_files(tree, base.tree_id)
            if across:
                touched = build_system_changes(changed, [s.get("path", "")
                                                         for s in tree.subprojects])
                if touched:
                    raise IncrementalUnsafe(
                        f"from {base.commit[:12]} the change touches the build system "
                        f"({', '.join(touched[:3])}): meson would reconfigure, which "
                        "`ninja -n` cannot plan")
            copy_build_dir(self.root / base.key / "build", work / "build")
            drop_stale_pch(work / "build", changed, SRC)
            age_sources(tree.path, changed)
        else:
            (work / "build").mkdir()
        self.ccache.mkdir(parents=True, exist_ok=True)
        log_path = work / "build.log"
        env = {"CCACHE_DIR": CCACHE, "CC": "ccache gcc", "CXX": "ccache g++", "HOME": OUT,
               "CCACHE_BASEDIR": SRC, **CCACHE_MODE}
        mounts = [Mount(str(tree.path), SRC, read_only=True), Mount(str(work / "build"), OUT),
                  Mount(str(self.ccache), CCACHE)]
        # a tree without the header (older QEMU): no precompiled header, the record says so
        pch = self.pch if self.pch and (tree.path / "include" / self.pch).is_file() else ""
        wrapped = bool(self.optimize or pch)  # CC is the wrapper, here and in the reproducer
        if wrapped:
            env.update(wrapper_env(self.optimize, "ccache gcc", pch))
            mounts.append(Mount(str(CC_WRAPPER), CC_IN_CONTAINER, read_only=True))
        spec = ContainerSpec(image=image_id, role="build", network="none", user=invoking_user(),
                             env=env, mounts=tuple(mounts), workdir=OUT)
        started = time.monotonic()
        container = self.runtime.start(spec)
        try:
            with open(log_path, "w") as logf:
                def out(line: str) -> None:
                    logf.write(line + "\n")
                    self.log(f"[{name}] {line}")

                ninja = ["ninja", "-j", str(self.jobs), BINARY]
                if base is None:
                    code, help_text = container.run([f"{SRC}/configure", "--help"])
                    script = tree.path / "configure"
                    options = supported_options(self.configure, help_text, script.read_text(
                        errors="replace") if script.is_file() else "")
                    with_devices, devices_used = device_configuration(self.devices, help_text)
                    options += with_devices
                    if with_devices:
                        (work / "build" / f"{DEVICES}.mak").write_text(devices_mak(self.devices))
                    elif self.devices:
                        out(f"minimal build not possible: device set {devices_used}")
                    configure = [f"{SRC}/configure", *options]
                    steps = [configure, ninja]
                    container.run(["ccache", "-z"])
                else:  # configured as the base was (same commit and options): ninja only
                    configure, devices_used, steps = base.configure, base.devices, [ninja]
                    _, plan = container.run(["ninja", "-n", "-d", "explain", BINARY], workdir=OUT)
                    compiled = check_incremental_plan(plan, changed, fix=not across)
                    out(f"incremental from {_describe(base)}: {len(changed)} changed file(s), "
                        f"recompiles {', '.join(compiled) or 'nothing'}")
                for argv in steps:
                    out("$ " + shlex.join(argv))
                    code, tail = container.run(argv, output=out, workdir=OUT)
                    if code != 0:
                        kept = self.root / "failed" / f"{key}.log"
                        kept.parent.mkdir(exist_ok=True)
                        logf.flush()
                        shutil.copyfile(log_path, kept)
                        raise BuildFailed(f"build {name} failed at `{argv[0]}` (exit {code}); "
                                          f"log: {kept}", str(kept))
                stats = "" if base is not None else container.run(["ccache", "-s"])[1]
        finally:
            container.remove()
        seconds = round(time.monotonic() - started, 1)
        (work / "bin").mkdir()
        shutil.copy2(work / "build" / BINARY, work / "bin" / BINARY)
        if base is not None and not across and \
                sha256_file(work / "bin" / BINARY) == base.binary_sha256:
            raise IncrementalUnsafe("the binary is identical to the one without the change")
        # kept: a full build's and one across commits' (the next commit starts from it); a
        # fix build's is not (the fix builds of a commit start from its build without one)
        if (base is not None and not across) or not self.keep_build_dir:
            shutil.rmtree(work / "build", ignore_errors=True)
        binary = directory / "bin" / BINARY
        rebuild = (f"printf %s {shlex.quote(devices_mak(self.devices))} > {DEVICES}.mak && "
                  if devices_used == MINIMAL else "") + shlex.join(configure) + " && ninja " + BINARY
        reproduce = shlex.join(run_command(
            self.runtime.cli, image, ["sh", "-c", rebuild],
            mounts=[Mount(str(tree.path), SRC, read_only=True),
                    Mount(f"{directory}/rebuild", OUT),
                    *([Mount(str(CC_WRAPPER), CC_IN_CONTAINER, read_only=True)] if wrapped else [])],
            env=wrapper_env(self.optimize, "gcc", pch) if wrapped else None, workdir=OUT))
        record = BuildRecord(
            name=name, key=key, source=tree.source.spec, commit=tree.source.commit,
            tree_id=tree.tree_id, qemu_version=tree.source.qemu_version,
            package_version=tree.source.package_version, fix=tree.fix.to_dict(),
            generation=generation, image=image, image_id=image_id, configure=configure,
            seconds=seconds, ccache=_ccache_summary(stats), binary=str(binary),
            binary_sha256=sha256_file(work / "bin" / BINARY), reproduce=reproduce,
            family=family, lineage=lineage, incremental_from=base.key if base else "",
            base=_describe(base) if base else "",
            base_commit=base.commit if base else "",
            compiled=compiled if base is not None else [], devices=devices_used,
            optimize=list(self.optimize), pch=pch, subprojects=list(tree.subprojects),
        )
        # the fix of an incremental build does not change which machine types there are
        record.machines = base.machines if base is not None and base.machines else \
            self.machine_types(record, work / "bin" / BINARY)
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


def _describe(record: BuildRecord) -> str:
    return f"{record.name} {record.commit[:12]} ({record.key})"


def _ccache_summary(stats: str) -> str:
    keep = [ln.strip() for ln in stats.splitlines()
            if re.match(r"\s*(Hits|Misses|cache hit|cache miss|Direct|Preprocessed)", ln, re.I)]
    return "; ".join(keep[:4])
