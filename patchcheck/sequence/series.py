"""`invoke series --repo R --range BASE..TIP`: a patch series, commit by commit.

Every commit of the range is built as it is (fix state `as-is`: whether it carries one of
the scenario's known fixes is detected) and runs a small matrix against the range's base
(also as it is) and against itself: commit->commit, base->commit and commit->base, the
scenario's check guest action, on its boundary machine types. Each case is judged against
the model for the fix state detected on each side. Builds start from the nearest cached
build (usually the previous commit's): only what a commit changed is compiled.

Cases are compared by outcome: a failure with the scenario's own error (`failed`) is not
one with another error (`failed-other`, always a deviation).

Exit codes (decided in `exit_code`):
  0    every commit builds and every case is as its model says
  1    a case of some commit deviates from its model (a failure with another error, too)
  125  some commit cannot be built (listed as untestable), and none deviates
  3    infrastructure errors (a case errored or was flaky, the base cannot be built), and none
       deviates
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from patchcheck import paths
from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed
from patchcheck.report.junit import testcase
from patchcheck.result.model import RunResults, write_json
from patchcheck.run.matrix import new_run_id, small_matrix
from patchcheck.sequence.check import check_guest
from patchcheck.source.commits import Commit, History, check_clean, parse_range
from patchcheck.source.specs import GitSources
from patchcheck.tree.fixes import AS_IS
from patchcheck.verdict.sequence import behaviour, commit_status, series_exit_code

PAIRS = ("commit->commit", "base->commit", "commit->base")


@dataclass
class CommitVerdict:
    index: int
    commit: str
    subject: str
    fix: str = ""  # the fix detected: a known fix's name, or "none"
    build: str = ""  # "built 12.3 s, incremental from ... (2 objects)", "cached", "FAILED"
    status: str = ""  # as-expected | deviates | untestable | error
    behaviour: str = ""  # what the cases did: "passes (9)", "fails 3 of 9"
    signature: list[str] = field(default_factory=list)  # every case's outcome, comparable
    run_dir: str = ""
    message: str = ""

    @property
    def row(self) -> list[str]:
        verdict = self.behaviour + ("" if self.status == "as-expected" else
                                    f" [{self.status.upper()}]")
        return [self.commit[:12], self.subject[:60], self.build, self.fix,
                verdict if self.behaviour else self.status.upper()]


@dataclass
class SeriesResult:
    run_id: str
    repo: str
    base: str
    tip: str
    scenario: str
    commits: list[CommitVerdict] = field(default_factory=list)
    changes_at: str = ""  # the first commit whose behaviour differs from the one before
    error: str = ""

    def exit_code(self) -> int:
        return series_exit_code({c.status for c in self.commits}, self.error)


def run_series(settings: Settings, runtime: Runtime, repo: str, range_text: str,
               log: Callable[[str], None] = print, machines: str = "") -> int:
    base_ref, tip_ref = parse_range(range_text)
    check_clean(repo, (base_ref, tip_ref))
    history = History(GitSources(settings.cache_dir), repo)
    commits = history.between(base_ref, tip_ref)  # a range without commits: a usage error
    base = history.resolve(base_ref)
    print(f"range: {base.commit}..{commits[-1].sha} ({range_text}, {len(commits)} commits)")
    run_id = f"series-{base.commit[:8]}-{commits[-1].sha[:8]}-{new_run_id()}"
    outdir = paths.run_dir(settings.reports_dir, run_id)
    outdir.mkdir(parents=True, exist_ok=True)
    result = SeriesResult(run_id, repo, f"{base_ref} ({base.commit[:12]})",
                          f"{tip_ref} ({commits[-1].sha[:12]})", settings.matrix.scenario)
    guest = check_guest(settings)
    base_spec = BuildSpec("base", f"git:{repo}@{base.commit}", AS_IS)
    try:
        Pipeline(runtime, settings, log).build(base_spec)
        for index, commit in enumerate(commits, 1):
            result.commits.append(_one(settings, runtime, repo, base_spec, commit, index,
                                       guest, outdir, machines, log))
            _write(result, outdir)
    except BuildFailed as exc:
        result.error = f"the base {base_ref} cannot be built: {exc}"
    finally:
        result.changes_at = changes_at(result.commits)
        _write(result, outdir)
        print(table(result))
        print(f"reports: {outdir}")
    return result.exit_code()


def _one(settings: Settings, runtime: Runtime, repo: str, base: BuildSpec, commit: Commit,
         index: int, guest: str, outdir: Path, machines: str,
         log: Callable[[str], None]) -> CommitVerdict:
    verdict = CommitVerdict(index, commit.sha, commit.subject)
    spec = BuildSpec("commit", f"git:{repo}@{commit.sha}", AS_IS, untrusted="a series commit")
    try:
        record = Pipeline(runtime, settings, log).build(spec)
    except BuildFailed as exc:
        verdict.status, verdict.build, verdict.message = "untestable", "FAILED", str(exc)
        return verdict
    verdict.fix = str(record.fix.get("patch") or "none")
    verdict.build = ("cached" if record.cached else f"built {record.seconds:.1f} s"
                     + (f", {len(record.compiled)} object(s) from {record.base_commit[:12]}"
                        if record.base else ", from scratch"))
    run, run_dir = small_matrix(settings, runtime, {"base": base, "commit": spec}, PAIRS,
                                {guest: "boundary"}, f"{index:02d}-{commit.sha[:12]}", log,
                                machines=machines, semantics=False, reports_dir=outdir)
    verdict.run_dir = str(run_dir)
    cases = run.cases
    verdict.behaviour = behaviour(cases)
    # every case's outcome, with the bug's failure apart from another: compared by outcome
    verdict.signature = sorted(f"{c.case.id}={c.observed.value}" for c in cases)
    verdict.status = commit_status(cases)
    return verdict


def changes_at(commits: Sequence[CommitVerdict]) -> str:
    """The first testable commit whose cases came out differently from the testable commit
    before it ("" when none did)."""
    previous: list[str] | None = None
    for c in commits:
        if not c.signature:
            continue
        if previous is not None and c.signature != previous:
            return c.commit
        previous = c.signature
    return ""


def table(result: SeriesResult) -> str:
    head = ["commit", "subject", "builds", "fix state", "verdict"]
    rows = [head, *(c.row for c in result.commits)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    changed = next((c for c in result.commits if c.commit == result.changes_at), None)
    lines.append(f"the verdict changes at {changed.commit[:12]} {changed.subject}"
                 if changed else "the verdict does not change within the range")
    untestable = [c for c in result.commits if c.status == "untestable"]
    if untestable:
        lines.append("untestable (does not build): " + ", ".join(
            f"{c.commit[:12]} {c.subject}" for c in untestable))
    if result.error:
        lines.append(f"error: {result.error}")
    return "\n".join(lines)


def _write(result: SeriesResult, outdir: Path) -> None:
    """series.json, series.md and junit.xml (one testsuite per commit)."""
    write_json(outdir / "series.json", {**asdict(result), "exit_code": result.exit_code()})
    (outdir / "series.md").write_text(
        f"# patchcheck series {result.run_id}\n\n{result.repo} {result.base}..{result.tip}, "
        f"scenario {result.scenario}\n\n```\n{table(result)}\n```\n")
    suites = []
    for c in result.commits:
        cases = []
        if c.run_dir and Path(c.run_dir, "results.json").is_file():
            run = RunResults.load(Path(c.run_dir) / "results.json")
            cases = [testcase(r, Path(c.run_dir)) for r in run.cases]
        suite = TestSuite(f"{c.index:02d} {c.commit[:12]} {c.subject}", cases,
                          properties={"commit": c.commit, "fix": c.fix, "status": c.status})
        if c.status == "untestable":
            tc = TestCase("build", classname=f"series.{c.commit[:12]}")
            tc.add_skipped_info(f"untestable: {c.message}")
            suite.test_cases.append(tc)
        suites.append(suite)
    (outdir / "junit.xml").write_text(to_xml_report_string(suites))

