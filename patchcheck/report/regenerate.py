"""Write every report of a run, and rebuild them later from results.json alone.

`write_all` is what the matrix run calls at its end; `regenerate` and `report_command`
(`invoke report`) rebuild junit.xml, index.html and summary.md without running anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from patchcheck import paths
from patchcheck.errors import UsageError, disk_full, is_no_space
from patchcheck.report import html, junit, markdown
from patchcheck.result.model import RunResults, write_json


def write_reports(run: RunResults, run_dir: Path) -> dict[str, Path]:
    """junit.xml, index.html and summary.md from `run`; log paths resolved in `run_dir`."""
    return {"junit": junit.write(run, run_dir), "html": html.write(run, run_dir),
            "summary": markdown.write(run, run_dir)}


def write_all(run: RunResults, run_dir: Path) -> dict[str, Path]:
    """results.json first (the source of everything else), then the reports. On a full disk
    each file is written whole or not at all, every one that fits is, and DiskFull names
    those that did not."""
    steps: dict[tuple[str, str], Callable[[], Path]] = {
        ("results", "results.json"): lambda: _results_json(run, run_dir),
        ("junit", "junit.xml"): lambda: junit.write(run, run_dir),
        ("html", "index.html"): lambda: html.write(run, run_dir),
        ("summary", "summary.md"): lambda: markdown.write(run, run_dir)}
    written: dict[str, Path] = {}
    refused: list[str] = []
    for (name, filename), step in steps.items():
        try:
            written[name] = step()
        except OSError as exc:
            if not is_no_space(exc):
                raise
            refused.append(filename)
    if refused:
        raise disk_full("the reports directory", run_dir,
                        f"{', '.join(refused)} not written ({len(run.cases)} finished cases' "
                        "result.json are in cases/)")
    return written


def _results_json(run: RunResults, run_dir: Path) -> Path:
    write_json(run_dir / "results.json", run.to_dict())
    return run_dir / "results.json"


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
