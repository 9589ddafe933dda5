"""`invoke bench`: the speed and memory figures, measured in one run, recorded to
reports/bench-<date>.json and printed as a table (copied into the README by hand).

The cold figures use a fresh, empty cache directory (no builds, no ccache, no worktrees);
only the Debian source imports are copied in, since fetching is not building.
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
from pathlib import Path
from typing import Any

from .config import Settings
from .pipeline import Pipeline
from .results import RunResults, write_json
from .run import MatrixOptions, run_matrix


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def case_stats(run: RunResults, guest: str) -> dict[str, float]:
    seconds = [c.seconds for c in run.cases if c.guest == guest and c.observed.value in
               ("passed", "failed")]
    if not seconds:
        return {}
    return {"count": len(seconds), "median_s": round(statistics.median(seconds), 3),
            "p95_s": round(percentile(seconds, 0.95), 3), "max_s": round(max(seconds), 3)}


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


def bench(settings: Settings, runtime: Any, log: Callable[[str], None] = print,
          machines: str = "") -> dict[str, Any]:
    fresh = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=settings.cache_dir.parent))
    try:
        if (settings.cache_dir / "debian").is_dir():
            shutil.copytree(settings.cache_dir / "debian", fresh / "debian", symlinks=True)
        cold = dataclasses.replace(settings, cache_dir=fresh)
        if machines:
            cold = dataclasses.replace(cold, matrix=dataclasses.replace(cold.matrix,
                                                                        machines=machines))
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        # 1. the default matrix, cold: every build from nothing, then every case
        _, cold_matrix_s = _timed(lambda: run_matrix(cold, runtime,
                                                     MatrixOptions(run_id=f"bench-{stamp}-cold"),
                                                     log))
        cold_run = RunResults.load(cold.reports_dir / f"bench-{stamp}-cold" / "results.json")
        builds = cold_run.builds
        first = next(iter(builds.values()))
        same_tree = [b for b in builds.values() if b.get("family") == first.get("family")]
        without = next(b for b in same_tree if not b.get("incremental_from"))
        with_fix = [b for b in same_tree if b.get("incremental_from")]
        # 2. a repeated identical build: a cache hit
        spec = settings.builds[with_fix[0]["name"]] if with_fix else settings.builds[without["name"]]
        _, repeat_s = _timed(lambda: Pipeline(runtime, cold, log=lambda line: None).build(spec))
        # 3. the default matrix again, nothing changed
        _, warm_matrix_s = _timed(lambda: run_matrix(cold, runtime,
                                                     MatrixOptions(run_id=f"bench-{stamp}-warm"),
                                                     log))
        warm_run = RunResults.load(cold.reports_dir / f"bench-{stamp}-warm" / "results.json")
        cold_build = float(without["seconds"])
        fix_build = float(with_fix[0]["seconds"]) if with_fix else float("nan")
        synthetic = case_stats(warm_run, "synthetic")
        cases_only = sum(c.seconds for c in warm_run.cases if c.guest == "synthetic")
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = {
            "date": stamp, "machine": machine(),
            "cold_build": {"build": without["name"], "seconds": cold_build,
                           "qemu": without.get("qemu_version")},
            "with_fix_build": {"build": with_fix[0]["name"] if with_fix else "",
                               "seconds": fix_build,
                               "ratio_to_cold": round(fix_build / cold_build, 4),
                               "recompiled": with_fix[0].get("compiled", []) if with_fix else []},
            "repeated_build_cache_hit_s": repeat_s,
            "pair_ratio_to_cold": round((cold_build + fix_build) / cold_build, 4),
            "builds": {n: {"seconds": b.get("seconds"), "incremental_from": b.get("incremental_from")}
                       for n, b in builds.items()},
            "synthetic_case": synthetic,
            "matrix_cases_per_s": round(len(warm_run.cases) / warm_matrix_s, 2),
            "synthetic_case_seconds_sum": round(cases_only, 1),
            "linux_case": case_stats(warm_run, "linux"),
            "matrix_cold_s": cold_matrix_s, "matrix_warm_s": warm_matrix_s,
            "matrix_cases": len(warm_run.cases), "jobs": cold.matrix.jobs or os.cpu_count(),
            "peak_rss_mib": {"patchcheck": round(self_rss / 1024, 1),
                             "children": round(child_rss / 1024, 1)},
        }
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    path = settings.reports_dir / f"bench-{stamp}.json"
    write_json(path, result)
    print(table(result))
    print(f"recorded: {path}")
    return result


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    syn, lin = r["synthetic_case"], r["linux_case"]
    rows = [
        ("machine", f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}"),
        ("cold build", f"{r['cold_build']['build']}: {r['cold_build']['seconds']:.0f} s"),
        ("with-fix build after it", f"{r['with_fix_build']['seconds']:.1f} s "
                                    f"({r['with_fix_build']['ratio_to_cold']:.3f}x cold)"),
        ("repeated identical build", f"{r['repeated_build_cache_hit_s']:.1f} s (cache hit)"),
        ("pair (without + with fix)", f"{r['pair_ratio_to_cold']:.3f}x one cold build"),
        ("synthetic case", f"median {syn.get('median_s', 0):.2f} s, p95 {syn.get('p95_s', 0):.2f} s"
                           f" over {syn.get('count', 0)} cases"),
        ("matrix throughput (warm, all guests + probe)", f"{r['matrix_cases_per_s']:.1f} cases/s with "
                                     f"{r['jobs']} jobs"),
        ("linux-guest case", f"median {lin.get('median_s', 0):.1f} s" if lin else "not run"),
        ("default matrix cold", f"{r['matrix_cold_s']:.0f} s ({r['matrix_cases']} cases)"),
        ("default matrix warm", f"{r['matrix_warm_s']:.0f} s"),
        ("peak memory", f"patchcheck {r['peak_rss_mib']['patchcheck']} MiB, largest child "
                        f"{r['peak_rss_mib']['children']} MiB (QEMUs run in containers)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)



