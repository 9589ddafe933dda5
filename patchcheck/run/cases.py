"""Running the cases of a matrix: the QEMU hosts and their mounts, groups of cases in
parallel, each result written as it finishes, progress on the terminal; on the way out (also
when interrupted) every QEMU is ended and the run's scratch directory removed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Mount, Runtime
from patchcheck.errors import UsageError, disk_full, is_no_space
from patchcheck.guests.action import Action
from patchcheck.guests.image import guests_dir
from patchcheck.jobs import parallel
from patchcheck.qemu.hosts import Hosts
from patchcheck.result.model import Case, CaseResult, write_json
from patchcheck.run import accel as accel_mod
from patchcheck.run import resume
from patchcheck.run.migrate import run_cases
from patchcheck.run.progress import CaseProgress
from patchcheck.scenarios.base import Scenario

if TYPE_CHECKING:
    from patchcheck.guests.image import GuestImage

LINUX = "linux"  # the real guest: its action needs the guest image (patchcheck.guests.linux)


def now() -> str:
    """A moment of the run, as results.json records it (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class RunContext:
    """What running the cases needs from the run."""

    settings: Settings
    runtime: Runtime
    scenario: Scenario
    records: dict[str, BuildRecord]  # the builds that exist (filled as they are made)
    failed: dict[str, str]  # the builds that failed, and why: their cases are skipped
    outdir: Path
    jobs: int
    timeout: float
    accel: str = "tcg"
    guest_image: GuestImage | None = None  # the Linux guest, set before a case needs it
    recorded: dict[str, Any] | None = None  # the run's settings: what `auto` resolved to
    linux: bool = False  # Linux-guest cases will run: QEMU containers mount the guest images
    total: int | None = None  # how many cases run, once known
    choice: accel_mod.AccelChoice | None = None  # the accelerator, once decided (resolve_accel)


def run_groups(ctx: RunContext, work: Iterable[list[Case]], results: list[CaseResult]) -> None:
    """Run the groups of cases `work` gives (lazily: it may build while cases run)."""
    records, runtime, settings, scen = ctx.records, ctx.runtime, ctx.settings, ctx.scenario
    outdir, jobs, timeout = ctx.outdir, ctx.jobs, ctx.timeout
    m = settings.matrix
    scratch = scratch_dir()
    mounts = [Mount(str(scratch), str(scratch)),
              Mount(str(settings.cache_dir / "builds"), str(settings.cache_dir / "builds"),
                    read_only=True)]
    if ctx.linux or ctx.guest_image is not None:
        guests_root = guests_dir(settings)  # the images are made in it, maybe later
        guests_root.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(str(guests_root), str(guests_root), read_only=True))
    accel, devices = resolve_accel(ctx, scratch)
    hosts = Hosts(runtime, tuple(mounts), devices, m.qemu_memory_mib)

    def action_for(case: Case) -> Action:
        if case.guest == LINUX:
            if ctx.guest_image is None:
                raise UsageError("the Linux guest's image was not made")
            return scen.linux_action(ctx.guest_image, timeout)
        return scen.action(case.guest)
    try:
        with CaseProgress(lambda: ctx.total) as progress:
            def one(group: list[Case]) -> Iterator[CaseResult]:
                def logdir(case: Case) -> Path:
                    return outdir / "cases" / case.slug
                action = action_for(group[0])
                current = resume.Current(scen, m.ram_mib, accel, timeout, ctx.guest_image)
                try:
                    for res in run_cases(group, records, hosts, scen, scratch, logdir,
                                         ram_mib=m.ram_mib, accel=accel, timeout=timeout,
                                         action=action):
                        res.finished = now()
                        used = resume.outcome_settings(res.case, action, records, current)
                        write_json(logdir(res.case) / "result.json",  # --resume compares it
                                   {**res.to_dict(), resume.RECORD: used})
                        yield res
                except OSError as exc:  # a case's logs or result: the reports' disk is full
                    if not is_no_space(exc):
                        raise
                    raise disk_full("the reports directory", outdir,
                                    f"the case {group[0].id} and its group stopped") from None

            for _, res in parallel(work, one, jobs):
                results.append(res)
                mark = ("DEVIATES" if res.deviates else
                        "no verdict" if res.observed.no_verdict else "ok")
                progress.advance(f"{res.case.id}: {res.observed.value} ({mark})")
    finally:
        hosts.close()  # kills every QEMU, so cases still running end at once
        remove_soon(scratch)


def resolve_accel(ctx: RunContext, scratch: Path) -> tuple[str, tuple[str, ...]]:
    """The accelerator the run's QEMUs use and the devices they need, decided once per run
    (a resumed run decides before it compares its finished cases' settings)."""
    if ctx.choice is None and ctx.accel != "tcg" and ctx.records:
        any_build = next(iter(ctx.records.values()))

        def image() -> GuestImage:
            if ctx.guest_image is None:
                raise UsageError("the Linux guest's image was not made")
            return ctx.guest_image
        ctx.choice = accel_mod.resolve(ctx.accel, ctx.runtime, any_build.image_id,
                                       any_build.binary, image, scratch)
        if ctx.recorded is not None:
            ctx.recorded["accel"] = ctx.choice.describe()
    if ctx.choice is None:
        return ctx.accel, ()
    return ctx.choice.accel, ctx.choice.devices


def accel_used(ctx: RunContext) -> str:
    """resolve_accel before any case runs: the accelerator this run's cases will use."""
    scratch = scratch_dir()
    try:
        return resolve_accel(ctx, scratch)[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_soon(directory: Path, within: float = 2.0) -> None:
    """Remove a directory that workers of an interrupted run may still be leaving: each
    removes what its case made as soon as its QEMUs are gone (milliseconds)."""
    deadline = time.monotonic() + within
    while True:
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def scratch_dir() -> Path:
    """The run's private (0700) directory for QMP and migration sockets. Unix socket paths
    are limited to 107 bytes, so a long $TMPDIR falls back to /tmp."""
    base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="patchcheck-", dir=base if len(base) <= 40 else "/tmp"))
