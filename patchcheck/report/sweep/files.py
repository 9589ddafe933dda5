"""The sweep's report files, each written whole (a temporary name, renamed): summary.md,
index.html, junit.xml and findings/<n>-<device>/reproduce.sh; and the terminal's text."""

from __future__ import annotations

from pathlib import Path

from patchcheck.report.sweep import html, junit, markdown, reproduce
from patchcheck.report.sweep.facts import finding_dir
from patchcheck.result import files
from patchcheck.result.cells import SweepResults
from patchcheck.verdict.sweep import SweepVerdict


def write_whole(path: Path, text: str, mode: int | None = None) -> Path:
    """`text` at `path`, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return files.write_whole(path, text, mode)


def write_reports(results: SweepResults, outdir: Path, verdict: SweepVerdict,
                  cli: str = "docker") -> dict[str, Path]:
    """Every report of the sweep into `outdir`: name -> path ("summary", "html", "junit",
    "reproduce-<n>"). `cli` is the engine command the reproducers start QEMUs with."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = {
        "summary": write_whole(outdir / "summary.md", markdown.summary(results, verdict)),
        "html": write_whole(outdir / "index.html", html.render(results, verdict)),
        "junit": write_whole(outdir / "junit.xml", junit.to_xml(results, verdict)),
    }
    for number, finding in enumerate(verdict.findings, 1):
        path = outdir / finding_dir(number, finding) / "reproduce.sh"
        written[f"reproduce-{number}"] = write_whole(
            path, reproduce.script(results, finding, cli), 0o755)
    return written


def terminal_text(verdict: SweepVerdict, outdir: Path | None = None) -> str:
    """The findings in a few plain lines, for the caller to print."""
    return markdown.terminal(verdict, str(outdir / "summary.md") if outdir else "")
