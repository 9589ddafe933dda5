"""The benchmark's arithmetic and table (the numbers themselves live in reports/bench-*.json)."""

from __future__ import annotations

from patchcheck.bench.figures import case_stats, percentile, table
from patchcheck.result.model import RunResults
from patchcheck.result.outcome import Observed


def test_percentile_picks_from_the_data():
    assert percentile([5, 1, 4, 2, 3], 0.5) == 3
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([0.3], 0.95) == 0.3


def test_case_stats_ignore_errors_and_other_guests(make_result):
    def case(guest: str, seconds: float, observed: str = "passed"):
        return make_result("pc-q35-6.0", "7.2-none", "7.2-v2", observed, "passed", guest=guest,
                           seconds=seconds)
    cases = [case("synthetic", s) for s in (0.2, 0.3, 0.4)]
    cases.append(case("synthetic", 9.0, Observed.ERROR.value))
    cases.append(case("linux", 6.0))
    run = RunResults("r", {}, cases, "2026-01-01T00:00:00+00:00")
    assert case_stats(run, "synthetic") == {"count": 3, "median_s": 0.3, "p95_s": 0.4,
                                            "max_s": 0.4}
    assert case_stats(run, "linux")["median_s"] == 6.0
    assert case_stats(run, "none") == {}


def test_case_stats_split_linux_cases_by_whether_their_source_booted_for_them(make_result):
    def case(seconds: float, migration: int):
        r = make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed", guest="linux",
                        seconds=seconds)
        r.source_migration = migration
        return r
    run = RunResults("r", {}, [case(5.0, 1), case(4.0, 1), case(0.8, 2), case(0.6, 3)],
                     "2026-01-01T00:00:00+00:00")
    assert case_stats(run, "linux", source_migration=1)["median_s"] == 4.5
    assert case_stats(run, "linux", source_migration=2) == {"count": 2, "median_s": 0.7,
                                                             "p95_s": 0.8, "max_s": 0.8}


def test_table_states_ratios():
    r = {"machine": {"cpus": 2, "cpu": "x", "memory_gib": 24.0, "kernel": "6"},
         "cold_build": {"build": "7.2-none", "seconds": 200.0},
         "reference_cold_build": {"seconds": 400.0, "ratio_minimal_to_reference": 0.5},
         "with_fix_build": {"seconds": 3.0, "ratio_to_cold": 0.015},
         "repeated_build_cache_hit_s": 1.2, "pair_ratio_to_cold": 1.015,
         "synthetic_case": {"median_s": 0.3, "p95_s": 0.5, "count": 700},
         "matrix_cases_per_s": 5.1, "jobs": 2, "linux_case": {"median_s": 6.0},
         "matrix_cold_s": 900, "matrix_warm_s": 300, "matrix_cases": 800,
         "peak_rss_mib": {"patchcheck": 80, "children": 300},
         "cold_ratio_to_builds": 1.8, "cold_builds_s": 500.0,
         "cold_first_case_before_last_build": True, "matrix_warm_cpu_s": 240.0,
         "warm_cpu_ratio_to_cold_build": 1.6,
         "cold_build_alone": {"cpu_s": 150.0, "seconds": 90.0, "runs_s": [90.0, 80.4, 99.0],
                              "cpu_runs_s": [150.0, 130.0, 180.0]},
         "warm_cpu_ratio_runs": [1.733, 1.846, 1.279],
         "warm_wall_ratio_to_cpu_per_core": 1.25, "matrix_warm_runs_s": [310.0, 290.5, 300.0],
         "matrix_warm_cpu_runs_s": [260.0, 240.0, 230.2]}
    text = table(r)
    assert "= 1.8x its builds' 500 s (goal <= 2.0); a case done before the last build: True" \
        in text
    assert "240 CPU-s (median of 3: 260, 240, 230) = 1.60x one cold minimal build's 150 " \
        "CPU-s (median of 3: 150, 130, 180; goal <= 1.2; each run against the build before " \
        "it: 1.73x, 1.85x, 1.28x); wall 1.25x" in text
    assert "300 s (median of 3: 310, 290, 300;" in text
    assert "0.015x cold" in text and "1.015x one cold build" in text
    assert "7.2-none: 90 s alone (median of 3: 90, 80, 99), 200 s in the cold matrix" in text
    assert "median 0.30 s, p95 0.50 s over 700 cases" in text
    assert "400 s (minimal = 0.50x)" in text


def test_cpu_seconds_counts_busy_time_and_the_first_case_check(make_result):
    import time

    from patchcheck.bench.figures import _first_case_before_last_build, cpu_seconds
    from patchcheck.result.model import RunResults

    before = cpu_seconds()
    end = time.process_time() + 0.3
    while time.process_time() < end:  # 0.3 s of this process's CPU: the machine's count grows
        pass
    assert cpu_seconds() - before >= 0.25
    case = make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed")
    case.finished = "2026-12-03T07:00:01.000+00:00"
    run = RunResults("r", {"a": {"finished": "2026-12-03T07:00:00.000+00:00"},
                           "b": {"finished": "2026-12-03T07:00:05.000+00:00"}}, [case], "")
    assert _first_case_before_last_build(run) is True
    run.builds["b"]["finished"] = "2026-12-03T07:00:00.500+00:00"
    assert _first_case_before_last_build(run) is False


