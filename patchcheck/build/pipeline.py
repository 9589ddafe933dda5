"""Wiring of the build stages: source spec -> tree -> prepared tree (fix) -> image -> build."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from patchcheck.build import artifacts
from patchcheck.build.builder import Builder
from patchcheck.build.record import BuildRecord
from patchcheck.build.trust import TRUSTED, Trust, decide
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine import images
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import UsageError
from patchcheck.scenarios import registry as scenarios
from patchcheck.source import specs as sources
from patchcheck.source.subprojects import complete as subprojects
from patchcheck.tree import fixes
from patchcheck.tree import prepare as trees
from patchcheck.tree.prepared import PreparedTree


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A build ready to compile (Pipeline.prepare), or already made (`record`)."""

    spec: BuildSpec
    tree: PreparedTree | None  # None: imported from elsewhere
    generation: str
    image_id: str
    record: BuildRecord | None  # the build, if it is in the cache or imported
    trust: Trust = TRUSTED  # patchcheck.build.trust: what the build may write into


class Pipeline:
    def __init__(self, runtime: Runtime, settings: Settings, log: Callable[[str], None] = print,
                 refresh: bool = False) -> None:
        self.runtime = runtime
        self.settings = settings
        self.log = log
        self.refresh = refresh
        self.images = images.Images(runtime, settings, log)
        self.builder = Builder(runtime, settings.cache_dir, settings.configure,
                               jobs=settings.build_jobs, log=log,
                               devices=minimal_devices(settings),
                               minimal_configure=settings.minimal_configure,
                               minimal_optimize=settings.minimal_optimize,
                               minimal_pch=settings.minimal_pch)
        self.git = sources.GitSources(settings.cache_dir)
        # vendored subprojects come from imported source trees (Debian packages)
        self.subprojects = subprojects.SubprojectStore(
            settings.cache_dir, [settings.cache_dir / "debian"], log)
        self.debian = sources.DebianSources(
            settings.cache_dir, _lazy_fetcher(runtime, self._suite_image, log))
        self._image_ids: dict[str, str] = {}
        self.known = fixes.known_fixes(settings.matrix.scenario)  # the fix states' patches

    def _suite_image(self, suite: str) -> str:
        images.dockerfile(self.settings.containers_dir, suite)  # unknown suite -> UsageError
        return self.image(suite)

    def image(self, generation: str) -> str:
        if generation not in self._image_ids:
            self._image_ids[generation] = self.images.builder(generation)
        return self._image_ids[generation]

    def resolve(self, spec_text: str) -> sources.Tree:
        spec = sources.parse_spec(spec_text)
        if isinstance(spec, sources.DebianSpec):
            known = images.generations(self.settings.containers_dir)
            if spec.suite not in known:
                raise UsageError(f"unknown Debian suite '{spec.suite}' (known: {', '.join(known)})")
            return self.debian.resolve(spec, refresh=self.refresh)
        return self.git.resolve(spec)

    def build(self, spec: BuildSpec) -> BuildRecord:
        return self.make(self.prepare(spec))

    def prepare(self, spec: BuildSpec) -> Prepared:
        """Everything a build needs but compiling: the source fetched, the fix applied or
        reverted, the builder image, the subprojects; the build itself if it is in the cache
        (or imported). Lets a caller tell a build that takes a moment from one that takes
        minutes, and prepare the next build while one compiles (one thread prepares)."""
        imported = artifacts.pinned(self.settings.imported, self.settings.cache_dir, spec,
                                    self.settings.matrix.scenario) \
            if self.settings.imported is not None else None
        if imported is not None:  # from a build stage elsewhere (patchcheck.build.artifacts)
            self.log(f"[{spec.name}] imported: QEMU {imported.qemu_version}, fix "
                     f"{imported.fix_state} -> {imported.binary}")
            return Prepared(spec, None, "", "", imported)
        fixes.resolve(spec.fix, self.known)  # validate the fix state before any expensive step
        trust = decide(spec, self.settings.trust, self.known)
        tree = self.resolve(spec.source)
        prepared = trees.prepare(tree, spec.fix, self.settings.cache_dir, self.known)
        generation = images.generation_for(tree.version_tuple, self.settings.image_rules)
        image_id = self.image(generation)
        prepared = self.complete(prepared, image_id)
        record = self.builder.cached(spec.name, prepared, image_id, trust)
        if record is not None:
            self._made(spec, prepared, record)
        else:
            self.log(f"[{spec.name}] ready to compile: tree {prepared.tree_id[:12]}, "
                     f"{generation} builder image, {trust}")
        return Prepared(spec, prepared, generation, image_id, record, trust)

    def make(self, prepared: Prepared) -> BuildRecord:
        """The build of a prepared tree: from the cache, or compiled now."""
        if prepared.record is not None:
            return prepared.record
        assert prepared.tree is not None  # only an imported build has none, and a record
        record = self.builder.build(prepared.spec.name, prepared.tree, prepared.generation,
                                    images.builder_tag(prepared.generation),
                                    prepared.image_id, prepared.trust)
        self._made(prepared.spec, prepared.tree, record)
        return record

    def _made(self, spec: BuildSpec, tree: PreparedTree, record: BuildRecord) -> None:
        if tree.fix.applied == "already-present":
            self.log(f"[{spec.name}] note: {tree.fix.note}")
        self.log(f"[{spec.name}] {'cached' if record.cached else 'built'}: QEMU {record.qemu_version}"
                 f", fix {record.fix_state} ({record.fix['applied']}), "
                 f"{record.trust or 'trusted'} -> {record.binary}")

    def complete(self, prepared: PreparedTree, image_id: str) -> PreparedTree:
        """The tree with every subproject its configured build reads (fetched once per
        revision; a revision that cannot be had is a BuildFailed naming it)."""
        done = subprojects.complete(
            prepared.path, prepared.source.repo, prepared.source.commit,
            tuple(self.builder.configure), lambda: self.images.meson_version(image_id),
            self.subprojects)
        return dataclasses.replace(prepared, subprojects=tuple(done))


def minimal_devices(settings: Settings) -> tuple[str, ...]:
    """A minimal build's Kconfig devices: build.devices, and the devices the scenario's
    topology needs that the list lacks. () (QEMU's default set) stays ()."""
    if not settings.devices:
        return ()
    needed = scenarios.get(settings.matrix.scenario).devices
    return (*settings.devices, *(d for d in needed if d not in settings.devices))


def _lazy_fetcher(runtime: Runtime, image_for_suite: Callable[[str], str],
                  log: Callable[[str], None]) -> Callable[..., None]:
    from patchcheck.source.fetch import debian_fetcher

    return debian_fetcher(runtime, image_for_suite, log)
