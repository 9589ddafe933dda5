"""What each invoke task does, usable without invoke: settings + options -> exit code.

`guarded` is the single place where errors become one line on stderr and an exit code.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from patchcheck import paths
from patchcheck.config import settings as config_mod
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.registry import connect, container_runtime
from patchcheck.errors import (
    DiskFull,
    InfraError,
    PatchcheckError,
    UsageError,
    error_line,
    interrupt,
    is_no_space,
)
from patchcheck.exit_codes import EXIT_DEVIATION, EXIT_INFRA, EXIT_OK, exit_code_for_error
from patchcheck.source import specs as sources
from patchcheck.tree import fixes


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def guarded(func: Callable[..., int], invoke_config: Any, *args: Any,
            no_verdict: int = EXIT_INFRA, **kwargs: Any) -> int:
    """Run a command; map every failure to one line on stderr and an exit code.
    `no_verdict`: the task's code for "no verdict" (infrastructure errors, an interruption,
    an unexpected exception, whose traceback goes to a log file named on that line)."""
    # SIGTERM (a CI job's time limit) and SIGHUP (the terminal closed) stop the run as
    # Ctrl-C does: what finished is reported, marked partial, and --resume completes it.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    settings: Settings | None = None
    try:
        settings = config_mod.load(invoke_config)
        return func(settings, *args, **kwargs)
    except PatchcheckError as exc:
        print(error_line(exc), file=sys.stderr)
        code = exit_code_for_error(exc)
        return no_verdict if code == EXIT_INFRA else code
    except KeyboardInterrupt:
        print("patchcheck: interrupted; partial results were written", file=sys.stderr)
        return no_verdict
    except OSError as exc:
        if not is_no_space(exc):
            return unexpected(exc, settings, no_verdict)
        # a write that no stage turned into a DiskFull of its own: still one line, exit 3
        where = f" ({exc.filename})" if exc.filename else ""
        print(error_line(DiskFull(f"no space left on device{where}: free space and run "
                                  "again")), file=sys.stderr)
        return no_verdict
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, the traceback kept
        return unexpected(exc, settings, no_verdict)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def unexpected(exc: BaseException, settings: Settings | None, no_verdict: int) -> int:
    """A bug of ours: one line naming the log its traceback went to."""
    where = crash_log(exc, settings.cache_dir if settings is not None else None)
    print(f"patchcheck: unexpected error: {type(exc).__name__}: {exc}".splitlines()[0]
          + f" (traceback: {where}; exit {no_verdict}: no verdict)", file=sys.stderr)
    return no_verdict


def crash_log(exc: BaseException, cache_dir: Path | None) -> Path:
    """Write the exception's traceback to a new file (under the cache, else the system's
    temporary directory) and return its path."""
    import tempfile
    import traceback

    directory = cache_dir / "crashes" if cache_dir is not None else None
    try:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="patchcheck-", suffix=".log", dir=directory)
    except OSError:
        fd, name = tempfile.mkstemp(prefix="patchcheck-", suffix=".log")
    with open(fd, "w") as out:
        out.write("".join(traceback.format_exception(exc)))
    return Path(name)


def images(settings: Settings, generation: str = "") -> int:
    from patchcheck.engine import images as images_mod
    from patchcheck.run.matrix import new_run_id

    gens = [generation] if generation else images_mod.generations(settings.containers_dir)
    with container_runtime(settings, new_run_id()) as runtime:
        imgs = images_mod.Images(runtime, settings, log)
        for gen in gens:
            image_id = imgs.builder(gen)
            print(f"{images_mod.builder_tag(gen)} {image_id}")
    return EXIT_OK


def base(settings: Settings, suite: str) -> int:
    from patchcheck.engine import images as images_mod
    from patchcheck.run.matrix import new_run_id

    suites = [suite] if suite else images_mod.generations(settings.containers_dir)
    with container_runtime(settings, new_run_id()) as runtime:
        imgs = images_mod.Images(runtime, settings, log)
        for s in suites:
            images_mod.dockerfile(settings.containers_dir, s)
            imgs.base(f"debian:{s}")
            print(f"debian:{s} {runtime.image_id(f'debian:{s}')}")
    return EXIT_OK


def build(settings: Settings, source: str, fix: str, name: str = "", refresh: bool = False) -> int:
    from patchcheck.build.pipeline import Pipeline
    from patchcheck.run.matrix import new_run_id

    spec = _build_spec(settings, source, fix, name)
    parsed = sources.parse_spec(spec.source)  # bad input is reported before the engine is contacted
    fixes.resolve(spec.fix, fixes.known_fixes(settings.matrix.scenario))
    if isinstance(parsed, sources.GitSpec):
        sources.GitSources(settings.cache_dir).mirror(parsed.url)  # a bad repository, too
    with container_runtime(settings, new_run_id()) as runtime:
        record = Pipeline(runtime, settings, log, refresh=refresh).build(spec)
    print(record.binary)
    return EXIT_OK


def _build_spec(settings: Settings, source: str, fix: str, name: str) -> BuildSpec:
    """--source SPEC [--fix STATE] (--name is then only a label), or --name of a configured
    build."""
    if source:
        return BuildSpec(name or f"{source}/{fix}", source, fix)
    if not name:
        raise UsageError("build: give --source SPEC or --name of a configured build")
    if name not in settings.builds:
        raise UsageError(f"build: no build named '{name}' is configured (configured: "
                         f"{', '.join(settings.builds) or 'none'}; see patchcheck.builds)")
    return settings.builds[name]


def _git_repository(path: str, what: str) -> None:
    from patchcheck.source import gitcmd

    if not gitcmd.is_repository(path):
        raise UsageError(f"{what} {path} is not a git repository")


def check(settings: Settings, repo: str, commit: str, patch: str) -> int:
    from patchcheck.run.matrix import new_run_id
    from patchcheck.sequence.check import check as check_commit

    if not repo or not commit:
        raise UsageError("check: give --repo PATH and --commit REV")
    if not Path(repo).is_dir():
        raise UsageError(f"check: --repo {repo} is not a directory")
    _git_repository(repo, "check: --repo")
    sources.parse_spec(f"git:{repo}@{commit}")
    with container_runtime(settings, new_run_id()) as runtime:
        return check_commit(settings, runtime, str(Path(repo).resolve()), commit, patch, log)


def nightly(settings: Settings, remote: str, refs: tuple[str, ...], fix: str, shard: str,
            run_id: str, build_only: bool, history: bool, machines: str | None,
            artifact_out: str = "", artifact_in: str = "") -> int:
    import dataclasses

    from patchcheck.build import artifacts
    from patchcheck.build.pipeline import Pipeline
    from patchcheck.commands import nightly as nightly_mod
    from patchcheck.run.matrix import MatrixOptions, new_run_id, plan, run_matrix

    remote = remote or settings.nightly.remote
    if not remote:
        raise UsageError("nightly: no remote (set patchcheck.nightly.remote or --remote)")
    if run_id:
        paths.check_run_id(run_id)  # before the remote is fetched
    known = fixes.known_fixes(settings.matrix.scenario)
    fix = fix or settings.nightly.fix or (known.names[0] if known.names else "")
    if not fix:
        raise UsageError(f"nightly: scenario {known.scenario} knows no fix: give --fix")
    fixes.resolve(fix, known)
    labels = nightly_mod.tracked_refs(settings, remote, refs or settings.nightly.refs)
    builds = nightly_mod.nightly_builds(remote, labels, fix)
    local = nightly_mod.nightly_settings(settings, builds)
    if machines is not None:
        local = dataclasses.replace(local, matrix=dataclasses.replace(local.matrix,
                                                                      machines=machines))
    if artifact_out and not build_only:
        raise UsageError("nightly: --export-to goes with --build-only (the build stage)")
    run_id = run_id or f"nightly-{new_run_id()}"
    opts = MatrixOptions(run_id=run_id, shard=shard)
    checked = plan(local, opts)
    with container_runtime(settings, run_id) as runtime:
        if build_only:
            pipeline = Pipeline(runtime, local, log)
            records = {name: pipeline.build(spec) for name, spec in builds.items()}
            if artifact_out:
                artifacts.export_builds(records, builds, local.matrix.scenario, runtime,
                                        Path(artifact_out))
                log(f"exported {len(records)} builds to {artifact_out} "
                    f"({Path(artifact_out).stat().st_size / 2**20:.1f} MiB)")
            return EXIT_OK
        if artifact_in:
            pins = artifacts.pins_path(local.cache_dir, run_id)
            artifacts.import_builds(Path(artifact_in), local.cache_dir, runtime, pins, log)
            local = dataclasses.replace(local, imported=pins)
            missing = [n for n, spec in builds.items() if artifacts.pinned(
                pins, local.cache_dir, spec, local.matrix.scenario) is None]
            if missing:
                raise InfraError(f"build artifact {artifact_in} lacks {', '.join(missing)}: "
                                 "it was made for other refs or another scenario")
        code = run_matrix(local, runtime, opts, log, checked)
    if history and not shard:
        nightly_mod.record_history(settings.reports_dir,
                                   paths.run_dir(settings.reports_dir, run_id), log)
    return code


def history(settings: Settings, run: str) -> int:
    from patchcheck.commands import nightly as nightly_mod
    from patchcheck.report.regenerate import run_dir_of

    run_dir = run_dir_of(settings.reports_dir, run)
    nightly_mod.record_history(settings.reports_dir, run_dir.resolve(), log)
    return EXIT_OK


def clean(settings: Settings, older_than: str, everything: bool) -> int:
    from patchcheck.commands.clean import clean as clean_caches
    from patchcheck.engine.runtime import Runtime
    from patchcheck.run.matrix import new_run_id

    days = _number(older_than, "--older-than", float, minimum=0)
    try:
        runtime: Runtime | None = connect(settings, f"clean-{new_run_id()}")
    except InfraError as exc:  # no engine: clean the caches only
        runtime = None
        log(f"{exc}: leftover containers not checked")
    try:
        clean_caches(settings.cache_dir, days, everything, runtime, log)
    finally:
        if runtime is not None:
            runtime.close()
    return EXIT_OK


def probe(settings: Settings, builds: tuple[str, ...] = (), machines: tuple[str, ...] = ()) -> int:
    from patchcheck.commands.probe import probe_command
    from patchcheck.probe.orchestrate import check_builds
    from patchcheck.run.matrix import new_run_id

    check_builds(settings, builds, machines)  # usage errors before the engine is contacted
    with container_runtime(settings, f"probe-{new_run_id()}") as runtime:
        return probe_command(settings, runtime, list(builds), list(machines), log)


def _repeat(text: str) -> int:
    """A bench's --repeat: a whole number >= 1."""
    try:
        runs = int(text)
    except ValueError:
        runs = 0
    if runs < 1:
        raise UsageError(f"--repeat '{text}': expected a whole number >= 1")
    return runs


