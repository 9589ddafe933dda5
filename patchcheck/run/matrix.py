"""`invoke matrix`: build what is missing, run every case in parallel, write the reports.

Each finished case is written to disk as it finishes; results.json and junit.xml are
written at the end, also when the run is interrupted or fails (marked partial).
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck import paths
from patchcheck.build.builder import BuildRecord
from patchcheck.build.pipeline import Pipeline, Prepared
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed, UsageError
from patchcheck.guests.image import GuestImage
from patchcheck.jobs import InOrder, in_background
from patchcheck.qemu import machine_types
from patchcheck.qemu.hosts import Hosts
from patchcheck.report import grid
from patchcheck.report.regenerate import write_all
from patchcheck.result.model import Case, CaseResult, RunResults
from patchcheck.run import accel as accel_mod
from patchcheck.run import plan as matrix
from patchcheck.run.cases import LINUX, RunContext, accel_used, now, run_groups
from patchcheck.run.migrate import side
from patchcheck.run.resume import Current, finished_cases, skipped
from patchcheck.run.schedule import Schedule, build_order, groups
from patchcheck.scenarios import registry as scenarios
from patchcheck.scenarios.base import Scenario
from patchcheck.verdict.decision import decide_dir, task_of
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
    p = checked or plan(settings, options)
    m = settings.matrix
    names, guests, machines, jobs, timeout, scen = (p.names, p.guests, p.machines, p.jobs,
                                                    p.timeout, p.scenario)
    run_id = options.run_id or new_run_id()
    outdir = paths.run_dir(settings.reports_dir, run_id)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / ".write-test").touch()
        (outdir / ".write-test").unlink()
    except OSError as exc:
        raise UsageError(f"report directory {outdir} is not writable: {exc.strerror}") from None
    _link_latest(settings.reports_dir, run_id)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    run = RunResults(run_id, {}, [], started, partial=True, host=_host(),
                     settings={"builds": list(names), "pairs": list(p.pairs),
                               "machines": machines, "guests": guests, "jobs": jobs,
                               "timeout": timeout, "accel": p.accel, "ram_mib": m.ram_mib,
                               "scenario": scen.name, "task": options.task,
                               "shard": "/".join(map(str, p.shard)) if p.shard else ""})
    records: dict[str, BuildRecord] = {}
    failed: dict[str, str] = {}
    semantics_result: Callable[[], Any] | None = None
    probe_scratch: Path | None = None
    probe_hosts: Hosts | None = None  # the probe's QEMU containers: closed when the run ends
    case_list: list[Case] = []
    results = run.cases  # filled as cases finish: an interrupted run still reports them
    # Cases start as soon as their two builds exist, unless the run needs the whole case
    # list first (a shard is a slice of it, a resumed run matches it) or a build to choose
    # its accelerator with.
    streaming = not p.shard and not options.resume and p.accel == "tcg"
    ahead: InOrder[str, Prepared] | None = None
    try:
        pipeline = Pipeline(runtime, settings, log)
        sources = {n: settings.builds[n].source for n in names}
        forcing = scen.force_global  # the -global that brings the bug to a new type
        force = [forcing] if m.force_global and forcing else []

        def forced(src: str, dst: str) -> bool:
            return src not in records or dst not in records or \
                scen.force_applies(side(records[src]), side(records[dst]))

        def cases_of(src: str, dst: str) -> list[Case]:
            return matrix.pair_cases(src, dst, records[src].machines, records[dst].machines,
                                     guests, machines, force if forced(src, dst) else (),
                                     scen.boundary)
        shared = sharing(scen, guests, m.share_sources)
        schedule = Schedule(matrix.pairs(sources, p.pairs), cases_of, shared, LINUX,
                            scen.defaults.first)

        order = build_order(names, scen.defaults.first)

        def prepare(name: str) -> Prepared:
            """A build's inputs (source fetched, tree, builder image); the build itself if
            it is in the cache."""
            return pipeline.prepare(settings.builds[name])

        def guest_image() -> GuestImage:
            from patchcheck.guests.image import ensure_image

            return ensure_image(runtime, settings, image_id=pipeline.image("bookworm"), log=log)
        wants_guest = LINUX in guests or p.accel != "tcg"
        # The next builds are prepared while one compiles: on a first run, the second
        # suite's base and builder images and its source package, then the Linux guest's
        # image, are made beside the first suite's compiler (docs/performance.md).
        ahead = InOrder("prepare", order, prepare, then=guest_image if wants_guest else None)

        def build(name: str, cached_only: bool = False) -> bool:
            """Make the build (or only take it from the cache): whether it exists now."""
            try:
                prepared = ahead(name)
                if cached_only and prepared.record is None:
                    return False
                record = pipeline.make(prepared)
                records[name] = record
                run.builds[name] = {**records[name].to_dict(), "finished": now()}
                return True
            except BuildFailed as exc:
                if cached_only:
                    return False  # its failure is recorded by build() next
                failed[name] = str(exc)
                run.builds[name] = {"name": name, "failed": str(exc),
                                    "source": settings.builds[name].source}
                log(f"[{name}] build failed: {exc}")
                return False

        while_building = [0]  # cases given out before the last build was made
        ctx = RunContext(settings, runtime, scen, records, failed, outdir, jobs, timeout,
                         p.accel, None, run.settings, linux=LINUX in guests)

        def every_case() -> list[Case]:
            """The whole case list, once every build is settled (a failed build's pairs
            get the other builds' machine types: their cases are listed, as skipped)."""
            known = {n: records[n].machines for n in records}
            fallback = sorted({t for ms in known.values() for t in ms})
            build_machines = {n: known.get(n, fallback) for n in names}
            every = matrix.cases(build_machines, sources, p.pairs, guests, machines, force,
                                 scen.boundary, forced)
            return matrix.shard(every, *p.shard) if p.shard else every

        def after_builds() -> list[list[Case]]:
            """Once every build is settled: the case list, the skipped cases, the probe, the
            guest image; the groups not given out yet."""
            nonlocal semantics_result, probe_scratch, probe_hosts
            case_list.extend(every_case())
            finished: list[CaseResult] = []
            if options.resume:  # reused only with this run's settings: its accelerator too
                if wants_guest:
                    ctx.guest_image = guest_image()
                current = Current(scen, m.ram_mib, accel_used(ctx), timeout, ctx.guest_image)
                finished = finished_cases(outdir, case_list, records, current, log)
                log(f"resuming {run_id}: {len(finished)} of {len(case_list)} cases already "
                    "finished")
            results.extend(finished)
            done = {r.case.id for r in finished} | {c.id for c in schedule.released}
            todo = []
            for case in case_list:
                missing = [b for b in (case.source, case.destination) if b in failed]
                if missing:
                    results.append(skipped(case, records, missing[0], failed[missing[0]]))
                elif case.id not in done:
                    todo.append(case)
            if m.semantics and records and (not p.shard or p.shard[0] == 1) and \
                    scen.probe is not None:
                # The register-semantics probe needs only the builds: it runs beside the
                # cases (they leave CPU idle while Linux guests wait for pciehp), with as
                # many jobs; of a sharded run, shard 1/N runs it (report.merge carries its
                # probe.json). Its containers and scratch directory are ours to end: an
                # interrupted run closes them and does not wait for it.
                from patchcheck.probe.orchestrate import matrix_semantics
                from patchcheck.probe.runner import hosts_for

                probe_scratch = Path(tempfile.mkdtemp(prefix="pcprobe-"))
                scratch = probe_scratch
                hosts = probe_hosts = hosts_for(runtime, scratch, settings.cache_dir)
                semantics_result = in_background("probe", lambda: matrix_semantics(
                    settings, runtime, records, outdir, log, jobs=jobs, scratch=scratch,
                    hosts=hosts))
            if wants_guest and ctx.guest_image is None:
                ctx.guest_image = guest_image()  # made ahead, or made now if that failed
            released = len(schedule.released)
            log(f"{released + len(todo)} cases to run, {jobs} in parallel"
                + (f" ({while_building[0]} given out while builds compiled)"
                   if while_building[0] else ""))
            ctx.total = released + len(todo)
            return groups(todo, shared, LINUX)

        def feed() -> Iterator[list[Case]]:
            linux: list[list[Case]] = []  # they need the guest image: made after the builds
            given = 0
            while True:
                # The builds already in the cache take a moment: take them all before the
                # cases they allow go out, so that one source serves every destination.
                while order and build(order[0], cached_only=True):
                    order.pop(0)
                if streaming:
                    for group in schedule.release(records, failed):
                        if group[0].guest == LINUX:
                            linux.append(group)
                        else:
                            given += len(group)
                            yield group
                if not order:
                    break
                while_building[0] = given  # given out before the last build
                build(order.pop(0))
            rest = after_builds()
            yield from linux
            yield from rest

        if streaming:
            run_groups(ctx, feed(), results)
        else:
            work = list(feed())  # every build first
            run_groups(ctx, work, results)
        position = {c.id: i for i, c in enumerate(case_list)}
        results.sort(key=lambda r: position.get(r.case.id, 1 << 30))
        run.partial = not case_list or len(results) < len(case_list)
        if semantics_result is not None:
            semantics_result()  # the probe writes probe.json beside the results
        # the one decision, made from what the run wrote: every report and `check` read it
        return decide_dir(run, outdir).exit_code(task_of(run))
    finally:
        if ahead is not None:
            ahead.stop()
        if probe_hosts is not None:
            probe_hosts.close()  # a probe still running stops after its current experiments
        if probe_scratch is not None:
            shutil.rmtree(probe_scratch, ignore_errors=True)
        run.seconds = round(time.monotonic() - t0, 1)
        write_all(run, outdir)
        print(f"scenario {scenario_title(run.settings)}")
        print(grid.render(run))
        decision = decide_dir(run, outdir)
        print(f"verdict (exit {decision.exit_code(task_of(run))}):")
        for line in decision.lines(task_of(run)):
            print(line)
        print(f"page: {outdir / 'index.html'}")
        print(f"reports: {outdir}")


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

