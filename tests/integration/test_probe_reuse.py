"""Issue 19: the probe's reuse method (QEMUs reset between experiments) against the fresh
method (a new QEMU per experiment), on every build of both scenarios' default matrices and
every machine type the probe examines there: identical per-bit results (behaviour, values,
transitions, side effects, conformance, the trace op for op), identical reset values and
comparisons, and far fewer QEMUs. And the port I/O over qtest against the monitor's HMP
`o`/`i` commands, the transport the probe used before: identical results too."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from patchcheck.bench.probe import bits_of
from patchcheck.build.pipeline import Pipeline
from patchcheck.build.record import BuildRecord
from patchcheck.config import settings as config_mod
from patchcheck.config.settings import Settings
from patchcheck.engine.docker import DockerRuntime
from patchcheck.probe.model import ProbeRun
from patchcheck.probe.orchestrate import run_probe

from .conftest import project_config

pytestmark = pytest.mark.integration


def _settings(scenario: str, method: str) -> Settings:
    cfg = project_config()
    cfg["patchcheck"].setdefault("matrix", {})["scenario"] = scenario
    settings = config_mod.load(cfg)
    return dataclasses.replace(settings,
                               matrix=dataclasses.replace(settings.matrix, probe_method=method))


def _comparisons(run: ProbeRun) -> list[Any]:
    return [(c.without, c.with_fix, c.machine, [dataclasses.asdict(x) for x in c.changes])
            for c in (*run.pairs, *run.versions)]


@pytest.mark.parametrize("scenario", ["pds", "aer"])
def test_reuse_gives_the_fresh_results_on_every_build(scenario: str,
                                                      runtime: DockerRuntime) -> None:
    settings = _settings(scenario, "fresh")
    pipeline = Pipeline(runtime, settings, log=lambda line: None)
    records: dict[str, BuildRecord] = {name: pipeline.build(settings.builds[name])
                                       for name in settings.matrix.builds}
    runs = {method: run_probe(_settings(scenario, method), runtime, records,
                              log=lambda line: None, jobs=2)
            for method in ("fresh", "reuse")}
    fresh, reuse = runs["fresh"], runs["reuse"]
    assert not fresh.errors and not reuse.errors
    keys = [(p.build, p.machine) for p in fresh.probes]
    assert keys == [(p.build, p.machine) for p in reuse.probes] and len(keys) >= len(records)
    for a, b in zip(fresh.probes, reuse.probes, strict=True):
        assert (a.method, b.method) == ("fresh", "reuse")
        assert a.qemus == a.experiments > 0  # one QEMU per experiment
        assert not a.errors and not b.errors, (a.errors, b.errors)
        assert (a.reset, a.cap_offset, a.root_port) == (b.reset, b.cap_offset, b.root_port)
    assert bits_of(fresh) == bits_of(reuse)  # every bit of every probe, timing aside
    assert _comparisons(fresh) == _comparisons(reuse)
    launched = {m: sum(p.qemus for p in runs[m].probes) for m in runs}
    assert launched["reuse"] * 4 < launched["fresh"], launched


def test_port_io_over_qtest_gives_the_hmp_results(runtime: DockerRuntime) -> None:
    """Every pds build (the scenario probed through legacy port I/O), fresh QEMUs, by both
    transports."""
    settings = _settings("pds", "fresh")
    pipeline = Pipeline(runtime, settings, log=lambda line: None)
    records = {name: pipeline.build(settings.builds[name]) for name in settings.matrix.builds}
    runs = {io: run_probe(settings, runtime, records, log=lambda line: None, jobs=2, port_io=io)
            for io in ("hmp", "qtest")}
    hmp, qtest = runs["hmp"], runs["qtest"]
    assert not hmp.errors and not qtest.errors and len(hmp.probes) >= len(records)
    for a, b in zip(hmp.probes, qtest.probes, strict=True):
        assert not a.errors and not b.errors, (a.errors, b.errors)
        assert (a.build, a.machine, a.reset) == (b.build, b.machine, b.reset)
    assert bits_of(hmp) == bits_of(qtest)
    assert _comparisons(hmp) == _comparisons(qtest)
