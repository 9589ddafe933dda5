"""Write every report of a run, and rebuild them later from results.json alone.

`write_all` is what the matrix run calls at its end; `regenerate` and `report_command`
(`invoke report`) rebuild junit.xml, index.html and summary.md without running anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from patchcheck import paths
from patchcheck.errors import UsageError
from patchcheck.report import html, junit, markdown
from patchcheck.result.model import RunResults, write_json


def write_reports(run: RunResults, run_dir: Path) -> dict[str, Path]:
    """junit.xml, index.html and summary.md from `run`; log paths resolved in `run_dir`."""
    return {"junit": junit.write(run, run_dir), "html": html.write(run, run_dir),
            "summary": markdown.write(run, run_dir)}


def write_all(run: RunResults, run_dir: Path) -> dict[str, Path]:
    """results.json first (the source of everything else), then the reports."""
    write_json(run_dir / "results.json", run.to_dict())
    return {"results": run_dir / "results.json", **write_reports(run, run_dir)}


def load(run_dir: Path) -> RunResults:
    path = run_dir / "results.json"
    if not run_dir.is_dir():
        runs = sorted(p.parent.name for p in run_dir.parent.glob("*/results.json")
                      if p.parent.name != "latest")[-10:]
        known = f" (runs there: {', '.join(runs)})" if runs else ""
        raise UsageError(f"no run directory {run_dir}{known}")
    if not path.is_file():
        raise UsageError(f"{path} does not exist: the run wrote no results")
    try:
        return RunResults.load(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            ValueError, AttributeError) as exc:
        raise UsageError(f"{path} is not a patchcheck results.json: "
                         f"{type(exc).__name__}: {exc}".splitlines()[0]) from None


def run_dir_of(reports_dir: Path, ref: str) -> Path:
    """A run given as an id under reports_dir (or `latest`), or as the path of a run
    directory (one with a `/`: e.g. a pipeline's downloaded shard)."""
    if "/" in ref:
        return Path(ref)
    if ref in ("", "latest"):
        return reports_dir / "latest"
    return paths.run_dir(reports_dir, ref, "--run")


def regenerate(run_dir: Path) -> dict[str, Path]:
    return write_reports(load(run_dir), run_dir)


def report_command(reports_dir: Path, run: str | None, open_: bool) -> int:
    """`invoke report [--run ID] [--open]`: regenerate one run's reports (default: latest)."""
    name = run or "latest"
    if not run and not (reports_dir / "latest").exists():
        raise UsageError(f"no run in {reports_dir} (no 'latest'): pass --run ID")
    run_dir = run_dir_of(reports_dir, name).resolve()
    written = regenerate(run_dir)
    for path in written.values():
        print(f"wrote {path}")
    if open_:
        print(written["html"])
    return 0
