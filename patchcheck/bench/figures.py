"""`invoke bench`: the speed and memory figures, measured in one run, recorded to
reports/bench-<date>.json and printed as a table (copied into the README by hand).

The cold figures use a fresh, empty cache directory (no builds, no ccache, no worktrees);
only the Debian source imports are copied in, since fetching is not building. With
`--first-run` the cold matrix runs as on a fresh machine: the project's images removed, no
source imports, so that it makes and fetches them itself.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from patchcheck.build.builder import BuildRecord
from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine import images
from patchcheck.engine.runtime import LABEL, Runtime
from patchcheck.result.model import RunResults, write_json
from patchcheck.run.matrix import MatrixOptions, default_jobs, run_matrix


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def case_stats(run: RunResults, guest: str, source_migration: int | None = None
               ) -> dict[str, float]:
    """Median/p95/max over the finished cases of `guest`. `source_migration`: 1 = only
    cases whose source booted for them, 2 = only later migrations of a shared source."""
    def wanted(n: int) -> bool:
        if source_migration is None:
            return True
        return n == 1 if source_migration == 1 else n > 1
    seconds = [c.seconds for c in run.cases if c.guest == guest and c.observed.value in
               ("passed", "failed") and wanted(c.source_migration)]
    if not seconds:
        return {}
    return {"count": len(seconds), "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(percentile(seconds, 0.95), 3), "max_s": round(max(seconds), 3)}


def cpu_seconds() -> float:
    """The host's busy CPU time so far, in seconds, from /proc/stat (user, nice, system,
    irq, softirq over every CPU): QEMUs and compilers run in containers, outside this
    process's children, so only the whole machine's count sees them. Meaningful when nothing
    else runs. Steal (the time the hypervisor gave other machines while this one waited)
    is no work done here and not counted."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _cpu_timed(func: Callable[[], Any]) -> tuple[Any, float, float]:
    """func's result, its wall seconds and the machine's busy CPU seconds meanwhile. The
    kernel writes dirty pages back later, in its own threads, and counts that as busy CPU:
    what earlier steps wrote (a build tree, a removed cache) is written before the clock
    starts, and what func wrote before it stops."""
    def written_back() -> Any:
        result = func()
        os.sync()
        return result
    os.sync()
    cpu = cpu_seconds()
    result, wall = _timed(written_back)
    return result, wall, round(cpu_seconds() - cpu, 1)


