"""`invoke bench.sweep`: a full sweep of Debian's packaged QEMU 7.2 against 10.0 (every
common pc-q35 and pc-i440fx type, forward, backward and the control, the created and slot
actions) against its yardstick, one cold build of QEMU 7.2 with QEMU's default device set
in an empty cache (the goal: the sweep costs at most 2x its CPU-seconds). Records
reports/bench-sweep-<date>.json: cells per second, migrations per cell, the share of the
groups' time spent starting QEMUs. CPU is the machine's busy time (/proc/stat): the QEMUs
and the compiler run in containers."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from patchcheck.bench.figures import cpu_seconds, fresh_cache, machine, record
from patchcheck.build.packaged import packaged_side
from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.images import Images
from patchcheck.engine.runtime import Runtime
from patchcheck.result.cells import SweepResults
from patchcheck.run.sweep.sweep import SweepRequest, SweepRun

SIDES = ("debian-pkg:bookworm", "debian-pkg:trixie")
YARDSTICK = BuildSpec("7.2-default-devices", "debian:bookworm", "none")
GOAL = 2.0  # the sweep's CPU-seconds over the yardstick's


def measured(func: Callable[[], Any]) -> tuple[Any, float, float]:
    """func's result, wall and busy CPU seconds (dirty pages written back before and after)."""
    os.sync()
    cpu, begun = cpu_seconds(), time.monotonic()
    result = func()
    os.sync()
    return result, round(time.monotonic() - begun, 1), round(cpu_seconds() - cpu, 1)


def yardstick(settings: Settings, runtime: Runtime) -> dict[str, float]:
    cold = fresh_cache(settings, "bench-sweep-build-", settings.cache_dir)
    try:
        local = dataclasses.replace(settings, cache_dir=cold).full_configuration()
        _, wall, cpu = measured(lambda: Pipeline(runtime, local, log=lambda _: None)
                                .build(YARDSTICK))
    finally:
        shutil.rmtree(cold, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": cpu}


def full_sweep(settings: Settings, runtime: Runtime, log: Callable[[str], None]
               ) -> tuple[SweepResults, float, float]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    images = Images(runtime, settings, log)
    a, b = (packaged_side(runtime, images, s, s.removeprefix("debian-pkg:"), log) for s in SIDES)
    run = SweepRun(settings, runtime,
                   SweepRequest(a, b, settings.reports_dir / f"bench-sweep-{stamp}"),
                   log=lambda _: None)
    return measured(run.run)


def figures(results: SweepResults, wall: float, cpu: float,
            build: dict[str, float] | None) -> dict[str, Any]:
    cells = len(results.cells)
    f = results.figures
    return {
        "sweep": {"wall_s": wall, "cpu_s": cpu, "cells": cells,
                  "machine_types": len(results.machines), "device_types": len(results.devices),
                  "cells_per_s": round(cells / wall, 1) if wall else 0.0,
                  "migrations": results.migrations,
                  "migrations_per_cell": round(results.migrations / cells, 3) if cells else 0.0,
                  "qemu_starts": int(f.get("qemu_starts", 0)),
                  "qemu_start_share": round(f.get("qemu_start_seconds", 0)
                                            / f["group_seconds"], 3)
                  if f.get("group_seconds") else 0.0,
                  "findings_cells": sum(c.outcome == "failed" for c in results.cells)},
        "yardstick_build": build or {},
        "ratio_cpu": round(cpu / build["cpu_s"], 2) if build and build.get("cpu_s") else None,
        "goal": GOAL,
    }


def table(r: dict[str, Any]) -> str:
    s, b = r["sweep"], r["yardstick_build"]
    rows = [("full sweep, Debian 7.2 against 10.0", f"{s['wall_s']} s, {s['cpu_s']} CPU-s"),
            ("cells", f"{s['cells']} ({s['device_types']} device types, "
                      f"{s['machine_types']} machine types)"),
            ("cells per second", str(s["cells_per_s"])),
            ("migrations per cell", str(s["migrations_per_cell"])),
            ("share of the groups' time starting QEMUs", f"{100 * s['qemu_start_share']:.0f} %"),
            ("cold default-device-set build (7.2)",
             f"{b.get('wall_s', '-')} s, {b.get('cpu_s', '-')} CPU-s"),
            ("sweep CPU / build CPU", f"{r['ratio_cpu']} (goal <= {r['goal']})")]
    return "\n".join(["| figure | measured |", "| --- | --- |",
                      *(f"| {k} | {v} |" for k, v in rows)])


def bench_sweep(settings: Settings, runtime: Runtime, log: Callable[[str], None] = print,
                build: bool = True) -> dict[str, Any]:
    """Measure; record reports/bench-sweep-<date>.json and print the table."""
    stick = yardstick(settings, runtime) if build else None
    results, wall, cpu = full_sweep(settings, runtime, log)
    result = {"machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds"),
              **figures(results, wall, cpu, stick)}
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    record(settings.reports_dir / f"bench-sweep-{stamp}.json", result, table(result))
    return result
