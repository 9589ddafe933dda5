"""Register-semantics probe: does a fix change what the guest sees in a device's registers,
and does it break the specification?

Migration passing is not enough: a fix can make a read-only bit guest-clearable and still
migrate. The scenario says which registers of which device (its RegisterSet, registers.py).
For every tree with a build without the fix and builds with it, on each machine type of
interest (the scenario's, or a filter), the probe

1. classifies every bit of those registers (RO, RW, RW1C, value after reset) by writing it
   on a fresh paused QEMU and reading it back through port-I/O configuration access
   (runner.py, classify.py);
2. compares the without-fix and with-fix builds bit by bit (classify.compare);
3. holds every observation against the specification's attribute (the RegisterSet's spec):
   a violation the fix introduces is a failure, one QEMU has anyway is only reported;
4. compares the builds' `-dump-vmstate` output (vmstate.py).

Entry point: `run_probe` (builds already made); `invoke probe` (commands/probe.py) and the
matrix run (run/semantics.py) write its reports and decide its exit code (verdict/probe.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import MatrixSettings, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import PatchcheckError, UsageError
from patchcheck.probe import versions, vmstate
from patchcheck.probe.model import ProbeRun, compare_probes
from patchcheck.probe.runner import ProbeRunner, hosts_for
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.machine_types import check_filter, order, select
from patchcheck.qemu.registers import RegisterSet

__all__ = ["run_probe", "check_builds", "ProbeRun", "pairs_of"]

Log = Callable[[str], None]

def check_builds(settings: Settings, names: Sequence[str], machines: Sequence[str] = ()
                 ) -> list[str]:
    """Validate build names and the machine filter before any engine is contacted; add the
    tree's without-fix build when only with-fix builds of a tree were named."""
    chosen = list(names) or list(settings.matrix.builds)
    for name in chosen:
        if name not in settings.builds:
            raise UsageError(f"no build named '{name}' (configured: {', '.join(settings.builds)})")
    check_filter(",".join(machines))
    out = list(chosen)
    for name in chosen:
        spec = settings.builds[name]
        if spec.fix in ("none", "reverted"):
            continue
        same_tree = [n for n, s in settings.builds.items() if s.source == spec.source]
        if any(settings.builds[n].fix in ("none", "reverted") for n in out if n in same_tree):
            continue
        baseline = next((n for n in same_tree if settings.builds[n].fix in ("none", "reverted")),
                        None)
        if baseline and baseline not in out:
            out.append(baseline)
    return out


def _trees(records: Mapping[str, BuildRecord]) -> dict[str, list[BuildRecord]]:
    """Builds by tree: the source commit the fix state was applied to (else the spec)."""
    trees: dict[str, list[BuildRecord]] = {}
    for record in records.values():
        trees.setdefault(record.commit or record.source, []).append(record)
    return trees


def pairs_of(records: Mapping[str, BuildRecord]) -> tuple[list[tuple[str, str]], list[str]]:
    """(without-fix, with-fix) build pairs of the same tree, and notes on unpaired builds."""
    pairs: list[tuple[str, str]] = []
    notes: list[str] = []
    for group in _trees(records).values():
        source = group[0].source
        baselines = sorted((r for r in group if not r.has_fix),
                           key=lambda r: (r.fix_state != "none", r.name))
        fixed = [r for r in group if r.has_fix]
        if not fixed:
            continue
        if not baselines:
            notes.append(f"{source}: no build without the fix among {', '.join(r.name for r in group)}"
                         ": probed against the specification only, nothing attributed to the fix")
            continue
        pairs += [(baselines[0].name, r.name) for r in fixed]
    return pairs, notes


def machines_per_build(records: Mapping[str, BuildRecord], machines: Sequence[str],
                       default: Callable[[Sequence[str]], list[str]]) -> dict[str, list[str]]:
    """Machine types to probe, per build: the filter (or the defaults) applied to the types
    every build of its tree knows, so that the builds of a pair are probed on the same."""
    out: dict[str, list[str]] = {}
    misses: list[str] = []
    for group in _trees(records).values():
        common = set(group[0].machines)
        for record in group[1:]:
            common &= set(record.machines)
        try:
            chosen = select(sorted(common), ",".join(machines)) if machines else \
                default(order(common))
        except UsageError as exc:
            chosen = []
            misses.append(f"{group[0].source}: {exc}")
        for record in group:
            out[record.name] = chosen
    if records and not any(out.values()):
        raise UsageError("no machine type to probe: " + "; ".join(misses or ["no pc-q35 type"]))
    return out


