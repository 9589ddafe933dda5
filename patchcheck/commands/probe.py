"""`invoke probe`: the register-semantics probe of some builds, alone: build what is missing,
probe, write its reports and decide its exit code (verdict.probe)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed, UsageError
from patchcheck.paths import run_dir
from patchcheck.probe.model import ProbeRun
from patchcheck.probe.orchestrate import check_builds, run_probe
from patchcheck.report import probe_text
from patchcheck.verdict.probe import exit_code

Log = Callable[[str], None]


def probe_command(settings: Settings, runtime: Runtime, build_names: Sequence[str],
                  machines: Sequence[str], log: Log = print) -> int:
    """`invoke probe`: build what is missing, probe, write reports/<run-id>/probe.json,
    semantics.xml and probe.md; print the summary. Exit code: 0 no fix introduces a
    violation, 1 one does, 3 infrastructure errors (2, usage, is raised as UsageError)."""
    from patchcheck.build.pipeline import Pipeline

    names = check_builds(settings, build_names, machines)
    run_id = runtime.run_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    outdir = run_dir(settings.reports_dir, run_id)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"report directory {outdir} is not writable: {exc.strerror}") from None
    pipeline = Pipeline(runtime, settings, log)
    records: dict[str, BuildRecord] = {}
    failed: list[str] = []
    for name in names:
        try:
            records[name] = pipeline.build(settings.builds[name])
        except BuildFailed as exc:
            failed.append(f"build {name} failed: {exc}")
            log(f"[{name}] build failed: {exc}")
    run = run_probe(settings, runtime, records, machines, log, run_id=run_id, outdir=outdir) \
        if records else ProbeRun(run_id, datetime.now(UTC).isoformat(timespec="seconds"))
    run.errors += failed
    if set(names) - set(build_names) and build_names:
        run.notes.append("added the tree's without-fix build(s): "
                         + ", ".join(sorted(set(names) - set(build_names))))
    paths = probe_text.write(run, outdir)
    print(probe_text.text_summary(run))
    print(f"reports: {paths['markdown']} {paths['junit']} {paths['json']}")
    return exit_code(run)
