"""The cases a run does not run: those an earlier, interrupted run of the same id finished
with the same binaries (`--resume`), and those a failed build leaves skipped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .build import BuildRecord
from .migrate import side
from .outcome import Observed
from .results import Case, CaseResult, Side


def finished_cases(outdir: Path, case_list: Sequence[Case],
                   records: dict[str, BuildRecord]) -> list[CaseResult]:
    """Cases of an earlier (interrupted) run that finished with the same binaries."""
    found = []
    for case in case_list:
        path = outdir / "cases" / case.slug / "result.json"
        try:
            res = CaseResult.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        builds = [records.get(case.source), records.get(case.destination)]
        reusable = res.observed not in (Observed.SKIPPED, Observed.ERROR)
        same = [res.source.binary, res.destination.binary] == [b.binary for b in builds if b]
        if res.case.id == case.id and all(builds) and reusable and same:
            found.append(res)
    return found


def skipped(case: Case, records: dict[str, BuildRecord], build: str, why: str) -> CaseResult:
    def s(name: str) -> Side:
        if name in records:
            return side(records[name])
        return Side(name, "", "", "", False, "")
    return CaseResult(case.machine, case.guest, list(case.globals), s(case.source),
                      s(case.destination), Observed.SKIPPED, Observed.SKIPPED,
                      message=f"build {build} failed: {why}")
