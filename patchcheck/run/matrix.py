"""`invoke matrix`: build what is missing, run every case in parallel, write the reports.

`plan` checks the options before any engine is contacted; `MatrixRun` is one run, in named
steps (prepare the builds, stream the cases, probe, report and decide). Each finished case is
written to disk as it finishes; results.json and junit.xml are written at the end, also
when the run is interrupted or fails (marked partial).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck import paths
from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import UsageError, disk_full, is_no_space
from patchcheck.qemu import machine_types
from patchcheck.report import grid
from patchcheck.report.regenerate import write_all
from patchcheck.result.model import Case, CaseResult, RunResults
from patchcheck.run import accel as accel_mod
from patchcheck.run import plan as matrix
from patchcheck.run.builds import RunBuilds
from patchcheck.run.cases import LINUX, RunContext, accel_used, run_groups
from patchcheck.run.migrate import side
from patchcheck.run.resume import Current, finished_cases, skipped
from patchcheck.run.schedule import Schedule, build_order, groups
from patchcheck.run.semantics import BackgroundProbe
from patchcheck.scenarios import registry as scenarios
from patchcheck.scenarios.base import Scenario
from patchcheck.verdict.decision import Decision, decide_dir, task_of
from patchcheck.verdict.judge import scenario_title


@dataclass(frozen=True)
class MatrixOptions:
    builds: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    machines: str | None = None
    guests: tuple[str, ...] = ()
    jobs: int | None = None
    timeout: float | None = None
    run_id: str = ""
    scenario: str = ""  # default: patchcheck.matrix.scenario
    accel: str = ""  # auto, kvm or tcg; default: patchcheck.matrix.accel
    shard: str = ""  # "K/N": the K-th of N deterministic slices of the case list
    resume: bool = False  # reuse the finished cases of run `run_id`
    task: str = "matrix"  # the task the run answers for: its words and exit code (decision)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass(frozen=True)
class Plan:
    """Validated options: everything a run needs, checked before any engine is contacted."""

    names: tuple[str, ...]
    pairs: tuple[str, ...]
    guests: dict[str, str]
    machines: str
    jobs: int
    timeout: float
    scenario: Scenario
    shard: tuple[int, int] | None = None
    accel: str = "tcg"


def plan(settings: Settings, options: MatrixOptions) -> Plan:
    if options.run_id:
        paths.run_dir(settings.reports_dir, options.run_id)  # a safe name, inside reports_dir
    m = settings.matrix
    names = options.builds or m.builds
    for n in names:
        if n not in settings.builds:
            raise UsageError(f"no build named '{n}' (configured: {', '.join(settings.builds)})")
    guests = ({g: m.guests.get(g, "all") for g in options.guests} if options.guests else
              dict(m.guests))
    scen = scenarios.get(options.scenario or m.scenario)
    for g in guests:  # an unknown guest action: a UsageError before any work
        if g == LINUX and not scen.linux_guest:
            raise UsageError(f"scenario {scen.name} has no Linux guest action")
        if g != LINUX:
            scen.action(g)
    accel_mod.validate(options.accel or m.accel)
    jobs = options.jobs if options.jobs is not None else m.jobs
    if jobs < 0:
        raise UsageError(f"--jobs {jobs}: must be >= 1")
    machines = m.machines if options.machines is None else options.machines
    machine_types.check_filter(machines)
    pairs = options.pairs or m.pairs
    matrix.pairs({n: settings.builds[n].source for n in names}, pairs)
    return Plan(tuple(names), tuple(pairs), guests, machines, jobs or default_jobs(),
                options.timeout or m.timeout, scen, parse_shard(options.shard),
                options.accel or m.accel)


def default_jobs() -> int:
    """Cases in parallel when the configuration says 0: one more than the CPUs. A case
    with the Linux guest waits for much of its time (pciehp's timers at boot, heartbeats
    after each migration) and leaves its CPU idle; the extra job fills it (the warm default
    matrix on 2 CPUs: 147 s with 2 jobs, 131 s with 3, for 4 % more CPU; docs/performance.md)."""
    return (os.cpu_count() or 1) + 1


def parse_shard(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = (0, 0)
    if not sep or not 1 <= shard[0] <= shard[1]:
        raise UsageError(f"--shard '{text}': expected K/N with 1 <= K <= N, e.g. 2/4")
    return shard


def run_matrix(settings: Settings, runtime: Runtime, options: MatrixOptions,
               log: Callable[[str], None] = print, checked: Plan | None = None) -> int:
    """Build what is missing, run every case, write the reports: the run's exit code."""
    return MatrixRun.open(settings, runtime, options, checked or plan(settings, options),
                          log).run()