def bench(settings: Settings, machines: str, repeat: str = "3", first_run: bool = False) -> int:
    from patchcheck.bench.figures import bench as run_bench
    from patchcheck.run.matrix import new_run_id

    runs = _repeat(repeat)
    if machines:
        from patchcheck.qemu.machine_types import check_filter

        check_filter(machines)
    with container_runtime(settings, f"bench-{new_run_id()}") as runtime:
        run_bench(settings, runtime, log, machines, runs, first_run)
    return EXIT_OK


def bench_probe(settings: Settings, repeat: str = "3") -> int:
    from patchcheck.bench.probe import bench_probe as run_bench
    from patchcheck.run.matrix import new_run_id

    runs = _repeat(repeat)
    with container_runtime(settings, f"bench-{new_run_id()}") as runtime:
        result = run_bench(settings, runtime, log=log, repeat=runs)
    return EXIT_OK if result["identical"] else EXIT_DEVIATION


def bench_sweep(settings: Settings, build: bool = True) -> int:
    from patchcheck.bench.sweep import bench_sweep as run_bench
    from patchcheck.run.matrix import new_run_id

    with container_runtime(settings, f"bench-{new_run_id()}") as runtime:
        result = run_bench(settings, runtime, log=log, build=build)
    ratio = result["ratio_cpu"]
    return EXIT_OK if ratio is None or ratio <= result["goal"] else EXIT_DEVIATION


