"""The sweep -> summary.md (Markdown that reads as text), and the terminal's few lines.

Both open with the verdict's own words (patchcheck.verdict.sweep): the headline of the exit code
and its details; the findings are numbered as the verdict orders them, control findings apart.
"""

from __future__ import annotations

from collections.abc import Iterable

from patchcheck.report.sweep.facts import code, finding_dir, known_title, swept_facts
from patchcheck.result.cells import CellOutcome, SweepResults, SweepSide
from patchcheck.verdict.sweep import Finding, SweepVerdict
from patchcheck.verdict.sweep_diff import SweepDiff


def _cell(text: str) -> str:
    return " ".join(text.splitlines()).replace("|", "\\|")


def _sides(results: SweepResults) -> list[str]:
    rows = ["| side | name | spec | QEMU | configuration |", "| --- | --- | --- | --- | --- |"]
    for label, s in (("A", results.a), ("B", results.b)):
        rows.append(f"| {label} | {_cell(s.name)} | {_cell(s.spec)} | {_cell(s.qemu_version)} "
                    f"| {_cell(_configuration(s))} |")
    return rows


def _configuration(s: SweepSide) -> str:
    package = f" (package {s.package_version})" \
        if s.package_version and s.package_version not in s.configuration else ""
    return (s.configuration or "?") + package


def finding_lines(number: int, f: Finding) -> list[str]:
    link = f"{finding_dir(number, f)}/reproduce.sh"
    return [
        f"### {number}. {f.device}",
        "",
        f"- device: {code(f.device)}, placement {f.placement}, guest action {f.action}",
        f"- direction: {f.direction}, {f.source} -> {f.destination}",
        f"- machine types: {f.ranges} ({len(f.machines)})",
        f"- error: {code(f.error)}",
        f"- known bug: {known_title(f.known)}" if f.known else "- known bug: unknown",
        f"- reproduce: [{link}]({link})",
        ""]


def _findings(results: SweepResults, verdict: SweepVerdict) -> list[str]:
    numbered = list(enumerate(verdict.findings, 1))
    main = [x for n, f in numbered if not f.control for x in finding_lines(n, f)]
    control = [x for n, f in numbered if f.control for x in finding_lines(n, f)]
    a, b = results.a.name, results.b.name
    out = ["## Findings", "", *(main or [f"No migration between {a} and {b} failed.", ""])]
    if control:
        out += [f"## Control findings ({a} -> {a}: bugs of {a} alone)", "", *control]
    return out


def group_line(f: Finding) -> str:
    return (f"- {f.device} @{f.placement}, action {f.action}, {f.direction} {f.source} -> "
            f"{f.destination}: {f.ranges}: {code(f.error)}"
            + (f" (known: {f.known})" if f.known else ""))


def _diff(d: SweepDiff) -> list[str]:
    out = ["## Compared with the base sweep", "",
           f"{d.regressed_cells} regressed cells, {d.fixed_cells} fixed cells, "
           f"{len(d.changed)} other changes of outcome; {d.only_base} cells only in the base "
           f"sweep, {d.only_new} only in this one.", ""]
    if d.regressions:
        out += ["Regressions (failing now, passed in the base sweep):", "",
                *(group_line(f) for f in d.regressions), ""]
    if d.fixes:
        out += ["Fixes (passing now, failed in the base sweep):", "",
                *(group_line(f) for f in d.fixes), ""]
    if d.changed:
        out += ["Other changes:", "", *(f"- {c.key.text}: {c.before} -> {c.after}"
                                        for c in d.changed), ""]
    return out


def _rest(results: SweepResults, verdict: SweepVerdict) -> list[str]:
    out: list[str] = []
    if verdict.patch is not None:
        out += ["## New failures (the patch's)", "",
                *((group_line(f) for f in verdict.patch.new_failures) if verdict.patch.new_failures
                  else ["None: nothing fails between A and B that does not fail between A "
                        "and itself."]),
                ""]
    if verdict.diff is not None:
        out += _diff(verdict.diff)
    if results.notes:
        out += ["## Not swept", "", *(f"- {n}" for n in results.notes), ""]
    out += ["## Device types not run", ""]
    out += [f"- {code(u.device)}: {u.reason}" + (f" ({u.side})" if u.side else "")
            + (f": {code(u.detail)}" if u.detail else "") for u in results.unrunnable] or ["None."]
    errors = [c for c in results.cells if c.outcome == CellOutcome.ERROR]
    out += ["", "## Cells without an answer (error)", ""]
    out += [f"- {c.key.text}: {code(c.error) if c.error else 'no error line'}"
            for c in errors] or ["None."]
    return out


def summary(results: SweepResults, verdict: SweepVerdict) -> str:
    """summary.md."""
    out = [f"# patchcheck sweep: {results.a.name} and {results.b.name}", "",
           f"**{verdict.headline}**", "", *(f"- {d}" for d in verdict.details), "",
           "## Sides", "", *_sides(results), "", "## What was swept", "",
           *(f"- {what}: {value}" for what, value in swept_facts(results)), "",
           *_findings(results, verdict), *_rest(results, verdict)]
    return "\n".join(out).rstrip("\n") + "\n"


def _short(number: int, f: Finding) -> str:
    return (f"  {number}. [{f.known or 'UNKNOWN'}] {f.device} @{f.placement} {f.action} "
            f"{f.direction} {f.source} -> {f.destination}: {f.ranges}: {f.error}")


def terminal(verdict: SweepVerdict, where: str = "") -> str:
    """The few lines the caller prints: the verdict, the findings one a line, the reports."""
    numbered: Iterable[tuple[int, Finding]] = list(enumerate(verdict.findings, 1))
    main = [_short(n, f) for n, f in numbered if not f.control]
    control = [_short(n, f) for n, f in numbered if f.control]
    lines = [verdict.headline, *(f"  {d}" for d in verdict.details)]
    if main:
        lines += ["Findings:", *main]
    if control:
        lines += ["Control findings (A -> A: bugs of A alone):", *control]
    if where:
        lines.append(f"Reports: {where}")
    return "\n".join(lines)
