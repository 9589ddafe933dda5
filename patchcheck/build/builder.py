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
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from patchcheck.build import damage, space
from patchcheck.build.configure import (
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
from patchcheck.build.record import BINARY, RECORD, BuildRecord, sha256_file
from patchcheck.build.trust import TRUSTED, Trust
from patchcheck.engine.runtime import (
    Container,
    ContainerSpec,
    Mount,
    Runtime,
    hand_over,
    invoking_user,
    run_command,
    sandbox_user,
)
from patchcheck.errors import BuildFailed, disk_full, is_no_space
from patchcheck.locks import file_lock
from patchcheck.result.files import copy_whole
from patchcheck.tree.prepared import PreparedTree

SRC, CCACHE = "/src", "/ccache"  # the tree and the compiler cache in the container; OUT: the build


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
# An untrusted build reads the compiler cache (mounted read-only) and writes nothing into it:
# ccache's temporary files and statistics go into the build directory instead.
CCACHE_READONLY = {"CCACHE_READONLY": "1", "CCACHE_TEMPDIR": f"{OUT}/.ccache-tmp",
                   "CCACHE_STATSLOG": f"{OUT}/.ccache-stats", "TMPDIR": "/tmp"}

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

    def key(self, tree: PreparedTree, image_id: str, trust: Trust = TRUSTED) -> str:
        """The build's cache key: an untrusted build's is its own, so that a trusted request
        never takes a binary an untrusted build made."""
        return build_key(tree.tree_id, [*self._keyed, *([] if trust.trusted else ["untrusted"])],
                         image_id)

    def build(self, name: str, tree: PreparedTree, generation: str, image: str,
              image_id: str, trust: Trust = TRUSTED) -> BuildRecord:
        if not trust.trusted:  # the trusted build of the same tree serves it as well
            record = self.cached(name, tree, image_id)
            if record is not None:
                return record
        key = self.key(tree, image_id, trust)
        directory = self.root / key
        with file_lock(self.root / f"{key}.lock"):
            record = self._cached(name, tree, directory)
            if record is not None:
                return record
            shutil.rmtree(directory, ignore_errors=True)
            family = family_key(tree.source.commit, self._keyed, image_id)
            lineage = lineage_key(self._keyed, image_id)
            target = _Target(name, key, directory, tree, generation, image, image_id, family,
                             lineage, trust)
            base = self.incremental_base(family, lineage, tree) if self.incremental else None
            if base is not None:
                try:
                    return self._build(target, base)
                except IncrementalUnsafe as exc:
                    self.log(f"[{name}] incremental build not trusted ({exc}); building afresh")
            return self._build(target)

    def cached(self, name: str, tree: PreparedTree, image_id: str, trust: Trust = TRUSTED
               ) -> BuildRecord | None:
        """The build of this tree if it is in the cache, else None (nothing is built); for an
        untrusted request, the trusted build of the tree, or else its own."""
        for key in dict.fromkeys([self.key(tree, image_id), self.key(tree, image_id, trust)]):
            with file_lock(self.root / f"{key}.lock"):
                record = self._cached(name, tree, self.root / key)
            if record is not None:
                return record
        return None

    def _cached(self, name: str, tree: PreparedTree, directory: Path) -> BuildRecord | None:
        """The entry's record (under its lock); a damaged entry is said and removed (None),
        a damaged build directory said and dropped (the binary is kept: damage.py)."""
        record, damaged = damage.examine(directory)
        if damaged:
            self.log(damage.said(name, directory.name, damaged, "building it again"))
            damage.remove(directory)
        elif record is not None and (broken := damage.base_damage(directory)):
            self.log(damage.said(name, directory.name, broken, "its binary is intact: dropped "
                                 "that directory, no incremental build starts from it"))
            damage.remove(directory / damage.BUILD_DIR)
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
            if not (path.parent / damage.BUILD_DIR).is_dir():
                continue
            broken = damage.base_damage(path.parent)
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # said and rebuilt when the entry itself is asked for
            if broken:
                name = data.get("name", "?") if isinstance(data, dict) else "?"
                self.log(damage.said(str(name), path.parent.name, broken, "not used as the base "
                                     "of an incremental build: dropped that directory"))
                damage.remove(path.parent / damage.BUILD_DIR)
                continue
            kept.append(data)
        # an untrusted build keeps no directory; one that says it is untrusted is no base either
        kept = [r for r in kept if isinstance(r, dict) and not BuildRecord.missing_fields(r)
                and r.get("trusted", True) is True]
        chosen = choose_base(in_repository(kept, family, lineage, tree), family, lineage, tree)
        return BuildRecord.from_dict(dict(chosen)) if chosen is not None else None

    def _build(self, target: _Target, base: BuildRecord | None = None) -> BuildRecord:
        work = self.root / f".{target.key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            return _BuildJob(self, work, target, base).run()
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)  # nothing half-built stays in the cache
            if is_no_space(exc):  # patchcheck's own copy or write, in the cache
                raise disk_full("the cache", self.root.parent,
                                f"the build of {target.name} stopped") from None
            raise

    def machine_types(self, record: BuildRecord, binary: Path) -> list[str]:
        spec = ContainerSpec(image=record.image_id, role="probe", network="none",
                             user=sandbox_user(), hardened=True,
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


@dataclass(frozen=True)
class _Target:
    """What one build makes and where: its name and key, the directory it lands in, the tree,
    the builder image, the keys of the builds it may share a directory with, its trust."""

    name: str
    key: str
    directory: Path
    tree: PreparedTree
    generation: str
    image: str
    image_id: str
    family: str
    lineage: str
    trust: Trust = TRUSTED


class _LogLines:
    """A build's output: each line into its log file and, named, to the builder's log."""

    def __init__(self, file: TextIO, name: str, log: Callable[[str], None]) -> None:
        self.file, self.name, self.log = file, name, log

    def __call__(self, line: str) -> None:
        self.file.write(line + "\n")
        self.log(f"[{self.name}] {line}")


class _BuildJob:
    """One build in the work directory `work`: from nothing (configure and ninja), or with
    `base` in a copy of that build's directory (ninja only). `run` writes the record and
    moves the directory into its place in the cache."""

    def __init__(self, builder: Builder, work: Path, target: _Target,
                 base: BuildRecord | None) -> None:
        self.builder, self.work, self.target, self.base = builder, work, target, base
        self.across = base is not None and base.family != target.family  # another commit's
        self.changed: list[str] = []  # incremental: the files that differ from the base's tree
        self.compiled: list[str] = []  # incremental: what ninja recompiles
        self.configure: list[str] = []
        self.devices_used = ""
        # a tree without the header (older QEMU): no precompiled header, the record says so
        pch = builder.pch
        self.pch = pch if pch and (target.tree.path / "include" / pch).is_file() else ""
        # CC is the wrapper, in the build container and in the reproducer
        self.wrapped = bool(builder.optimize or self.pch)
        self.log_path = work / "build.log"

    def run(self) -> BuildRecord:
        self.prepare_build_dir()
        self.builder.ccache.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        stats = self.compile()
        seconds = round(time.monotonic() - started, 1)
        self.keep_binary()
        return self.finish(self.record(seconds, stats))

    def prepare_build_dir(self) -> None:
        """An empty build directory, or a copy of the base's with what the change touches
        made older than the sources (incremental.age_sources)."""
        build = self.work / "build"
        if self.base is None:
            build.mkdir()
            hand_over(build, self.user)
            return
        tree = self.target.tree
        self.changed = changed_files(tree, self.base.tree_id)
        if self.across:
            touched = build_system_changes(self.changed, [s.get("path", "")
                                                          for s in tree.subprojects])
            if touched:
                raise IncrementalUnsafe(
                    f"from {self.base.commit[:12]} the change touches the build system "
                    f"({', '.join(touched[:3])}): meson would reconfigure, which "
                    "`ninja -n` cannot plan")
        copy_build_dir(self.builder.root / self.base.key / "build", build)
        drop_stale_pch(build, self.changed, SRC)
        age_sources(tree.path, self.changed)
        hand_over(build, self.user)

    @property
    def trusted(self) -> bool:
        return self.target.trust.trusted

    @property
    def user(self) -> str:
        return invoking_user() if self.trusted else sandbox_user()

    def container_spec(self) -> ContainerSpec:
        builder = self.builder
        env = {"CCACHE_DIR": CCACHE, "CC": "ccache gcc", "CXX": "ccache g++", "HOME": OUT,
               "CCACHE_BASEDIR": SRC, **CCACHE_MODE, **({} if self.trusted else CCACHE_READONLY)}
        mounts = [Mount(str(self.target.tree.path), SRC, read_only=True),
                  Mount(str(self.work / "build"), OUT),
                  Mount(str(builder.ccache), CCACHE, read_only=not self.trusted)]
        if self.wrapped:
            env.update(wrapper_env(builder.optimize, "ccache gcc", self.pch))
            mounts.append(Mount(str(CC_WRAPPER), CC_IN_CONTAINER, read_only=True))
        return ContainerSpec(image=self.target.image_id, role="build", network="none",
                             user=self.user, env=env, mounts=tuple(mounts), workdir=OUT,
                             hardened=not self.trusted)

    def compile(self) -> str:
        """Configure and ninja (or ninja alone) in a build container, each line into
        build.log; ccache's statistics of a full build, "" of an incremental one."""
        container = self.builder.runtime.start(self.container_spec())
        try:
            with open(self.log_path, "w") as logf:
                out = _LogLines(logf, self.target.name, self.builder.log)
                steps = self.full_steps(container, out) if self.base is None else \
                    self.incremental_steps(container, out, self.base)
                for argv in steps:
                    self.run_step(container, argv, out)
                if self.base is not None:
                    return ""
                # an untrusted build's own statistics: the cache's are not written
                stats = ["ccache", "-s"] if self.trusted else ["ccache", "--show-log-stats"]
                return container.run(stats)[1]
        finally:
            container.remove()

    def ninja(self) -> list[str]:
        return ["ninja", "-j", str(self.builder.jobs), BINARY]

    def full_steps(self, container: Container, out: _LogLines) -> list[list[str]]:
        """configure with the options (and device set) this tree's configure knows; ccache's
        statistics zeroed."""
        builder, tree = self.builder, self.target.tree
        _, help_text = container.run([f"{SRC}/configure", "--help"])
        script = tree.path / "configure"
        options = supported_options(builder.configure, help_text, script.read_text(
            errors="replace") if script.is_file() else "")
        with_devices, self.devices_used = device_configuration(builder.devices, help_text)
        options += with_devices
        if with_devices:
            (self.work / "build" / f"{DEVICES}.mak").write_text(devices_mak(builder.devices))
        elif builder.devices:
            out(f"minimal build not possible: device set {self.devices_used}")
        self.configure = [f"{SRC}/configure", *options]
        if self.trusted:
            container.run(["ccache", "-z"])
        return [self.configure, self.ninja()]

    def incremental_steps(self, container: Container, out: _LogLines, base: BuildRecord
                          ) -> list[list[str]]:
        """Configured as the base was (same commit and options): ninja only, after its plan
        is checked (incremental.check_incremental_plan)."""
        self.configure, self.devices_used = base.configure, base.devices
        _, plan = container.run(["ninja", "-n", "-d", "explain", BINARY], workdir=OUT)
        self.compiled = check_incremental_plan(plan, self.changed, fix=not self.across)
        out(f"incremental from {_describe(base)}: {len(self.changed)} changed file(s), "
            f"recompiles {', '.join(self.compiled) or 'nothing'}")
        return [self.ninja()]

    def run_step(self, container: Container, argv: list[str], out: _LogLines) -> None:
        """One command of the build; failing, its log is kept under failed/<key>.log."""
        out("$ " + shlex.join(argv))
        code, said = container.run(argv, output=out, workdir=OUT)
        if code != 0:
            full = space.out_of_space(said, [self.work, self.builder.ccache])
            if full:  # the machine's fault, never the commit's (exit 3, not a failed build)
                raise disk_full("the cache", self.builder.root.parent,
                                f"the build of {self.target.name} stopped at `{argv[0]}` "
                                f"({full})")
            kept = self.builder.root / "failed" / f"{self.target.key}.log"
            kept.parent.mkdir(exist_ok=True)
            out.file.flush()
            copy_whole(self.log_path, kept)
            raise BuildFailed(f"build {self.target.name} failed at `{argv[0]}` (exit {code}); "
                              f"log: {kept}", str(kept))

    def keep_binary(self) -> None:
        """The binary into bin/. The build directory is kept for a trusted full build and
        one across commits (the next commit starts from it), not for a fix build (the fix
        builds of a commit start from its build without one) nor an untrusted one (what it
        wrote there is no base for anything)."""
        binary, built = self.work / "bin" / BINARY, self.work / "build" / BINARY
        binary.parent.mkdir()
        if built.is_symlink() or not built.is_file():  # the build's own, no host file
            raise BuildFailed(f"build {self.target.name}: {BINARY} is no regular file")
        shutil.copy2(built, binary)
        fix_build = self.base is not None and not self.across
        if self.base is not None and fix_build and sha256_file(binary) == self.base.binary_sha256:
            raise IncrementalUnsafe("the binary is identical to the one without the change")
        if fix_build or not self.builder.keep_build_dir or not self.trusted:
            shutil.rmtree(self.work / "build", ignore_errors=True)

    def reproducer(self) -> str:
        """The command line that builds the same by hand, into <directory>/rebuild."""
        builder, target = self.builder, self.target
        rebuild = (f"printf %s {shlex.quote(devices_mak(builder.devices))} > {DEVICES}.mak && "
                   if self.devices_used == MINIMAL else "") + shlex.join(self.configure) + \
            " && ninja " + BINARY
        wrapper = [Mount(str(CC_WRAPPER), CC_IN_CONTAINER, read_only=True)] if self.wrapped \
            else []
        return shlex.join(run_command(
            builder.runtime.cli, target.image, ["sh", "-c", rebuild],
            mounts=[Mount(str(target.tree.path), SRC, read_only=True),
                    Mount(f"{target.directory}/rebuild", OUT), *wrapper],
            env=wrapper_env(builder.optimize, "gcc", self.pch) if self.wrapped else None,
            workdir=OUT))

    def record(self, seconds: float, stats: str) -> BuildRecord:
        target, tree, base = self.target, self.target.tree, self.base
        return BuildRecord(
            name=target.name, key=target.key, source=tree.source.spec, commit=tree.source.commit,
            tree_id=tree.tree_id, qemu_version=tree.source.qemu_version,
            package_version=tree.source.package_version, fix=tree.fix.to_dict(),
            generation=target.generation, image=target.image, image_id=target.image_id,
            configure=self.configure, seconds=seconds, ccache=_ccache_summary(stats),
            binary=str(target.directory / "bin" / BINARY),
            binary_sha256=sha256_file(self.work / "bin" / BINARY), reproduce=self.reproducer(),
            family=target.family, lineage=target.lineage,
            incremental_from=base.key if base else "", base=_describe(base) if base else "",
            base_commit=base.commit if base else "", compiled=self.compiled,
            devices=self.devices_used, optimize=list(self.builder.optimize), pch=self.pch,
            subprojects=list(tree.subprojects), trusted=self.trusted, trust=str(target.trust),
        )

    def finish(self, record: BuildRecord) -> BuildRecord:
        """The record with its machine types, written; the work directory moved into place."""
        base = self.base
        # the fix of an incremental build does not change which machine types there are
        record.machines = base.machines if base is not None and base.machines else \
            self.builder.machine_types(record, self.work / "bin" / BINARY)
        (self.work / RECORD).write_text(json.dumps(record.to_dict(), indent=2))
        self.work.rename(self.target.directory)
        return record
