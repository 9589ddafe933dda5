"""A small matrix on builds named for one question (check, series, bisect): the same run
(`run.run_matrix`: builds, cases judged from the destination, reports), with its own builds,
pairs, guest actions and machine types, and no forced case."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.result.model import RunResults
from patchcheck.run.matrix import MatrixOptions, run_matrix


def small_matrix(settings: Settings, runtime: Runtime, builds: Mapping[str, BuildSpec],
                 pairs: Sequence[str], guests: Mapping[str, str], run_id: str,
                 log: Callable[[str], None], *, machines: str = "", semantics: bool = True,
                 reports_dir: Path | None = None, task: str = "matrix"
                 ) -> tuple[RunResults, Path]:
    """Run it; its results (read back from results.json, as every report reads them) and
    its run directory."""
    matrix = dataclasses.replace(settings.matrix, builds=tuple(builds), pairs=tuple(pairs),
                                 guests=dict(guests), force_global=False, machines=machines,
                                 semantics=settings.matrix.semantics and semantics)
    local = dataclasses.replace(settings, builds=dict(builds), matrix=matrix,
                                reports_dir=reports_dir or settings.reports_dir)
    run_matrix(local, runtime, MatrixOptions(run_id=run_id, task=task), log)
    run_dir = local.reports_dir / run_id
    return RunResults.load(run_dir / "results.json"), run_dir
