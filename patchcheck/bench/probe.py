"""`invoke bench.probe`: the register-semantics probe of the default matrix by each method
(`fresh`: a new QEMU per experiment; `reuse`: QEMUs reset between experiments), alternated
`repeat` times on the same builds, with the proof that both give the same results;
recorded to reports/bench-probe-<date>.json.

Wall seconds are the probe's (with the vmstate comparisons, which both methods run the
same way); `patchcheck_cpu_s` is patchcheck's own process (the monitor round trips), not
the QEMUs, which run in containers and are no children of it.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from patchcheck.bench.figures import machine, record
from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.probe.model import ProbeRun
from patchcheck.probe.orchestrate import run_probe

METHODS = ("fresh", "reuse")


def bits_of(run: ProbeRun) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Every probed bit's result, without its timing: what two methods must agree on."""
    return {(p.build, p.machine, bit.register, bit.bit):
            {k: v for k, v in dataclasses.asdict(bit).items() if k != "seconds"}
            for p in run.probes for reg in p.registers for bit in reg.bits}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (not the containers' QEMUs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_probe(settings: Settings, runtime: Runtime, log: Callable[[str], None] = print,
                repeat: int = 3) -> dict[str, Any]:
    pipeline = Pipeline(runtime, settings, log)
    records = {name: pipeline.build(settings.builds[name]) for name in settings.matrix.builds}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    results: dict[str, ProbeRun] = {}
    for i in range(max(1, repeat)):
        for method in METHODS if i % 2 == 0 else tuple(reversed(METHODS)):
            chosen = dataclasses.replace(
                settings, matrix=dataclasses.replace(settings.matrix, probe_method=method))
            started, cpu = time.monotonic(), _cpu_seconds()
            run = run_probe(chosen, runtime, records, log=lambda line: None)
            runs[method].append({
                "seconds": round(time.monotonic() - started, 2),
                "patchcheck_cpu_s": round(_cpu_seconds() - cpu, 2),
                "experiments": sum(p.experiments for p in run.probes),
                "qemus": sum(p.qemus for p in run.probes),
                "errors": len(run.errors) + sum(len(p.errors) for p in run.probes)})
            results[method] = run
            log(f"[bench.probe] {method} #{i + 1}: {runs[method][-1]}")
    fresh, reuse = bits_of(results["fresh"]), bits_of(results["reuse"])
    differing = sorted(f"{b}@{m} {r}[{n}]" for (b, m, r, n) in fresh
                       if fresh[(b, m, r, n)] != reuse.get((b, m, r, n)))
    median = {m: statistics.median(r["seconds"] for r in runs[m]) for m in METHODS}
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    result = {
        "date": stamp, "machine": machine(), "scenario": settings.matrix.scenario,
        "builds": list(records), "jobs": settings.matrix.jobs or "2 x CPUs",
        "runs": runs, "median_s": median,
        "ratio_reuse_to_fresh": round(median["reuse"] / median["fresh"], 3),
        "bits_compared": len(fresh), "bits_differing": differing,
        "identical": not differing and set(fresh) == set(reuse),
    }
    record(settings.reports_dir / f"bench-probe-{stamp}.json", result, table(result))
    return result


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    rows = [("machine", f"{m['cpus']} CPUs ({m['cpu']}), kernel {m['kernel']}")]
    for method in METHODS:
        runs = r["runs"][method]
        rows.append((f"probe, {method}",
                     f"median {r['median_s'][method]:.1f} s of "
                     f"{', '.join(str(x['seconds']) for x in runs)}; "
                     f"{runs[0]['experiments']} experiments on {runs[0]['qemus']} QEMUs"))
    rows.append(("reuse / fresh", f"{r['ratio_reuse_to_fresh']:.2f}x"))
    rows.append(("same per-bit results", f"{'yes' if r['identical'] else 'NO'} "
                                         f"({r['bits_compared']} bits)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
