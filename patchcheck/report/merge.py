"""Merge the results of matrix shards (`invoke report.merge DIR...`) into one run.

Shard runs record their shard ("K/N") in their settings. A merge of shards takes the whole
set: every K of 1..N once, all of one N, all run with the same matrix (scenario, builds,
pairs, machine types, guest actions, RAM, timeout, accelerator); anything else is refused
with one line (exit 2), e.g. `report.merge: shard 2/3 is missing (have 1/3, 3/3)`. Runs
that are not shards (whole runs merged by hand) merge as before when their cases are
disjoint, but never together with shards.

Shard 1/N runs the register-semantics probe (patchcheck.run.matrix): the merge carries its
probe.json (and probe.md, semantics.xml, vmstate/) into the merged run, so that summary.md,
index.html, junit.xml and the decision read it. At most one of the merged runs may have a
probe: two would be two different verdicts, and the merge refuses to pick one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from patchcheck.errors import UsageError
from patchcheck.report.regenerate import load, write_all
from patchcheck.result.model import RunResults

# The settings every shard of one matrix shares (the accelerator: the one actually used).
SHARED_SETTINGS = ("scenario", "builds", "pairs", "machines", "guests", "ram_mib", "timeout",
                   "accel")
PROBE_FILES = ("probe.json", "probe.md", "semantics.xml")
PROBE_DIRS = ("vmstate",)


@dataclass(frozen=True)
class Shard:
    run_id: str
    k: int
    n: int

    @property
    def name(self) -> str:
        return f"{self.k}/{self.n}"


def shard_of(run: RunResults) -> Shard | None:
    """The shard a run recorded; None for a run that is not a shard."""
    text = str(run.settings.get("shard") or "")
    if not text:
        return None
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise UsageError(f"report.merge: run {run.run_id} records shard '{text}', not K/N")
    return Shard(run.run_id, int(k), int(n))


def check_shards(runs: list[RunResults]) -> None:
    """Refuse an incomplete, mixed or duplicated set of shards (UsageError, one line)."""
    shards = [(r.run_id, shard_of(r)) for r in runs]  # a run given twice counts twice
    given = [s for _, s in shards if s is not None]
    if not given:
        return  # whole runs merged by hand: their cases must be disjoint (merge)
    whole = [rid for rid, s in shards if s is None]
    if whole:
        raise UsageError(f"report.merge: {', '.join(whole)} {'is' if len(whole) == 1 else 'are'}"
                         f" not a shard but {given[0].run_id} is ({given[0].name}): merge a "
                         "set of shards, or whole runs, not both")
    sizes = sorted({s.n for s in given})
    if len(sizes) > 1:
        raise UsageError("report.merge: the shards are of different sets ("
                         + ", ".join(f"{s.run_id}: {s.name}" for s in given) + ")")
    n = sizes[0]
    by_k: dict[int, list[str]] = {}
    for s in given:
        by_k.setdefault(s.k, []).append(s.run_id)
    for k, ids in sorted(by_k.items()):
        if len(ids) > 1:
            raise UsageError(f"report.merge: shard {k}/{n} is given twice ({', '.join(ids)})")
    missing = [f"{k}/{n}" for k in range(1, n + 1) if k not in by_k]
    if missing:
        have = ", ".join(f"{k}/{n}" for k in sorted(by_k))
        what = (f"shard {missing[0]} is" if len(missing) == 1
                else f"shards {', '.join(missing)} are")
        raise UsageError(f"report.merge: {what} missing (have {have})")
    _same_matrix(runs)


def _same_matrix(runs: list[RunResults]) -> None:
    first = runs[0]
    for run in runs[1:]:
        for key in SHARED_SETTINGS:
            a, b = _setting(first, key), _setting(run, key)
            if a != b:
                raise UsageError(f"report.merge: the shards were run with different {key} "
                                 f"({first.run_id}: {a}, {run.run_id}: {b}): not one matrix")


def _setting(run: RunResults, key: str) -> object:
    value = run.settings.get(key)
    if key == "accel" and isinstance(value, str):  # "accelerator: kvm (auto: ...)" -> kvm
        return value.removeprefix("accelerator: ").split(" ", 1)[0]
    return value


def probe_source(run_dirs: list[Path]) -> Path | None:
    """The one run directory with a probe.json (None: no run has one)."""
    having = [d for d in run_dirs if (d / "probe.json").is_file()]
    if len(having) > 1:
        raise UsageError("report.merge: " + ", ".join(d.name for d in having) + " each have "
                         "a register-semantics probe (probe.json); merge runs of which at "
                         "most one ran the probe")
    return having[0] if having else None


def carry_probe(source: Path | None, out_dir: Path) -> None:
    """The probe's files, copied into the merged run (none of an earlier merge into the
    same directory is left behind)."""
    for name in PROBE_FILES:
        (out_dir / name).unlink(missing_ok=True)
        if source is not None and (source / name).is_file():
            shutil.copyfile(source / name, out_dir / name)
    for name in PROBE_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
        if source is not None and (source / name).is_dir():
            shutil.copytree(source / name, out_dir / name)


def merge(run_dirs: list[Path], out_dir: Path) -> RunResults:
    if not run_dirs:
        raise UsageError("report.merge: give the shard run directories to merge")
    runs = [load(d) for d in run_dirs]
    check_shards(runs)
    order = sorted(range(len(runs)), key=lambda i: _order(runs[i]))
    runs, run_dirs = [runs[i] for i in order], [run_dirs[i] for i in order]
    probe = probe_source(run_dirs)
    seen: dict[str, str] = {}
    merged = RunResults(run_id=out_dir.name, builds={}, cases=[],
                        started=min(r.started for r in runs), host=runs[0].host,
                        settings={**runs[0].settings, "shard": "",
                                  "merged_from": [r.run_id for r in runs],
                                  "probe_from": probe.name if probe else ""})
    for run in runs:
        for name, build in run.builds.items():
            if name in merged.builds and merged.builds[name].get("binary_sha256") != \
                    build.get("binary_sha256"):
                raise UsageError(f"report.merge: build '{name}' differs between shards "
                                 f"({run.run_id}); were they run on the same builds?")
            merged.builds.setdefault(name, build)
        for case in run.cases:
            cid = case.case.id
            if cid in seen:
                raise UsageError(f"report.merge: case {cid} is in both {seen[cid]} and "
                                 f"{run.run_id}: these are not disjoint shards")
            seen[cid] = run.run_id
            merged.cases.append(case)
        merged.seconds = max(merged.seconds, run.seconds)
        merged.partial = merged.partial or run.partial
    from patchcheck.qemu.machine_types import q35_version

    merged.cases.sort(key=lambda r: (q35_version(r.machine), r.source.build,
                                     r.destination.build, r.guest, r.globals))
    out_dir.mkdir(parents=True, exist_ok=True)
    carry_probe(probe, out_dir)  # before the reports: they read it
    write_all(merged, out_dir)
    return merged


def _order(run: RunResults) -> tuple[int, str]:
    """Shards by K (shard-10 after shard-2), other runs as given."""
    shard = shard_of(run)
    return (shard.k if shard else 0, run.run_id if shard else "")