def bench_trust(settings: Settings, repeat: str = "3") -> int:
    from patchcheck.bench.trust import bench_trust as run_bench
    from patchcheck.run.matrix import new_run_id

    with container_runtime(settings, f"bench-{new_run_id()}") as runtime:
        run_bench(settings, runtime, repeat=_repeat(repeat), log=log)
    return EXIT_OK


def bench_upstream(settings: Settings, repo: str, ref: str = "v7.2.0") -> int:
    from patchcheck.bench.upstream import bench_upstream as run_bench
    from patchcheck.run.matrix import new_run_id

    if not repo:
        raise UsageError("bench.upstream: give --repo (a clone or URL of upstream QEMU)")
    sources.parse_spec(f"git:{repo}@{ref}")
    with container_runtime(settings, f"bench-{new_run_id()}") as runtime:
        run_bench(settings, runtime, repo, ref, log=log)
    return EXIT_OK


def report(settings: Settings, run: str, open_: bool) -> int:
    from patchcheck.report.regenerate import report_command

    return report_command(settings.reports_dir, run or None, open_)


def merge(settings: Settings, runs: list[str], out: str) -> int:
    from patchcheck.report.merge import merge as merge_runs
    from patchcheck.run.matrix import new_run_id

    dirs = _merge_inputs(settings.reports_dir, runs)
    out_dir = paths.run_dir(settings.reports_dir, out or f"merged-{new_run_id()}", "--out")
    if any(d.resolve() == out_dir.resolve() for d in dirs):
        raise UsageError(f"report.merge: --out {out} is one of the runs being merged; "
                         "choose a new run id")
    merged = merge_runs(dirs, out_dir)
    print(f"merged {len(dirs)} runs, {len(merged.cases)} cases -> {out_dir}")
    if merged.settings.get("probe_from"):
        from patchcheck.verdict.decision import read_semantics

        print(f"Register semantics (probe of {merged.settings['probe_from']}): "
              f"{read_semantics(out_dir).summary}")
    return EXIT_OK