def test_cpu_timing_writes_back_before_the_clock_starts_and_before_it_stops(monkeypatch):
    from patchcheck.bench import figures as bench

    events: list[str] = []
    busy = iter([10.0, 14.5])
    monkeypatch.setattr(bench.os, "sync", lambda: events.append("sync"))
    monkeypatch.setattr(bench, "cpu_seconds", lambda: events.append("cpu") or next(busy))
    result, _wall, cpu = bench._cpu_timed(lambda: events.append("work") or 7)
    assert (result, cpu) == (7, 4.5)
    assert events == ["sync", "cpu", "work", "sync", "cpu"]


def test_a_first_run_bench_removes_only_the_images_patchcheck_made(tmp_path):
    from patchcheck.bench.figures import remove_own_images
    from patchcheck.config.settings import MatrixSettings, Settings
    from tests.fakes import FakeRuntime

    runtime = FakeRuntime()
    runtime.images = {
        "patchcheck-builder:bookworm": {"org.patchcheck": "1"},
        "debian:bookworm": {"org.patchcheck": "1"},  # made by debootstrap
        "patchcheck-builder:trixie": {"org.patchcheck": "1"},
        "debian:trixie": {},  # pulled from a registry: not ours
        "debian:sid": {"org.patchcheck": "1"},  # no Dockerfile starts from it
    }
    matrix = MatrixSettings((), (), "", {}, True, 128, "tcg", 60.0, 0)
    settings = Settings(tmp_path, tmp_path / "reports", "", (), (), 0, {}, matrix)
    removed = remove_own_images(settings, runtime)
    assert sorted(removed) == ["debian:bookworm", "patchcheck-builder:bookworm",
                               "patchcheck-builder:trixie"]
    assert sorted(runtime.images) == ["debian:sid", "debian:trixie"]


def test_the_bench_alternates_cold_builds_and_warm_runs_and_compares_medians(
        monkeypatch, tmp_path, make_result):
    """The yardstick is the median of `repeat` cold builds, each measured just before a warm
    run (one build's CPU is no yardstick: it varies by a third within an hour)."""
    from types import SimpleNamespace

    from patchcheck.bench import figures as bench
    from patchcheck.config.settings import BuildSpec, MatrixSettings, Settings
    from tests.fakes import FakeRuntime

    events: list[str] = []
    alone = iter([(90.0, 150.0), (110.0, 190.0), (100.0, 170.0)])
    warm = iter([204.0, 187.0, 221.0])

    def run_matrix(settings, runtime, options, log):
        out = settings.reports_dir / options.run_id
        out.mkdir(parents=True)
        builds = {"7.2-none": {"name": "7.2-none", "family": "f", "seconds": 80.0},
                  "7.2-v2": {"name": "7.2-v2", "family": "f", "seconds": 3.0,
                             "incremental_from": "7.2-none"}}
        case = make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed")
        write = bench.RunResults(options.run_id, builds, [case], "")
        bench.write_json(out / "results.json", write.to_dict())
        events.append("cold" if options.run_id.endswith("-cold") else "warm")
        return 0

    def cpu_timed(func):
        result = func()
        return result, 1.0, next(warm) if events[-1] == "warm" else 500.0

    def alone_build(runtime, cold, name):
        events.append("alone")
        return next(alone)

    class Pipeline:
        def __init__(self, *args, **kwargs):
            pass

        def build(self, spec):
            return SimpleNamespace(seconds=300.0, devices="default")

    monkeypatch.setattr(bench, "run_matrix", run_matrix)
    monkeypatch.setattr(bench, "_cpu_timed", cpu_timed)
    monkeypatch.setattr(bench, "_alone_build", alone_build)
    monkeypatch.setattr(bench, "Pipeline", Pipeline)
    monkeypatch.setattr(bench.Settings, "full_configuration", lambda self: self)
    matrix = MatrixSettings((), (), "", {}, True, 128, "tcg", 60.0, 0)
    builds = {n: BuildSpec(n, "debian:bookworm", n.split("-")[1]) for n in ("7.2-none", "7.2-v2")}
    settings = Settings(tmp_path / "cache", tmp_path / "reports", "", (), (), 0, builds, matrix)
    (tmp_path / "cache").mkdir()
    result = bench.bench(settings, FakeRuntime(), log=lambda line: None, repeat=3)
    assert events == ["cold", "alone", "warm", "alone", "warm", "alone", "warm"]
    assert result["cold_build_alone"]["cpu_runs_s"] == [150.0, 190.0, 170.0]
    assert result["cold_build_alone"]["cpu_s"] == 170.0
    assert result["matrix_warm_cpu_s"] == 204.0
    assert result["warm_cpu_ratio_to_cold_build"] == 1.2  # 204 / 170: the medians
    assert result["warm_cpu_ratio_runs"] == [1.36, 0.984, 1.3]
    assert result["with_fix_build"]["ratio_to_cold"] == 0.03  # 3 s / the median's 100 s
