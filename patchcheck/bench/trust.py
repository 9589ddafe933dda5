"""`invoke bench.trust`: what an untrusted build's read-only compiler cache costs.

In a cache of its own whose compiler cache is a copy of this machine's (what a machine that
has built before has), alternated `repeat` times:
- a full build of one tree (`7.2-none`), trusted and untrusted, each in a builds directory
  of its own: nothing to start from, every object from the compiler cache (read-write or
  read-only), the untrusted one in its sandbox;
- fix builds of patches nobody built (the scenario's first known fix with a comment added),
  untrusted against trusted, both from the trusted build's directory;
- the next build of that same fixed tree, trusted, after each: after an untrusted build it
  compiles again what the untrusted one could not keep; after a trusted one it is cached.
Recorded to reports/bench-trust-<date>.json.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck.bench.figures import fresh_cache, machine, record
from patchcheck.build.pipeline import Pipeline
from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.tree import fixes


def bench_trust(settings: Settings, runtime: Runtime, repeat: int = 3, build: str = "7.2-none",
                log: Callable[[str], None] = print) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    cache = fresh_cache(settings, "bench-trust-", settings.cache_dir)
    try:
        if (settings.cache_dir / "ccache").is_dir():
            shutil.copytree(settings.cache_dir / "ccache", cache / "ccache", symlinks=True)
        bench = _TrustBench(dataclasses.replace(settings, cache_dir=cache), runtime,
                            settings.builds[build], cache)
        full = [bench.full(i) for i in range(max(1, repeat))]
        bench.base()
        fix = [bench.fix_builds(i) for i in range(max(1, repeat))]
        result = {"date": stamp, "engine": settings.runtime, "machine": machine(),
                  "build": build, "full": _summary(full), "fix": _summary(fix)}
        log(f"[bench] trust: {result['full']} {result['fix']}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    record(settings.reports_dir / f"bench-trust-{stamp}.json", result, table(result))
    return result


class _TrustBench:
    def __init__(self, settings: Settings, runtime: Runtime, spec: BuildSpec, cache: Path
                 ) -> None:
        self.settings, self.runtime, self.spec, self.cache = settings, runtime, spec, cache
        trust_all = dataclasses.replace(settings.trust, all=True)
        self.trusting = Pipeline(runtime, dataclasses.replace(settings, trust=trust_all),
                                 log=_quiet)
        self.untrusting = Pipeline(runtime, settings, log=_quiet)
        self.known = fixes.known_fixes(settings.matrix.scenario)

    def full(self, i: int) -> dict[str, float]:
        """The tree built trusted and untrusted, each in an empty builds directory (the
        order alternates)."""
        seconds: dict[str, float] = {}
        untrusted = dataclasses.replace(self.spec, untrusted="bench.trust")
        for label, spec in (("trusted", self.spec), ("untrusted", untrusted))[::1 - 2 * (i % 2)]:
            pipeline = Pipeline(self.runtime, self.settings, log=_quiet)
            pipeline.builder.root = self.cache / f"full-{i}-{label}"
            seconds[label] = _timed(pipeline, spec)[1]
        return seconds

    def base(self) -> None:
        """The tree's trusted build, its directory kept: what the fix builds start from."""
        self.trusting.build(self.spec)

    def fix_builds(self, i: int) -> dict[str, float]:
        """A new patch untrusted and another trusted, each followed by a trusted request of
        the same tree."""
        seconds: dict[str, float] = {}
        for label, pipeline in (("untrusted", self.untrusting), ("trusted", self.trusting)):
            spec = dataclasses.replace(self.spec, name=f"fix-{label}-{i}", fix=self.patch())
            seconds[label] = _timed(pipeline, spec)[1]
            seconds[f"next_after_{label}"] = _timed(self.trusting, spec)[1]
        return seconds

    def patch(self) -> str:
        """The scenario's first known fix with a comment on its first added statement."""
        known = self.known.patches[0]
        lines = known.text.decode().splitlines(keepends=True)
        first = next(n for n, line in enumerate(lines)
                     if line.startswith("+") and not line.startswith("+++")
                     and line.rstrip().endswith(";"))
        lines[first] = lines[first].rstrip("\n") + f" /* bench.trust {uuid.uuid4().hex} */\n"
        path = self.cache / f"{known.name}-{uuid.uuid4().hex[:8]}.patch"
        path.write_text("".join(lines))
        return str(path)


def _timed(pipeline: Pipeline, spec: BuildSpec) -> tuple[BuildRecord, float]:
    started = time.monotonic()
    built = pipeline.build(spec)
    return built, round(time.monotonic() - started, 1)


def _quiet(line: str) -> None:
    """The builds' logs: none."""


def _summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Each figure's runs and median, and the untrusted to trusted ratio of the medians."""
    out: dict[str, Any] = {k: {"runs": [r[k] for r in runs],
                               "median": statistics.median(r[k] for r in runs)} for k in runs[0]}
    out["ratio"] = round(out["untrusted"]["median"] / out["trusted"]["median"], 2)
    return out


def table(r: dict[str, Any]) -> str:
    full, fix = r["full"], r["fix"]

    def runs(figure: dict[str, Any]) -> str:
        return f"{figure['median']:.1f} s ({', '.join(f'{s:.1f}' for s in figure['runs'])})"
    rows = [
        ("machine", f"{r['machine']['cpus']} CPUs ({r['machine']['cpu']})"),
        (f"full build of {r['build']}, warm ccache, trusted", runs(full["trusted"])),
        ("  the same, untrusted (ccache read-only, sandbox)",
         f"{runs(full['untrusted'])} = {full['ratio']}x"),
        ("fix build of a new patch, trusted", runs(fix["trusted"])),
        ("  the same, untrusted", f"{runs(fix['untrusted'])} = {fix['ratio']}x"),
        ("next trusted request of that tree, after the trusted build",
         runs(fix["next_after_trusted"])),
        ("  after the untrusted build", runs(fix["next_after_untrusted"])),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
