"""results -> summary.md: plain text fit for a mailing-list reply (Markdown that reads as text).

Also the plain-text facts of a run ("what was tested"), which index.html shows too.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from patchcheck.report import grid
from patchcheck.result.files import write_whole
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed

BUILD_FIELDS = ("build", "source", "commit", "QEMU", "fix", "applied", "image", "built")
LIST_LIMIT = 20  # errors and skipped cases listed one by one; deviations always all


def _fix(b: dict[str, Any]) -> dict[str, Any]:
    fix = b.get("fix")
    return fix if isinstance(fix, dict) else {}


def build_facts(name: str, b: dict[str, Any]) -> list[tuple[str, str]]:
    """(short, full) per BUILD_FIELDS for one build record of results.json."""
    fix = _fix(b)
    source = str(b.get("source", ""))
    package = f" = {b['package_version']}" if b.get("package_version") else ""
    commit = str(b.get("commit", ""))
    image_id = str(b.get("image_id", ""))
    image = f"{b.get('image', '')} {image_id[:19]}".strip()
    has = {True: "has the fix", False: "no fix"}.get(bool(fix["has_fix"])) if "has_fix" in fix else ""
    applied = ", ".join(x for x in (str(fix.get("applied", "")), has, str(fix.get("note") or ""))
                        if x)
    if b.get("failed"):
        built = f"FAILED: {b['failed']}"
    else:
        built = "cached" if b.get("cached") else f"{b.get('seconds', '?')} s"
    return [(name, name), (source + package, source + package), (commit[:12], commit),
            (str(b.get("qemu_version", "")), str(b.get("qemu_version", ""))),
            (str(fix.get("state", "")), str(fix.get("patch") or fix.get("state", ""))),
            (applied, applied), (image, f"{b.get('image', '')} {image_id}".strip()),
            (built, built)]


def run_facts(run: RunResults) -> list[tuple[str, str]]:
    s, h = run.settings, run.host
    guests = s.get("guests", {})
    guest_text = (", ".join(f"{g} ({where})" for g, where in guests.items())
                  if isinstance(guests, dict) else str(guests))
    counts: dict[str, int] = defaultdict(int)
    for r in run.cases:
        counts[r.observed.value] += 1
    return [
        ("run", f"{run.run_id}, started {run.started or '?'}, took {run.seconds:g} s"
                + (" (PARTIAL: not every planned case finished)" if run.partial else "")),
        ("host", f"{h.get('hostname', '?')}, kernel {h.get('kernel', '?')}, "
                 f"{h.get('cpus', '?')} CPUs, Python {h.get('python', '?')}"),
        ("accelerator", f"{s.get('accel', '?')}, guest RAM {s.get('ram_mib', '?')} MiB, "
                        f"{s.get('jobs', '?')} cases in parallel, timeout {s.get('timeout', '?')} s"),
        ("matrix", f"scenario {s.get('scenario', '?')}; machine types {s.get('machines', '?')}; "
                   f"pairs {', '.join(s.get('pairs', [])) or '?'}; guest actions {guest_text}"),
        ("cases", f"{len(run.cases)}: " + ", ".join(f"{counts[o.value]} {o.value}"
                                                    for o in Observed if counts[o.value])),
    ]


def error_line(r: CaseResult) -> str:
    """The destination's first error line, or the case's message, or what happened instead."""
    for text in (r.destination_error, r.message):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    if r.observed == Observed.PASSED:
        return f"no error: the destination ran (status {r.destination_status or '?'})"
    return "no error line recorded"


def _case_line(r: CaseResult) -> str:
    return (f"- `{r.case.id}`: observed {r.observed.value}, expected {r.expected.value}\n"
            f"  destination: {error_line(r)}")


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", title, "-" * len(title), "", *lines] if lines else []


def _listed(results: list[CaseResult], describe: str) -> list[str]:
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        groups[error_line(r)].append(r)
    out = []
    for why, rs in groups.items():
        ids = ", ".join(f"`{r.case.id}`" for r in rs[:LIST_LIMIT])
        more = f" and {len(rs) - LIST_LIMIT} more" if len(rs) > LIST_LIMIT else ""
        out.append(f"- {len(rs)} {describe}: {why}\n  {ids}{more}")
    return out


def render(run: RunResults, semantics: Any = None) -> str:
    """`semantics`: the run's probe result (patchcheck.probe.model.ProbeRun), if any."""
    from patchcheck.verdict.decision import decide_run, semantics_of, task_of

    decision = decide_run(run, semantics_of(semantics))
    deviating = [r for r in run.cases if r.deviates]
    flaky = [r for r in run.cases if r.observed == Observed.FLAKY and not r.deviates]
    errors = [r for r in run.cases if r.observed == Observed.ERROR]
    skipped = [r for r in run.cases if r.observed == Observed.SKIPPED]
    title = f"patchcheck run {run.run_id}"
    task = task_of(run)
    lines = [title, "=" * len(title), "", "Verdict: " + "\n".join(decision.lines(task))]
    lines += _section("What was tested", [f"- {k}: {v}" for k, v in run_facts(run)])
    lines += ["", "Builds:", ""]
    for name, b in run.builds.items():
        facts = dict(zip(BUILD_FIELDS, (short for short, _ in build_facts(name, b)), strict=True))
        lines.append(f"- {name}: {facts['source']}, commit {facts['commit'] or '?'}, QEMU "
                     f"{facts['QEMU'] or '?'}, fix {facts['fix'] or '?'} ({facts['applied']}), "
                     f"image {facts['image'] or '?'}, built {facts['built']}")
    table = grid.render(run).splitlines()
    lines += _section("Results", [table[0], "", *("    " + t for t in table[1:])])
    lines += _section(f"Cases that deviate from the model ({len(deviating)})",
                      [_case_line(r) for r in deviating] or ["None."])
    lines += _section(f"Flaky: failed, then passed on a second attempt ({len(flaky)})",
                      _listed(flaky, "flaky"))
    lines += _section(f"Infrastructure errors ({len(errors)})", _listed(errors, "errored"))
    lines += _section(f"Skipped ({len(skipped)})", _listed(skipped, "skipped"))
    if semantics is not None:
        from patchcheck.report import probe_text as probe_report

        lines += ["", probe_report.markdown(semantics)]
    lines += ["", "Per-case logs and reproducers: index.html and cases/ in the run directory; "
              "machine-readable: results.json, junit.xml.", ""]
    return "\n".join(lines)


def write(run: RunResults, run_dir: Path) -> Path:
    from patchcheck.probe import model as probe_model

    return write_whole(run_dir / "summary.md", render(run, probe_model.load(run_dir)))
