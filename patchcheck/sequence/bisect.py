"""`invoke bisect --repo R --good A --bad B --case C`: the first commit where a case changes.

The case (casespec.py) is run at A and at B; their outcomes become git bisect's terms ("fails"
and "passes", in the order the history has them). Then `git bisect run` drives patchcheck's
own predicate (`python -m patchcheck.sequence.bisect_step`) in a worktree of patchcheck's mirror of R:
the user's checkout and its bisect state are never touched. The predicate builds the commit
as it is (incrementally from the nearest cached build), runs the case and answers with the
term (exit 0 old, 1 new), 125 when the commit cannot be built or the case failed with
another error than the bug's or was flaky (skipped), 255 (abort) on an infrastructure
error. Every step is logged (steps.jsonl: commit, build seconds, outcome) and the answer is
written to reports/<run-id>/bisect.json and bisect.md.

An interrupted bisection resumes: the same repository, ends, case and scenario find their
worktree (under <cache>/bisect/) with git's bisect state in it and go on from there.

Exit codes: 0 the commit was found; 1 the case has the same outcome at both ends, or an end
shows neither (failed with another error, flaky): nothing to bisect; 125 an end cannot be
built; 3 infrastructure errors; 2 bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from patchcheck import paths
from patchcheck.config.settings import Settings
from patchcheck.engine.registry import RuntimeFactory
from patchcheck.errors import InfraError
from patchcheck.exit_codes import EXIT_INFRA, EXIT_OK
from patchcheck.sequence.casespec import CaseSpec
from patchcheck.sequence.step import Step, evaluate
from patchcheck.source import gitcmd
from patchcheck.source.commits import History, check_clean
from patchcheck.source.specs import GitSources
from patchcheck.verdict.sequence import TERMS, bisect_ends


@dataclass
class BisectResult:
    run_id: str
    repo: str
    case: str
    scenario: str
    good: str
    bad: str
    terms: dict[str, str] = field(default_factory=dict)  # old, new
    ends: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    first: str = ""  # the answer: the first commit with the new outcome
    subject: str = ""
    message: str = ""
    exit_code: int = EXIT_INFRA

    def text(self) -> str:
        lines = [f"bisect {self.repo} {self.good}..{self.bad}: {self.case} "
                 f"(scenario {self.scenario})"]
        for n, s in enumerate(self.steps, 1):
            lines.append(f"  step {n}: {s['commit'][:12]} {s['outcome']:<10} build "
                         f"{s['build_seconds']:.1f} s ({s['build']})  {s['subject'][:60]}")
        if self.first:
            lines.append(f"first commit where the case {self.terms.get('new', '')}: "
                         f"{self.first[:12]} {self.subject} ({len(self.steps)} steps)")
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)


def state_dir(settings: Settings, mirror: str, good: str, bad: str, case: CaseSpec) -> Path:
    key = json.dumps([mirror, good, bad, str(case), settings.matrix.scenario])
    return settings.cache_dir / "bisect" / hashlib.sha256(key.encode()).hexdigest()[:16]


def bisect(settings: Settings, config_tree: dict[str, Any], runtime_factory: RuntimeFactory,
           repo: str, good: str, bad: str, case: CaseSpec, run_id: str,
           log: Callable[[str], None] = print) -> int:
    check_clean(repo, (good, bad))
    history = History(GitSources(settings.cache_dir), repo)
    a, b = history.ordered(good, bad)
    print(f"good: {a.commit} ({good}), bad: {b.commit} ({bad})")
    outdir = paths.run_dir(settings.reports_dir, run_id)
    outdir.mkdir(parents=True, exist_ok=True)
    result = BisectResult(run_id, repo, str(case), settings.matrix.scenario,
                          f"{good} ({a.commit[:12]})", f"{bad} ({b.commit[:12]})")
    state = state_dir(settings, str(a.repo), a.commit, b.commit, case)
    state.mkdir(parents=True, exist_ok=True)
    steps_log = state / "steps.jsonl"
    try:
        with runtime_factory(run_id) as runtime:
            ends = [evaluate(settings, runtime, repo, t.commit, history.subject(t.commit), case,
                             outdir / "steps", log) for t in (a, b)]
        result.ends = [asdict(e) for e in ends]
        stop = bisect_ends(ends)
        if stop is not None:
            result.exit_code, result.message = stop
            return result.exit_code
        result.terms = {"old": TERMS[ends[0].outcome], "new": TERMS[ends[1].outcome]}
        first = _run(history.mirror, state, a.commit, b.commit, result.terms, {
            "config": config_tree, "repo": repo, "case": str(case), "steps": str(steps_log),
            "terms": result.terms, "run_id": run_id, "outdir": str(outdir / "steps")}, log)
        result.steps = _read_steps(steps_log)
        result.first, result.subject = first, history.subject(first)
        result.exit_code = EXIT_OK
        _finish(history.mirror, state)
        return result.exit_code
    finally:
        result.steps = result.steps or _read_steps(steps_log)
        (outdir / "bisect.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        (outdir / "bisect.md").write_text(f"# patchcheck bisect {run_id}\n\n```\n"
                                          f"{result.text()}\n```\n")
        print(result.text())
        print(f"reports: {outdir}")


def _run(mirror: Path, state: Path, good: str, bad: str, terms: dict[str, str],
         predicate: dict[str, Any], log: Callable[[str], None]) -> str:
    """git bisect run in the state's worktree (made, or found in progress); the first new
    commit."""
    tree = state / "tree"
    (state / "predicate.json").write_text(json.dumps(predicate, indent=2))
    in_progress = tree.is_dir() and gitcmd.ok(tree, "bisect", "log")
    if not in_progress:
        _finish(mirror, state)
        Path(predicate["steps"]).unlink(missing_ok=True)  # a new bisection: a new step log
        gitcmd.out(mirror, "worktree", "add", "--force", "--detach", str(tree), bad)
        started = gitcmd.run(tree, "bisect", "start", f"--term-old={terms['old']}",
                             f"--term-new={terms['new']}", bad, good)
        if started.returncode != 0:
            raise InfraError(f"git bisect start: {started.stderr.strip() or started.stdout}")
    else:
        log(f"resuming the bisection in {tree}")
    # the predicate imports this very package, wherever it is installed (or not)
    env = {"PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]),
         *filter(None, [os.environ.get("PYTHONPATH", "")])])}
    predicate_cmd = [sys.executable, "-m", "patchcheck.sequence.bisect_step",
                     str(state / "predicate.json")]
    ready = subprocess.run([*predicate_cmd, "--ready"], env={**os.environ, **env},
                           capture_output=True, text=True, check=False)
    if ready.returncode != 0:  # an exit of 1 would be read as a verdict: never start so
        raise InfraError("the bisect predicate does not run: "
                         + (ready.stderr.strip().splitlines() or ["?"])[-1])
    # the user's scope: the predicate, its child, works on the user's repository too
    run = gitcmd.popen(tree, "bisect", "run", *predicate_cmd, user=True, env=env)
    assert run.stdout is not None
    output = []
    for line in run.stdout:
        output.append(line.rstrip())
        log(line.rstrip())
    if run.wait() != 0:
        raise InfraError("git bisect run stopped: " + (output[-1] if output else "no output"))
    for line in output:
        if line.endswith(f" is the first {terms['new']} commit"):
            return line.split()[0]
    raise InfraError("git bisect run ended without naming a commit: "
                     + (output[-1] if output else ""))


def _finish(mirror: Path, state: Path) -> None:
    """End a bisection and remove its worktree (the steps' log stays)."""
    tree = state / "tree"
    if tree.is_dir():
        gitcmd.run(tree, "bisect", "reset")
        if not gitcmd.ok(mirror, "worktree", "remove", "--force", str(tree)):
            shutil.rmtree(tree, ignore_errors=True)
    gitcmd.out(mirror, "worktree", "prune")


def _read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["bisect", "BisectResult", "Step"]
