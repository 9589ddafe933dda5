"""`invoke bench.upstream`: what building from an upstream QEMU clone costs, in one run.

- the cold build of upstream v7.2.0 next to Debian's 7.2 in the same (default) configuration,
  each in its own empty cache (no ccache, no worktrees, no builds);
- the fetch of the subprojects that build reads, from an empty store (no vendored copy
  offered: every one over git, through whatever URL rewriting the user's git has), and again
  from the store.
Recorded to reports/bench-upstream-<date>.json.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck.bench.figures import fresh_cache, machine, record
from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.source.specs import GitSources, GitSpec
from patchcheck.source.subprojects.complete import pins_of
from patchcheck.source.subprojects.needs import BuildKind, needed
from patchcheck.source.subprojects.store import SubprojectStore


def bench_upstream(settings: Settings, runtime: Runtime, repo: str, ref: str = "v7.2.0",
                   debian: str = "7.2-none", log: Callable[[str], None] = print) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    scratch = Path(tempfile.mkdtemp(prefix="bench-upstream-", dir=settings.cache_dir.parent))
    caches: list[Path] = []
    try:
        fetch = _fetch_figures(settings, scratch / "fetch", repo, ref)
        builds: dict[str, dict[str, Any]] = {}
        for label, spec in (("debian", settings.builds[debian]),
                            ("upstream", BuildSpec(f"upstream-{ref}", f"git:{repo}@{ref}", "none"))):
            # Debian imports only
            caches.append(fresh_cache(settings, f"bench-{label}-", settings.cache_dir))
            cold = dataclasses.replace(settings, cache_dir=caches[-1])
            built = Pipeline(runtime, cold, log=lambda line: None).build(spec)
            builds[label] = {"source": built.source, "qemu": built.qemu_version,
                             "seconds": built.seconds, "devices": built.devices,
                             "subprojects": built.subprojects}
            log(f"[bench] {label} cold build: {built.seconds:.0f} s")
        result = {"date": stamp, "engine": settings.runtime, "machine": machine(), "ref": ref,
                  "builds": builds,
                  "ratio_upstream_to_debian": round(builds["upstream"]["seconds"]
                                                    / builds["debian"]["seconds"], 3),
                  "subproject_fetch": fetch}
    finally:
        for path in (scratch, *caches):
            shutil.rmtree(path, ignore_errors=True)
    record(settings.reports_dir / f"bench-upstream-{stamp}.json", result, table(result))
    return result


def _fetch_figures(settings: Settings, cache: Path, repo: str, ref: str) -> dict[str, Any]:
    tree = GitSources(cache).resolve(GitSpec(repo, ref))
    kind = BuildKind(tuple(settings.configure) + tuple(settings.minimal_configure))
    pins = needed(pins_of(tree.repo, tree.commit), kind)
    store = SubprojectStore(cache, vendor_roots=[], log=lambda line: None)
    times = []
    for _ in range(2):  # cold, then from the store
        started = time.monotonic()
        for pin in pins:
            store.get(pin)
        times.append(round(time.monotonic() - started, 2))
    return {"subprojects": [p.describe() for p in pins], "cold_s": times[0], "cached_s": times[1]}


def table(r: dict[str, Any]) -> str:
    b, f = r["builds"], r["subproject_fetch"]
    rows = [
        ("machine", f"{r['machine']['cpus']} CPUs ({r['machine']['cpu']})"),
        ("cold build, Debian", f"{b['debian']['qemu']}: {b['debian']['seconds']:.0f} s"),
        (f"cold build, upstream {r['ref']}", f"{b['upstream']['seconds']:.0f} s "
                                             f"({r['ratio_upstream_to_debian']:.2f}x Debian)"),
        ("subproject fetch, cold", f"{f['cold_s']:.2f} s ({', '.join(f['subprojects'])})"),
        ("subproject fetch, cached", f"{f['cached_s']:.2f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