@dataclass
class MatrixRun:
    """One matrix run: what it knows so far, and its steps (`run`).

    The builds are made one after another (patchcheck.run.builds); a pair's cases start as
    soon as its two builds exist (patchcheck.run.schedule), unless the run needs the whole
    case list first (a shard is a slice of it, a resumed run matches it) or a build to choose
    its accelerator with (`streaming`). Once every build is settled come the rest of the
    cases, the skipped ones and the register-semantics probe (patchcheck.run.semantics).
    Each case's result is kept as it finishes: an interrupted run still reports it."""

    settings: Settings
    runtime: Runtime
    options: MatrixOptions
    plan: Plan
    log: Callable[[str], None]
    outdir: Path
    results: RunResults  # partial until every case of the list has its result
    t0: float  # time.monotonic() at the start
    records: dict[str, BuildRecord] = field(default_factory=dict)  # the builds that exist
    failed: dict[str, str] = field(default_factory=dict)  # the builds that failed, and why
    case_list: list[Case] = field(default_factory=list)  # every case, once builds are settled
    given_while_building: int = 0  # cases given out before the last build was made
    builds: RunBuilds | None = None  # made by `run`: its first step
    probe: BackgroundProbe | None = None
    force: list[str] = field(init=False)  # the -global that brings the bug to a new type
    shared: set[str] = field(init=False)  # the guest actions whose cases share a source
    schedule: Schedule = field(init=False)
    ctx: RunContext = field(init=False)

    @classmethod
    def open(cls, settings: Settings, runtime: Runtime, options: MatrixOptions, p: Plan,
             log: Callable[[str], None]) -> MatrixRun:
        """The run, once its report directory is there and writable (and `latest`)."""
        run_id = options.run_id or new_run_id()
        outdir = paths.run_dir(settings.reports_dir, run_id)
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            (outdir / ".write-test").touch()
            (outdir / ".write-test").unlink()
        except OSError as exc:
            if is_no_space(exc):
                raise disk_full("the reports directory", outdir, "the run did not start"
                                ) from None
            raise UsageError(f"report directory {outdir} is not writable: {exc.strerror}"
                             ) from None
        _link_latest(settings.reports_dir, run_id)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.monotonic()
        m = settings.matrix
        results = RunResults(
            run_id, {}, [], started, partial=True, host=_host(),
            settings={"builds": list(p.names), "pairs": list(p.pairs), "machines": p.machines,
                      "guests": p.guests, "jobs": p.jobs, "timeout": p.timeout,
                      "accel": p.accel, "ram_mib": m.ram_mib, "scenario": p.scenario.name,
                      "task": options.task,
                      "shard": "/".join(map(str, p.shard)) if p.shard else ""})
        return cls(settings, runtime, options, p, log, outdir, results, t0)

    def __post_init__(self) -> None:
        """The run's schedule and the context its cases run in, from the checked plan."""
        p, m, scen = self.plan, self.settings.matrix, self.plan.scenario
        forcing = scen.force_global
        self.force = [forcing] if m.force_global and forcing else []
        self.shared = sharing(scen, p.guests, m.share_sources)
        self.schedule = Schedule(matrix.pairs(self.sources, p.pairs), self.cases_of,
                                 self.shared, LINUX, scen.defaults.first)
        self.ctx = RunContext(self.settings, self.runtime, scen, self.records, self.failed,
                              self.outdir, p.jobs, p.timeout, p.accel, None,
                              self.results.settings, linux=LINUX in p.guests)

    @property
    def sources(self) -> dict[str, str]:
        return {n: self.settings.builds[n].source for n in self.plan.names}

    @property
    def streaming(self) -> bool:
        """Whether cases start as soon as their two builds exist."""
        return not self.plan.shard and not self.options.resume and self.plan.accel == "tcg"

    @property
    def wants_guest(self) -> bool:
        """Whether the run needs the Linux guest's image (its cases, or choosing the
        accelerator)."""
        return LINUX in self.plan.guests or self.plan.accel != "tcg"

    # --- the steps ---------------------------------------------------------------------

    def run(self) -> int:
        """Prepare the builds, stream the cases (building as they need), wait for the probe;
        however the run ends (interrupted: partial), write the reports and decide once."""
        try:
            self.builds = self.prepare_builds()
            self.stream_cases(self.builds)
            self.collect()
            if self.probe is not None:
                self.probe.wait()  # the probe writes probe.json beside the results
        finally:
            self.close()
            decision = self.report()
        return decision.exit_code(task_of(self.results))

    def prepare_builds(self) -> RunBuilds:
        """The builds in the order they are made (the scenario's first case's two first),
        the next ones prepared in the background from now on."""
        order = build_order(self.plan.names, self.plan.scenario.defaults.first)
        return RunBuilds(self.runtime, self.settings, order, self.records, self.failed,
                         self.results.builds, self.log, self.wants_guest)

    def stream_cases(self, builds: RunBuilds) -> None:
        """Run every case; a streaming run starts them while later builds compile, another
        makes every build first."""
        work = self.feed(builds)
        run_groups(self.ctx, work if self.streaming else list(work), self.results.cases)

    def feed(self, builds: RunBuilds) -> Iterator[list[Case]]:
        """The groups of cases, as they may run: a pair's as soon as its two builds exist
        (the Linux guest's after every build: they need its image), then the rest."""
        linux: list[list[Case]] = []
        given = 0
        while True:
            builds.take_cached()
            if self.streaming:
                for group in self.schedule.release(self.records, self.failed):
                    if group[0].guest == LINUX:
                        linux.append(group)
                    else:
                        given += len(group)
                        yield group
            if not builds.order:
                break
            self.given_while_building = given  # given out before the last build
            builds.make_next()
        rest = self.after_builds(builds)
        yield from linux
        yield from rest

    def after_builds(self, builds: RunBuilds) -> list[list[Case]]:
        """Once every build is settled: the case list, the skipped cases, the probe, the
        guest image; the groups not given out yet."""
        self.case_list.extend(self.every_case())
        finished = self.resumed(builds) if self.options.resume else []
        self.results.cases.extend(finished)
        todo = self.todo(finished)
        if self.probes():
            self.probe = BackgroundProbe()
            self.probe.start(self.settings, self.runtime, self.records, self.outdir, self.log,
                             self.plan.jobs)
        if self.wants_guest and self.ctx.guest_image is None:
            self.ctx.guest_image = builds.guest_image()  # made ahead, or made now if that failed
        released = len(self.schedule.released)
        self.log(f"{released + len(todo)} cases to run, {self.plan.jobs} in parallel"
                 + (f" ({self.given_while_building} given out while builds compiled)"
                    if self.given_while_building else ""))
        self.ctx.total = released + len(todo)
        return groups(todo, self.shared, LINUX)

    def collect(self) -> None:
        """The results in the case list's order; partial unless every case has one."""
        results = self.results.cases
        position = {c.id: i for i, c in enumerate(self.case_list)}
        ranked = sorted((position.get(r.case.id, 1 << 30), i) for i, r in enumerate(results))
        results[:] = [results[i] for _, i in ranked]  # in place, a stable sort
        self.results.partial = not self.case_list or len(results) < len(self.case_list)

    def close(self) -> None:
        """End the run's background work: no more builds prepared; the probe's containers
        (a probe still running stops after its current experiments) and scratch removed."""
        if self.builds is not None:
            self.builds.stop()
        if self.probe is not None:
            self.probe.close()

    def report(self) -> Decision:
        """Write results.json, junit.xml and the pages; print the grid and the verdict: the
        one decision, made from what the run wrote (every report and `check` read it)."""
        run, outdir = self.results, self.outdir
        run.seconds = round(time.monotonic() - self.t0, 1)
        write_all(run, outdir)
        print(f"scenario {scenario_title(run.settings)}")
        print(grid.render(run))
        decision = decide_dir(run, outdir)
        print(f"verdict (exit {decision.exit_code(task_of(run))}):")
        for line in decision.lines(task_of(run)):
            print(line)
        print(f"page: {outdir / 'index.html'}")
        print(f"reports: {outdir}")
        return decision

    # --- what the steps ask ------------------------------------------------------------

    def forced(self, src: str, dst: str) -> bool:
        """Whether the pair gets the forcing -global's extra case."""
        records = self.records
        return src not in records or dst not in records or \
            self.plan.scenario.force_applies(side(records[src]), side(records[dst]))

    def cases_of(self, src: str, dst: str) -> list[Case]:
        """A pair's cases, once both builds exist."""
        p = self.plan
        return matrix.pair_cases(src, dst, self.records[src].machines,
                                 self.records[dst].machines, p.guests, p.machines,
                                 self.force if self.forced(src, dst) else (),
                                 p.scenario.boundary)

    def every_case(self) -> list[Case]:
        """The whole case list, once every build is settled (a failed build's pairs get the
        other builds' machine types: their cases are listed, as skipped)."""
        p = self.plan
        known = {n: self.records[n].machines for n in self.records}
        fallback = sorted({t for ms in known.values() for t in ms})
        build_machines = {n: known.get(n, fallback) for n in p.names}
        every = matrix.cases(build_machines, self.sources, p.pairs, p.guests, p.machines,
                             self.force, p.scenario.boundary, self.forced)
        return matrix.shard(every, *p.shard) if p.shard else every

    def resumed(self, builds: RunBuilds) -> list[CaseResult]:
        """The cases an earlier run of this id finished with this run's settings (its
        accelerator too)."""
        p = self.plan
        if self.wants_guest:
            self.ctx.guest_image = builds.guest_image()
        current = Current(p.scenario, self.settings.matrix.ram_mib, accel_used(self.ctx),
                          p.timeout, self.ctx.guest_image)
        finished = finished_cases(self.outdir, self.case_list, self.records, current, self.log)
        self.log(f"resuming {self.results.run_id}: {len(finished)} of {len(self.case_list)} "
                 "cases already finished")
        return finished

    def todo(self, finished: list[CaseResult]) -> list[Case]:
        """The cases not given out yet, nor finished; a case of a failed build is skipped
        (its result is kept now)."""
        done = {r.case.id for r in finished} | {c.id for c in self.schedule.released}
        todo = []
        for case in self.case_list:
            missing = [b for b in (case.source, case.destination) if b in self.failed]
            if missing:
                self.results.cases.append(skipped(case, self.records, missing[0],
                                                  self.failed[missing[0]]))
            elif case.id not in done:
                todo.append(case)
        return todo

    def probes(self) -> bool:
        """Whether the run probes the register semantics: configured, with builds, and of a
        sharded run shard 1/N only (report.merge carries its probe.json)."""
        p = self.plan
        return bool(self.settings.matrix.semantics and self.records
                    and (not p.shard or p.shard[0] == 1) and p.scenario.probe is not None)


