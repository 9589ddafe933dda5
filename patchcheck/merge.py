"""Merge the results of matrix shards (`invoke report.merge DIR...`) into one run."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .report.regenerate import load, write_all
from .results import RunResults


def merge(run_dirs: list[Path], out_dir: Path) -> RunResults:
    if not run_dirs:
        raise UsageError("report.merge: give the shard run directories to merge")
    runs = [load(d) for d in run_dirs]
    seen: dict[str, str] = {}
    merged = RunResults(run_id=out_dir.name, builds={}, cases=[],
                        started=min(r.started for r in runs), host=runs[0].host,
                        settings={**runs[0].settings, "shard": "",
                                  "merged_from": [r.run_id for r in runs]})
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
    from .matrix import q35_version

    merged.cases.sort(key=lambda r: (q35_version(r.machine), r.source.build,
                                     r.destination.build, r.guest, r.globals))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_all(merged, out_dir)
    return merged
