"""The predicate `invoke bisect` gives `git bisect run`: python -m patchcheck.sequence.bisect_step
PREDICATE.json, in the bisection's worktree (its HEAD is the commit to test).

Exit: 0 the case has the old term's outcome, 1 the new one's, 125 the commit cannot be built
or the case failed with another error than the bug's or was flaky (git bisect skips it), 255
anything else (git bisect run stops; the bisection can resume).
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from patchcheck.config import settings as config_mod
from patchcheck.engine.registry import container_runtime
from patchcheck.errors import PatchcheckError, interrupt
from patchcheck.sequence.casespec import parse
from patchcheck.sequence.step import evaluate
from patchcheck.source import gitcmd
from patchcheck.verdict.sequence import SKIPPED, step_code

ABORT = 255


def main(argv: list[str]) -> int:
    """Every failure that is not a verdict aborts the bisection (an uncaught exception's
    exit status 1 would read as the new term)."""
    signal.signal(signal.SIGTERM, interrupt)  # a clean stop: our containers are removed
    try:
        predicate = json.loads(Path(argv[1]).read_text())
        if argv[2:] == ["--ready"]:
            return 0
        return _step(predicate)
    except BaseException as exc:  # noqa: BLE001 - see above
        print(f"patchcheck: bisect step failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ABORT


def _step(predicate: dict[str, Any]) -> int:
    here = Path.cwd()  # git bisect run's worktree
    head = gitcmd.out(here, "rev-parse", "HEAD")
    subject = gitcmd.subject(here, head)  # as the ends' (History.subject)
    settings = config_mod.load({"patchcheck": predicate["config"]})
    case = parse(predicate["case"])
    try:
        with container_runtime(settings, f"{predicate['run_id']}-{head[:8]}") as runtime:
            step = evaluate(settings, runtime, predicate["repo"], head, subject, case,
                            Path(predicate["outdir"]), print)
    except PatchcheckError as exc:
        print(f"patchcheck: step {head[:12]}: {exc}", file=sys.stderr)
        return ABORT
    with open(predicate["steps"], "a") as steps:
        steps.write(json.dumps(asdict(step)) + "\n")
    print(f"patchcheck: {head[:12]} {step.outcome} (build {step.build}, "
          f"{step.build_seconds:.1f} s) {subject}")
    code = step_code(step.outcome, predicate["terms"])
    if step.outcome in SKIPPED:  # another error masks the watched
        # outcome, a flaky case has none: git bisect skips the commit
        print(f"patchcheck: {head[:12]}: the case ended {step.outcome}: {step.message}; "
              "skipped", file=sys.stderr)
    if code is not None:
        return code
    print(f"patchcheck: {head[:12]}: the case ended {step.outcome}: {step.message}",
          file=sys.stderr)
    return ABORT


if __name__ == "__main__":
    sys.exit(main(sys.argv))