def _timed(func: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = func()
    return result, round(time.monotonic() - started, 2)


def machine() -> dict[str, Any]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gib": round(mem / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def fresh_cache(settings: Settings, prefix: str, imports_from: Path | None) -> Path:
    """An empty cache directory (no builds, no ccache, no worktrees) with the Debian source
    imports of the cache `imports_from` copied in (fetching is not building); None: none."""
    fresh = Path(tempfile.mkdtemp(prefix=prefix, dir=settings.cache_dir.parent))
    if imports_from is not None and (imports_from / "debian").is_dir():
        shutil.copytree(imports_from / "debian", fresh / "debian", symlinks=True)
    return fresh


def remove_own_images(settings: Settings, runtime: Runtime) -> list[str]:
    """What a fresh machine lacks and a first run makes: the builder images and the base
    images patchcheck made (labelled). A base image patchcheck did not make stays."""
    removed = []
    for generation in images.generations(settings.containers_dir):
        dockerfile = images.dockerfile(settings.containers_dir, generation)
        for ref in (images.builder_tag(generation), images.base_image_of(dockerfile)):
            labels = runtime.image_labels(ref)
            if labels is not None and labels.get(LABEL) == "1" and runtime.remove_image(ref):
                removed.append(ref)
    return removed


def bench(settings: Settings, runtime: Runtime, log: Callable[[str], None] = print,
          machines: str = "", repeat: int = 3, first_run: bool = False) -> dict[str, Any]:
    """`first_run`: the cold matrix as on a fresh machine, which makes the images and
    fetches the source packages too (the project's images are removed first; installing
    packages is all it leaves out)."""
    removed = remove_own_images(settings, runtime) if first_run else []
    fresh = fresh_cache(settings, "bench-cache-", None if first_run else settings.cache_dir)
    measured = _Bench(settings, runtime, log)
    try:
        measured.measure(fresh, machines, repeat)
        result = measured.figures(removed, first_run)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        if measured.reference_cache is not None:
            shutil.rmtree(measured.reference_cache, ignore_errors=True)
    record(settings.reports_dir / f"bench-{measured.stamp}.json", result, table(result))
    return result


def _quiet(line: str) -> None:
    """The log of the builds measured alone: none."""


class _Bench:
    """One bench's measurements, taken by `measure` in order, and the figures made of them.
    Every run uses the cold settings `cold` (an empty cache of its own)."""

    cold: Settings
    stamp: str
    cold_run: RunResults  # 1. the default matrix, cold
    cold_matrix_s: float
    cold_matrix_cpu: float
    without: dict[str, Any]  # its first tree's build without a fix, and those with one
    with_fix: list[dict[str, Any]]
    ref_record: BuildRecord  # 2. that build with QEMU's default devices
    repeats: list[float]  # 3. a repeated identical build
    alone_runs: list[float]  # 4. cold minimal builds alone, and warm matrices
    alone_cpu_runs: list[float]
    warm: list[float]
    warm_cpu: list[float]
    warm_run: RunResults

    def __init__(self, settings: Settings, runtime: Runtime, log: Callable[[str], None]) -> None:
        self.settings, self.runtime, self.log = settings, runtime, log
        self.reference_cache: Path | None = None

    def measure(self, fresh: Path, machines: str, repeat: int) -> None:
        cold = dataclasses.replace(self.settings, cache_dir=fresh)
        if machines:
            cold = dataclasses.replace(cold, matrix=dataclasses.replace(cold.matrix,
                                                                        machines=machines))
        self.cold = cold
        self.stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.cold_matrix()
        self.reference_build(fresh)
        self.repeated_build()
        self.alternate(repeat)

    def cold_matrix(self) -> None:
        """1. the default matrix, cold: every build from nothing; cases start as soon as
        their two builds exist."""
        options = MatrixOptions(run_id=f"bench-{self.stamp}-cold")
        _, self.cold_matrix_s, self.cold_matrix_cpu = _cpu_timed(
            partial(run_matrix, self.cold, self.runtime, options, self.log))
        self.cold_run = RunResults.load(self.cold.reports_dir / options.run_id / "results.json")
        builds = self.cold_run.builds
        first = next(iter(builds.values()))
        same_tree = [b for b in builds.values() if b.get("family") == first.get("family")]
        self.without = next(b for b in same_tree if not b.get("incremental_from"))
        self.with_fix = [b for b in same_tree if b.get("incremental_from")]

    def reference_build(self, fresh: Path) -> None:
        """2. the same tree cold with the reference configuration (QEMU's default devices),
        in its own empty cache: the minimal build's ratio."""
        self.reference_cache = fresh_cache(self.settings, "bench-reference-", fresh)
        reference = dataclasses.replace(self.cold,
                                        cache_dir=self.reference_cache).full_configuration()
        self.ref_record = Pipeline(self.runtime, reference, log=_quiet).build(
            self.settings.builds[self.without["name"]])

    def repeated_build(self) -> None:
        """3. a repeated identical build: a cache hit."""
        builds = self.settings.builds
        spec = builds[self.with_fix[0]["name"]] if self.with_fix else builds[self.without["name"]]
        self.repeats = [_timed(partial(self.build_quietly, spec))[1] for _ in range(3)]

    def build_quietly(self, spec: BuildSpec) -> BuildRecord:
        return Pipeline(self.runtime, self.cold, log=_quiet).build(spec)

    def alternate(self, repeat: int) -> None:
        """4. `repeat` times, alternately: one cold minimal build alone, in its own empty
        cache, and the default matrix again with nothing changed. The medians are compared:
        one compile's CPU-seconds vary by a third within an hour on these machines
        (docs/performance.md), so one build is no yardstick."""
        self.warm, self.warm_cpu, self.alone_runs, self.alone_cpu_runs = [], [], [], []
        for i in range(max(1, repeat)):
            seconds, cpu = _alone_build(self.runtime, self.cold, self.without["name"])
            self.alone_runs.append(seconds)
            self.alone_cpu_runs.append(cpu)
            options = MatrixOptions(run_id=f"bench-{self.stamp}-warm{i + 1}")
            _, wall, cpu = _cpu_timed(partial(run_matrix, self.cold, self.runtime, options,
                                              self.log))
            self.warm.append(wall)
            self.warm_cpu.append(cpu)
        self.warm_run = RunResults.load(self.cold.reports_dir / f"bench-{self.stamp}-warm1"
                                        / "results.json")

    def figures(self, removed: list[str], first_run: bool) -> dict[str, Any]:
        """What reports/bench-<date>.json records, in its order."""
        alone_s = round(statistics.median(self.alone_runs), 2)
        return {**self.build_figures(alone_s), **self.matrix_figures(alone_s, removed, first_run)}

    def build_figures(self, alone_s: float) -> dict[str, Any]:
        without, with_fix, ref_record = self.without, self.with_fix, self.ref_record
        fix_build = float(with_fix[0]["seconds"]) if with_fix else float("nan")
        return {
            "date": self.stamp, "engine": self.settings.runtime, "machine": machine(),
            "cold_build": {"build": without["name"], "seconds": float(without["seconds"]),
                           "qemu": without.get("qemu_version"),
                           "devices": without.get("devices", "")},
            "reference_cold_build": {"build": without["name"], "seconds": ref_record.seconds,
                                     "devices": getattr(ref_record, "devices", "default"),
                                     "ratio_minimal_to_reference":
                                         round(alone_s / ref_record.seconds, 3)},
            "with_fix_build": {"build": with_fix[0]["name"] if with_fix else "",
                               "seconds": fix_build,
                               "ratio_to_cold": round(fix_build / alone_s, 4),
                               "recompiled": with_fix[0].get("compiled", []) if with_fix else []},
            "repeated_build_cache_hit_s": round(statistics.median(self.repeats), 2),
            "repeated_build_runs_s": self.repeats,
            "pair_ratio_to_cold": round((alone_s + fix_build) / alone_s, 4),
            "builds": {n: {"seconds": b.get("seconds"), "incremental_from": b.get("incremental_from")}
                       for n, b in self.cold_run.builds.items()},
        }

    def matrix_figures(self, alone_s: float, removed: list[str], first_run: bool
                       ) -> dict[str, Any]:
        warm_run, warm, warm_cpu = self.warm_run, self.warm, self.warm_cpu
        alone_cpu = round(statistics.median(self.alone_cpu_runs), 1)
        warm_matrix_s = round(statistics.median(warm), 1)
        warm_matrix_cpu = round(statistics.median(warm_cpu), 1)
        cores = os.cpu_count() or 1
        cold_builds_s = round(sum(float(b.get("seconds") or 0)
                                  for b in self.cold_run.builds.values()
                                  if not b.get("cached")), 1)
        return {
            "synthetic_case": case_stats(warm_run, "synthetic"),
            "synthetic_cases_per_s": _throughput(warm_run, ("synthetic", "none")),
            "matrix_cases_per_s": round(len(warm_run.cases) / warm_matrix_s, 2),
            "linux_case": case_stats(warm_run, "linux", source_migration=1),
            "linux_case_shared_source": case_stats(warm_run, "linux", source_migration=2),
            "matrix_cold_s": self.cold_matrix_s, "matrix_warm_s": warm_matrix_s,
            # issue goals: the warm matrix at most 1.2x the CPU of one cold minimal build,
            # its wall within 1.15x its CPU over the cores; the cold matrix (a first run) at
            # most 2.0x its builds' wall time, its first case before its last build
            "cold_build_alone": {"seconds": alone_s, "cpu_s": alone_cpu,
                                 "runs_s": self.alone_runs, "cpu_runs_s": self.alone_cpu_runs},
            "matrix_warm_cpu_s": warm_matrix_cpu, "matrix_warm_cpu_runs_s": warm_cpu,
            "warm_cpu_ratio_to_cold_build": round(warm_matrix_cpu / alone_cpu, 3),
            # each warm run against the build measured just before it
            "warm_cpu_ratio_runs": [round(w / b, 3) for w, b in zip(warm_cpu, self.alone_cpu_runs,
                                                                    strict=True)],
            "warm_cpu_goal": 1.2,
            "warm_wall_ratio_to_cpu_per_core": round(warm_matrix_s / (warm_matrix_cpu / cores), 3),
            "warm_wall_goal": 1.15,
            "matrix_cold_cpu_s": self.cold_matrix_cpu, "cold_builds_s": cold_builds_s,
            "cold_ratio_to_builds": round(self.cold_matrix_s / cold_builds_s, 3)
            if cold_builds_s else None,
            "cold_goal": 2.0,
            "cold_first_case_before_last_build": _first_case_before_last_build(self.cold_run),
            # a first run: the cold matrix also made these images and fetched the sources
            "cold_first_run": first_run, "cold_images_removed": removed,
            "matrix_warm_runs_s": warm,
            "matrix_cases": len(warm_run.cases), "jobs": self.cold.matrix.jobs or default_jobs(),
            "peak_rss_mib": _peak_rss_mib(),
        }


def _peak_rss_mib() -> dict[str, float]:
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"patchcheck": round(self_rss / 1024, 1), "children": round(child_rss / 1024, 1)}


