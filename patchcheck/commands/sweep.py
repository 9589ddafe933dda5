"""`invoke sweep`: the two sides made (a distribution's package, or a build with QEMU's
default device set), the sweep run, and its verdict and reports written, also when it was
interrupted or failed (the results are then partial)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from patchcheck import paths
from patchcheck.build.packaged import packaged_side
from patchcheck.build.pipeline import Pipeline
from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.images import Images
from patchcheck.engine.registry import container_runtime
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import UsageError
from patchcheck.report.sweep.files import write_reports
from patchcheck.report.sweep.markdown import terminal
from patchcheck.result.cells import SweepResults, SweepSide
from patchcheck.run.matrix import new_run_id
from patchcheck.run.sweep.sweep import SweepRequest, SweepRun
from patchcheck.source import gitcmd, specs
from patchcheck.source.packaged import is_packaged, parse_packaged
from patchcheck.tree import fixes
from patchcheck.verdict.sweep import SweepVerdict, decide


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    builds: tuple[str, ...] = ()
    machines: str | None = None
    devices: tuple[str, ...] = ()
    against: str = ""
    run_id: str = ""
    base: str = ""  # patch mode: A = this source (a rev of --repo, or a source spec) ...
    patch: str = ""  # ... and B = A with this patch applied
    repo: str = ""
    guest: str = ""  # "linux": add the Linux-guest action


Wanted = str | BuildSpec  # a side: a debian-pkg: spec or a configured build name, or a build


def sweep(settings: Settings, options: SweepOptions, log: Callable[[str], None] = print) -> int:
    wanted = _patch_sides(options) if options.patch or options.base else \
        _sides(settings, options.builds or settings.sweep.builds)
    base = _against(settings, options.against)
    run_id = paths.check_run_id(options.run_id) if options.run_id else f"sweep-{new_run_id()}"
    return run_sweep(settings, wanted, options, run_id, base, log)[0]


def run_sweep(settings: Settings, wanted: tuple[Wanted, Wanted], options: SweepOptions,
              run_id: str, base: SweepResults | None, log: Callable[[str], None]
              ) -> tuple[int, SweepVerdict]:
    """Make both sides, sweep, and write the reports (also of an interrupted or failed
    sweep, marked partial); the exit code and the verdict."""
    outdir = paths.run_dir(settings.reports_dir, run_id)
    settings = _with_guest(settings, options.guest)
    machines = settings.sweep.machines if options.machines is None else options.machines
    devices = options.devices or settings.sweep.devices
    with container_runtime(settings, run_id) as runtime:
        a, b = (_side(settings, runtime, side, log) for side in wanted)
        run = SweepRun(settings, runtime, SweepRequest(a, b, outdir, machines, tuple(devices)),
                       log)
        try:
            common = run.prepare()  # bad input ends here: no report
            try:
                run.sweep(common)
            finally:  # an interrupted or failed sweep reports what it answered (partial)
                verdict = _report(run.results, base, bool(options.patch), outdir, runtime.cli,
                                  log)
        finally:
            run.close()
    return verdict.code, verdict


def _report(results: SweepResults, base: SweepResults | None, patch: bool, outdir: Path,
            cli: str, log: Callable[[str], None]) -> SweepVerdict:
    verdict = decide(results, base=base, patch=patch)
    write_reports(results, outdir, verdict, cli)
    log(terminal(verdict, str(outdir)))
    return verdict


def _sides(settings: Settings, names: Sequence[str]) -> tuple[str, str]:
    """Two side names, each a debian-pkg: spec or a configured build: checked before any
    engine is contacted."""
    if len(names) != 2 or names[0] == names[1]:
        raise UsageError(f"sweep: --builds takes two different sides A,B (got {','.join(names)!r})")
    for name in names:
        if is_packaged(name):
            parse_packaged(name)
        elif name not in settings.builds:
            raise UsageError(f"sweep: '{name}' is neither debian-pkg:<suite>[=<version>] nor a "
                             f"configured build (configured: {', '.join(settings.builds) or 'none'})")
    return names[0], names[1]


def _with_guest(settings: Settings, guest: str) -> Settings:
    if not guest:
        return settings
    if guest != "linux":
        raise UsageError(f"sweep: --guest {guest!r}: the only guest is linux")
    actions = (*settings.sweep.actions, "linux") if "linux" not in settings.sweep.actions \
        else settings.sweep.actions
    return dataclasses.replace(settings, sweep=dataclasses.replace(settings.sweep, actions=actions))


def _patch_sides(options: SweepOptions) -> tuple[BuildSpec, BuildSpec]:
    """--base REV --patch P [--repo R]: A the base as it is, B the base with the patch."""
    if not options.base or not options.patch:
        raise UsageError("sweep: --base and --patch go together (and --builds without them)")
    if options.builds:
        raise UsageError("sweep: give --builds or --base/--patch, not both")
    patch = Path(options.patch)
    if not patch.is_file():
        raise UsageError(f"sweep: --patch {options.patch}: no such file")
    if options.repo:
        if not gitcmd.is_repository(options.repo):
            raise UsageError(f"sweep: --repo {options.repo} is not a git repository")
        source = f"git:{Path(options.repo).resolve()}@{options.base}"
    else:
        source = options.base
    specs.parse_spec(source)
    label = options.base if options.repo else source.partition(":")[2] or source
    return (BuildSpec(label, source, fixes.AS_IS),
            BuildSpec(f"{label}+{patch.stem}", source, str(patch.resolve())))


def _against(settings: Settings, run: str) -> SweepResults | None:
    if not run:
        return None
    path = Path(run)
    if not path.exists():
        path = paths.run_dir(settings.reports_dir, run, "--against")
    if path.is_dir():
        path = path / "results.json"
    try:
        return SweepResults.read(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"sweep: --against {run}: no sweep's results.json there ({exc})") from None


def _side(settings: Settings, runtime: Runtime, wanted: Wanted,
          log: Callable[[str], None]) -> SweepSide:
    if isinstance(wanted, str) and is_packaged(wanted):
        spec = parse_packaged(wanted)
        return packaged_side(runtime, Images(runtime, settings, log), wanted,
                             str(spec).removeprefix("debian-pkg:"), log)
    local = settings if settings.sweep.build_devices == "configured" \
        else settings.full_configuration()
    build = wanted if isinstance(wanted, BuildSpec) else settings.builds[wanted]
    record = Pipeline(runtime, local, log).build(build)
    return side_of(record, "default device set" if not local.minimal
                   else f"minimal ({', '.join(local.devices)})")


def side_of(record: BuildRecord, configuration: str) -> SweepSide:
    return SweepSide(record.name, f"{record.source} (fix {record.fix_state})",
                     record.qemu_version, configuration, record.image_id, record.binary,
                     image=record.image)
