"""One bisection step: the commit under test built as it is, and the watched case run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed
from patchcheck.run.matrix import new_run_id, small_matrix
from patchcheck.sequence.casespec import SELF, CaseSpec
from patchcheck.tree.fixes import AS_IS


@dataclass
class Step:
    commit: str
    subject: str
    outcome: str = ""  # passed | failed | failed-other | flaky | error | untestable
    build: str = ""  # cached | from scratch | incremental from <commit>, N object(s) | FAILED
    build_seconds: float = 0.0
    compiled: int = 0  # objects compiled (an incremental build)
    fix: str = ""  # the known fix the commit carries, or none
    seconds: float = 0.0
    message: str = ""
    run_dir: str = ""


def evaluate(settings: Settings, runtime: Runtime, repo: str, commit: str, subject: str,
             case: CaseSpec, outdir: Path, log: Callable[[str], None]) -> Step:
    started = time.monotonic()
    step = Step(commit, subject)
    own = BuildSpec(SELF, f"git:{repo}@{commit}", AS_IS)
    try:
        record = Pipeline(runtime, settings, log).build(own)
    except BuildFailed as exc:
        step.outcome, step.build, step.message = "untestable", "FAILED", str(exc)
        step.seconds = round(time.monotonic() - started, 1)
        return step
    step.build_seconds = 0.0 if record.cached else record.seconds
    step.compiled = len(record.compiled)
    step.fix = str(record.fix.get("patch") or "none")
    step.build = ("cached" if record.cached else
                  f"incremental from {record.base_commit[:12]}, {step.compiled} object(s)"
                  if record.base else "from scratch")
    builds = {SELF: own, **{n: settings.builds[n] for n in case.others}}
    run, run_dir = small_matrix(settings, runtime, builds,
                                [f"{case.source}->{case.destination}"],
                                {case.guest: case.machine}, f"{commit[:12]}-{new_run_id()}",
                                log, machines=case.machine, semantics=False,
                                reports_dir=outdir)
    step.run_dir = str(run_dir)
    found = [r for r in run.cases if r.case == case.case(SELF)]
    if not found:
        step.outcome, step.message = "error", f"the case {case} did not run"
    else:
        step.outcome, step.message = found[0].observed.value, found[0].message
    step.seconds = round(time.monotonic() - started, 1)
    return step