def _alone_build(runtime: Runtime, cold: Settings, name: str) -> tuple[float, float]:
    """One cold minimal build alone, in an empty cache of its own beside the bench's `cold`
    one (its Debian imports copied): its wall and CPU seconds."""
    minimal_cache = fresh_cache(cold, "bench-minimal-", cold.cache_dir)
    try:
        alone = dataclasses.replace(cold, cache_dir=minimal_cache)
        _, seconds, cpu = _cpu_timed(lambda: Pipeline(
            runtime, alone, log=lambda line: None).build(cold.builds[name]))
    finally:
        shutil.rmtree(minimal_cache, ignore_errors=True)
    return seconds, cpu


def _first_case_before_last_build(run: RunResults) -> bool | None:
    """Whether a case finished before the run's last build did (None: not recorded)."""
    cases = [c.finished for c in run.cases if c.finished]
    built = [str(b["finished"]) for b in run.builds.values() if b.get("finished")]
    return min(cases) < max(built) if cases and built else None


def record(path: Path, result: dict[str, Any], text: str) -> None:
    """Write a bench's figures and print its table."""
    write_json(path, result)
    print(text)
    print(f"recorded: {path}")


def _throughput(run: RunResults, guests: Sequence[str]) -> float:
    """Cases of `guests` per second of job time, times the jobs: what they alone would reach."""
    seconds = sum(c.seconds for c in run.cases if c.guest in guests)
    count = sum(1 for c in run.cases if c.guest in guests)
    jobs = int(run.settings.get("jobs") or 1)
    return round(count / seconds * jobs, 2) if seconds else 0.0


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    syn, lin = r["synthetic_case"], r["linux_case"]
    shared = r.get("linux_case_shared_source") or {}
    ref = r["reference_cold_build"]
    rows = [
        ("machine", f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}"),
        ("cold build (default, minimal devices)",
         f"{r['cold_build']['build']}: "
         + (f"{r['cold_build_alone']['seconds']:.0f} s alone (median of "
            f"{_spread(r['cold_build_alone'].get('runs_s', []))}), "
            if "cold_build_alone" in r else "")
         + f"{r['cold_build']['seconds']:.0f} s in the cold matrix"),
        ("cold build, QEMU's default devices", f"{ref['seconds']:.0f} s (minimal = "
                                               f"{ref['ratio_minimal_to_reference']:.2f}x)"),
        ("with-fix build after it", f"{r['with_fix_build']['seconds']:.1f} s "
                                    f"({r['with_fix_build']['ratio_to_cold']:.3f}x cold)"),
        ("repeated identical build", f"{r['repeated_build_cache_hit_s']:.1f} s (cache hit, "
                                     "median of 3)"),
        ("pair (without + with fix)", f"{r['pair_ratio_to_cold']:.3f}x one cold build"),
        ("synthetic case", f"median {syn.get('median_s', 0):.2f} s, p95 {syn.get('p95_s', 0):.2f} s"
                           f" over {syn.get('count', 0)} cases"),
        ("synthetic/none throughput", f"{r.get('synthetic_cases_per_s', 0):.1f} cases/s with "
                                      f"{r['jobs']} jobs"),
        ("linux-guest case (boot included)", f"median {lin.get('median_s', 0):.1f} s over "
                                             f"{lin.get('count', 0)}" if lin else "not run"),
        ("linux-guest case, shared source", f"median {shared.get('median_s', 0):.2f} s over "
                                            f"{shared.get('count', 0)}" if shared else "not run"),
        ("default matrix cold", f"{r['matrix_cold_s']:.0f} s ({r['matrix_cases']} cases + probe"
                                + ("; a first run: images made, sources fetched"
                                   if r.get("cold_first_run") else "") + ")"
                                f" = {r['cold_ratio_to_builds']}x its builds' "
                                f"{r['cold_builds_s']:.0f} s (goal <= 2.0); a case done before "
                                f"the last build: {r['cold_first_case_before_last_build']}"),
        ("default matrix warm", f"{r['matrix_warm_s']:.0f} s (median of "
                                f"{_spread(r.get('matrix_warm_runs_s', []))}; "
                                f"{r['matrix_cases_per_s']:.1f} cases/s overall)"),
        ("warm matrix CPU", f"{r['matrix_warm_cpu_s']:.0f} CPU-s (median of "
                            f"{_spread(r.get('matrix_warm_cpu_runs_s', []))}) = "
                            f"{r['warm_cpu_ratio_to_cold_build']:.2f}x one cold minimal build's "
                            f"{r['cold_build_alone']['cpu_s']:.0f} CPU-s (median of "
                            f"{_spread(r['cold_build_alone'].get('cpu_runs_s', []))}; goal <= "
                            "1.2; each run against the build before it: "
                            + ", ".join(f"{x:.2f}x" for x in r.get("warm_cpu_ratio_runs", []))
                            + "); wall "
                            f"{r['warm_wall_ratio_to_cpu_per_core']:.2f}x CPU/cores "
                            "(goal <= 1.15)"),
        ("peak memory", f"patchcheck {r['peak_rss_mib']['patchcheck']} MiB, largest child "
                        f"{r['peak_rss_mib']['children']} MiB (QEMUs run in containers)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)


def _spread(runs: list[float]) -> str:
    """How many runs a median is of, and each of them: '3: 99, 112, 124'."""
    return f"{len(runs)}: " + ", ".join(f"{v:.0f}" for v in runs) if runs else "1"