def _merge_inputs(reports_dir: Path, runs: list[str]) -> list[Path]:
    """Each --run: a run id, a pattern of run ids (the shard runs of a pipeline: 'shard-*';
    never `latest`), or the path of a run directory."""
    from patchcheck.report.regenerate import run_dir_of

    dirs: list[Path] = []
    for r in runs:
        if "/" not in r and any(ch in r for ch in "*?["):
            paths.check_pattern(r, "report.merge: --run")
            found = sorted(p for p in reports_dir.glob(r)
                           if p.is_dir() and p.name not in paths.RESERVED_RUN_IDS)
            if not found:
                raise UsageError(f"report.merge: '{r}' matches no run in {reports_dir}")
            dirs += found
        else:
            dirs.append(run_dir_of(reports_dir, r))
    return dirs


def _number(text: Any, option: str, kind: Callable[[str], Any], minimum: float) -> Any:
    if text in (None, ""):
        return None
    try:
        value = kind(str(text))
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a number") from None
    if value < minimum:
        raise UsageError(f"{option} {text}: must be >= {minimum:g}")
    return value


def matrix(settings: Settings, **options: Any) -> int:
    from patchcheck.run.matrix import MatrixOptions, new_run_id, plan, run_matrix

    options["jobs"] = _number(options.get("jobs"), "--jobs", int, minimum=1)
    options["timeout"] = _number(options.get("timeout"), "--timeout", float, minimum=1)
    if options.get("run_id"):
        paths.check_run_id(options["run_id"])
    if options.get("resume"):
        options["run_id"] = _resumed_run(settings.reports_dir, options["resume"],
                                         options.get("run_id") or "")
        options["resume"] = True
    opts = MatrixOptions(**{**options, "run_id": options.get("run_id") or new_run_id()})
    checked = plan(settings, opts)
    with container_runtime(settings, opts.run_id) as runtime:
        return run_matrix(settings, runtime, opts, log, checked)


def _resumed_run(reports_dir: Path, resume: str | bool, run_id: str) -> str:
    """The run `--resume [RUN]` continues: RUN, else --run-id, else the latest run."""
    if isinstance(resume, str) and resume != "latest":
        run_id = resume
    elif not run_id or resume == "latest":
        latest = reports_dir / "latest"
        if not latest.exists():
            raise UsageError(f"--resume: no earlier run in {reports_dir}; give --resume RUN")
        run_id = latest.resolve().name
    if not paths.run_dir(reports_dir, run_id, "--resume").is_dir():
        raise UsageError(f"--resume: no run {run_id} in {reports_dir}")
    return run_id