def run_probe(settings: Settings, runtime: Runtime, records: Mapping[str, BuildRecord],
              machines: Sequence[str] = (), log: Log = print, *, run_id: str = "",
              outdir: Path | None = None, jobs: int | None = None,
              scenario_name: str = "", scratch: Path | None = None,
              port_io: str = "qtest", hosts: Hosts | None = None) -> ProbeRun:
    """Probe built QEMUs; no files written except vmstate dumps under `outdir/vmstate`.
    `port_io`: "qtest", or "hmp" (the monitor's commands, to cross-check the transport).
    `hosts`: the QEMU containers (hosts_for(runtime, scratch, ...)) when the caller must be
    able to end the probe: closing them ends it within its current experiments."""
    from patchcheck.scenarios import registry as scenarios

    scen = scenarios.get(scenario_name or settings.matrix.scenario)
    registers = scen.probe
    if registers is None:
        raise UsageError(f"scenario {scen.name} has no register-semantics probe")
    m = settings.matrix
    jobs = jobs or m.jobs or 2 * (os.cpu_count() or 1)
    run = _new_run(run_id or runtime.run_id, m, jobs, scen.name, registers, records)
    started = time.monotonic()
    per_build = machines_per_build(records, machines, registers.machines)
    run.machines = {name: ms for name, ms in per_build.items()}
    pairs, run.unpaired = pairs_of(records)
    # sockets and dumps; short: unix socket paths. Removed at the end, and by the caller that
    # gave it when the probe is abandoned (an interrupted matrix does not wait for it)
    scratch = scratch or Path(tempfile.mkdtemp(prefix="pcprobe-"))
    hosts = hosts or hosts_for(runtime, scratch, settings.cache_dir, m.qemu_memory_mib)
    try:
        runner = ProbeRunner(hosts, scratch, scen, registers,
                             ram_mib=m.ram_mib, accel=m.accel, timeout=min(m.timeout, 30),
                             jobs=jobs, method=m.probe_method, port_io=port_io)
        _probe_builds(run, runner, records, per_build, log)
        for without, with_fix in pairs:
            for machine in per_build[without]:
                run.pairs.append(compare_probes(run.probe(without, machine),
                                                run.probe(with_fix, machine), registers))
                run.vmstate.append(_vmstate(runner, hosts, scratch, records[without],
                                            records[with_fix], machine, outdir, log))
        if registers.across_versions:
            _across_versions(run, runner, records, log)
    finally:
        hosts.close()
        shutil.rmtree(scratch, ignore_errors=True)
        run.seconds = round(time.monotonic() - started, 1)
    return run


def _new_run(run_id: str, m: MatrixSettings, jobs: int, scenario: str, registers: RegisterSet,
             records: Mapping[str, BuildRecord]) -> ProbeRun:
    """A probe run with its settings and the builds it probes, nothing probed yet."""
    run = ProbeRun(run_id, datetime.now(UTC).isoformat(timespec="seconds"),
                   settings={"accel": m.accel, "ram_mib": m.ram_mib, "jobs": jobs,
                             "method": m.probe_method,
                             "scenario": scenario, "device": registers.device,
                             "description": registers.description,
                             "access": registers.access})
    for name, r in records.items():
        run.builds[name] = {"name": name, "source": r.source, "qemu_version": r.qemu_version,
                            "fix": r.fix_state, "fix_applied": str(r.fix.get("applied", "")),
                            "has_fix": r.has_fix, "binary": r.binary,
                            "binary_sha256": r.binary_sha256}
    return run


def _probe_builds(run: ProbeRun, runner: ProbeRunner, records: Mapping[str, BuildRecord],
                  per_build: Mapping[str, Sequence[str]], log: Log) -> None:
    """Classify the registers of each build on each of its machine types."""
    for name, record in records.items():
        for machine in per_build[name]:
            log(f"[probe] {name} {machine}: probing")
            probe = runner.probe(record, machine)
            run.probes.append(probe)
            log(f"[probe] {name} {machine}: {probe.experiments} experiments on "
                f"{probe.qemus} QEMU(s) in "
                f"{probe.seconds:.1f} s, {len(probe.violations)} spec deviation(s)"
                + (f", {len(probe.errors)} error(s)" if probe.errors else ""))


def _across_versions(run: ProbeRun, runner: ProbeRunner, records: Mapping[str, BuildRecord],
                     log: Log) -> None:
    """Each newer version's builds against the oldest version's, on its newest machine type
    (probe/versions.py); probes that are missing for it are made here."""
    for older, newer, machine in versions.pairs(records):
        for name in (older, newer):
            try:
                run.probe(name, machine)
            except KeyError:
                log(f"[probe] {name} {machine}: probing (across versions)")
                run.probes.append(runner.probe(records[name], machine))
        run.versions.append(compare_probes(run.probe(older, machine), run.probe(newer, machine),
                                           runner.registers))
        log(f"[probe] {older} vs {newer} on {machine}: "
            f"{len(run.versions[-1].changes)} guest-visible change(s)")


def _vmstate(runner: ProbeRunner, hosts: Hosts, scratch: Path, without: BuildRecord,
             with_fix: BuildRecord, machine: str, outdir: Path | None,
             log: Log) -> vmstate.VmstateComparison:
    comparison = vmstate.VmstateComparison(machine, without.name, with_fix.name)
    started = time.monotonic()
    try:
        dumps = []
        for record in (without, with_fix):
            path = scratch / f"vmstate-{record.name}-{machine}.json".replace("/", "_")
            data = vmstate.dump(hosts.get(record.image_id), record, runner.args(record, machine),
                                path)
            dumps.append(data)
            if outdir is not None:
                comparison.dumps[record.name] = vmstate.keep(
                    path, outdir / "vmstate", f"{record.name}@{machine}".replace("/", "_"))
        a, b = dumps
        comparison.without_sha256, comparison.with_sha256 = vmstate.digest(a), vmstate.digest(b)
        comparison.sections = len(set(a) | set(b))
        comparison.differences = vmstate.diff(a, b)
        comparison.identical = not comparison.differences
        log(f"[probe] vmstate {without.name} vs {with_fix.name} {machine}: "
            + ("identical" if comparison.identical else
               f"{len(comparison.differences)} difference(s)"))
    except PatchcheckError as exc:
        comparison.error = str(exc)
    comparison.seconds = round(time.monotonic() - started, 2)
    return comparison