def sharing(scenario: Scenario, guests: Iterable[str], share_sources: bool) -> set[str]:
    """The guest actions whose cases share one source QEMU across destinations: the Linux
    guest always (its boot is most of a case), a scenario's own actions that allow it
    (`Action.shares_source`) unless `patchcheck.matrix.share_sources` is false."""
    own = scenario.actions()
    return {g for g in guests if g == LINUX or (share_sources and g in own
                                                 and own[g].shares_source)}


def _link_latest(reports: Path, run_id: str) -> None:
    link = reports / "latest"
    tmp = reports / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(link)
    except OSError:
        pass


def _host() -> dict[str, Any]:
    return {"hostname": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def small_matrix(settings: Settings, runtime: Runtime, builds: Mapping[str, BuildSpec],
                 pairs: Sequence[str], guests: Mapping[str, str], run_id: str,
                 log: Callable[[str], None], *, machines: str = "", semantics: bool = True,
                 reports_dir: Path | None = None, task: str = "matrix"
                 ) -> tuple[RunResults, Path]:
    """A small matrix on builds named for one question (check, series, bisect): this run
    with its own builds, pairs, guest actions and machine types, and no forced case. Run it;
    its results (read back from results.json, as every report reads them) and
    its run directory."""
    matrix = dataclasses.replace(settings.matrix, builds=tuple(builds), pairs=tuple(pairs),
                                 guests=dict(guests), force_global=False, machines=machines,
                                 semantics=settings.matrix.semantics and semantics)
    local = dataclasses.replace(settings, builds=dict(builds), matrix=matrix,
                                reports_dir=reports_dir or settings.reports_dir)
    run_matrix(local, runtime, MatrixOptions(run_id=run_id, task=task), log)
    run_dir = local.reports_dir / run_id
    return RunResults.load(run_dir / "results.json"), run_dir
