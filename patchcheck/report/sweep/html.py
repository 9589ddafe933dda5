"""The sweep -> index.html: one self-contained page (inline CSS, no script, no external asset).

The verdict's words, both sides, then a heat map per direction: a row per device type, a column
per machine type (families apart, version order), each cell the worst outcome of that device's
placements and guest actions there (its title lists them), coloured and marked by kind; then
the findings. Heat-map cells carry data-device, data-machine, data-direction and data-outcome
for machines (the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from patchcheck.report import html as house
from patchcheck.report.sweep.facts import arrow, finding_dir, known_title, swept_facts
from patchcheck.result.cells import Cell, CellOutcome, SweepResults
from patchcheck.verdict.sweep import Finding, SweepVerdict, known_bug, machine_order
from patchcheck.verdict.sweep_findings import DIRECTIONS, machine_parts

# Kinds of heat-map cell, best first: a cell shows the worst of its placements and actions.
KINDS = ("passed", "skipped", "error", "failed-known", "failed-unknown")
SYMBOL = {"passed": "✓", "skipped": "–", "error": "⚠", "failed-known": "✗",
          "failed-unknown": "!"}
LABEL = {"passed": "passed", "skipped": "not started, unmigratable or blocked",
         "error": "error: no answer", "failed-known": "failed: a known bug",
         "failed-unknown": "failed: unknown"}
CSS = house.CSS + """
.heat td.h{text-align:center;padding:0 .15em;min-width:1.6em;font-weight:bold}
.heat td.h a{color:#111;text-decoration:none;display:block}
.failed-known{background:#f6c98a}.failed-unknown{background:#d9534f;color:#fff}
.heat td.failed-unknown a{color:#fff}.heat th.d{text-align:left;white-space:nowrap}
.findings td{vertical-align:top}.findings tr:target{outline:3px solid #0072b2}
"""


def kind(cell: Cell) -> str:
    if cell.outcome == CellOutcome.FAILED:
        return "failed-known" if known_bug(cell) else "failed-unknown"
    if cell.outcome == CellOutcome.PASSED:
        return "passed"
    return "error" if cell.outcome == CellOutcome.ERROR else "skipped"


def worst(cells: Iterable[Cell]) -> str:
    return max((kind(c) for c in cells), key=KINDS.index, default="")


def _title(device: str, machine: str, direction: str, cells: Sequence[Cell]) -> str:
    parts = [f"{c.placement}/{c.action} {c.outcome}"
             + (f" ({known_bug(c)})" if known_bug(c) else "")
             + (f": {c.error}" if c.error and c.outcome != CellOutcome.PASSED else "")
             for c in sorted(cells, key=lambda c: (c.placement, c.action))]
    return f"{device}, {machine}, {direction}: " + "; ".join(parts)


def _td(device: str, machine: str, direction: str, cells: Sequence[Cell], link: str) -> str:
    if not cells:
        return '<td class="none"></td>'
    k = worst(cells)
    mark = f'<a href="#{link}">{SYMBOL[k]}</a>' if link else SYMBOL[k]
    return (f'<td class="h {k}" data-device="{escape(device)}" data-machine="{escape(machine)}" '
            f'data-direction="{escape(direction)}" data-outcome="{k}" '
            f'title="{escape(_title(device, machine, direction, cells))}">{mark}</td>')


def _head(machines: Sequence[str]) -> str:
    families: dict[str, int] = {}
    for m in machines:
        families[machine_parts(m)[0]] = families.get(machine_parts(m)[0], 0) + 1
    top = "".join(f'<th colspan="{n}">{escape(f)}</th>' for f, n in families.items())
    versions = "".join(f'<th class="small" title="{escape(m)}">{escape(machine_parts(m)[1] or m)}'
                       "</th>" for m in machines)
    return (f'<thead><tr><th class="d" rowspan="2">device type</th>{top}</tr>'
            f"<tr>{versions}</tr></thead>")


def heat_map(results: SweepResults, direction: str, links: dict[tuple[str, str, str], str]) -> str:
    """One direction's table: device types x machine types."""
    cells: dict[tuple[str, str], list[Cell]] = {}
    for c in results.cells:
        if c.direction == direction:
            cells.setdefault((c.device, c.machine), []).append(c)
    machines = machine_order([*results.machines, *(m for _, m in cells)])
    devices = list(dict.fromkeys([*results.devices, *(d for d, _ in cells)]))
    body = "".join(
        f'<tr><th class="d">{escape(d)}</th>'
        + "".join(_td(d, m, direction, cells.get((d, m), []), links.get((d, m, direction), ""))
                  for m in machines) + "</tr>"
        for d in devices if any((d, m) in cells for m in machines))
    return (f'<h3>{escape(direction)}: {escape(arrow(results, direction))}</h3>'
            f'<div class="wrap"><table class="heat">{_head(machines)}<tbody>{body}</tbody>'
            "</table></div>")


def legend() -> str:
    items = [f'<span class="k {k}">{SYMBOL[k]}</span>{escape(LABEL[k])}' for k in KINDS]
    items.append('<span class="k"></span>blank: not swept')
    return f'<p class="legend">{"".join(items)}</p>'


def _links(found: Sequence[Finding]) -> dict[tuple[str, str, str], str]:
    """(device, machine, direction) -> the anchor of the first finding with a cell there."""
    links: dict[tuple[str, str, str], str] = {}
    for number, f in enumerate(found, 1):
        for c in f.cells:
            links.setdefault((c.device, c.machine, c.direction), f"f-{number}")
    return links


def _finding_row(number: int, f: Finding) -> str:
    link = f"{finding_dir(number, f)}/reproduce.sh"
    known = escape(known_title(f.known)) if f.known else "<b>unknown</b>"
    return (f'<tr id="f-{number}"><td>{number}</td><td><code>{escape(f.device)}</code></td>'
            f"<td>{escape(f.placement)}</td><td>{escape(f.action)}</td>"
            f"<td>{escape(f.direction)}: {escape(f.source)} &rarr; {escape(f.destination)}</td>"
            f"<td>{escape(f.ranges)}</td><td><code>{escape(f.error)}</code></td><td>{known}</td>"
            f'<td><a href="{escape(link)}">reproduce.sh</a></td></tr>')


def findings_table(found: Sequence[Finding]) -> str:
    if not found:
        return "<p>No migration failed.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("#", "device", "placement", "action", "direction",
                                             "machine types", "error", "known bug", "reproduce"))
    rows = "".join(_finding_row(n, f) for n, f in enumerate(found, 1))
    return f'<table class="findings"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _header(results: SweepResults, verdict: SweepVerdict) -> str:
    cls = "verdict" if verdict.code == 0 else "verdict bad"
    words = "<br>".join(escape(line) for line in verdict.lines)
    sides = "".join(f"<tr><th>{label}</th><td>{escape(s.name)}</td><td>{escape(s.spec)}</td>"
                    f"<td>{escape(s.qemu_version)}</td><td>{escape(s.configuration)}</td></tr>"
                    for label, s in (("A", results.a), ("B", results.b)))
    facts = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                    for k, v in swept_facts(results))
    return (f'<p class="{cls}" id="verdict" data-exit="{verdict.code}">{words}</p>'
            '<h2>Sides</h2><table class="sides"><thead><tr><th></th><th>name</th><th>spec</th>'
            f"<th>QEMU</th><th>configuration</th></tr></thead><tbody>{sides}</tbody></table>"
            f'<h2>What was swept</h2><table class="meta">{facts}</table>')


def _unrunnable(results: SweepResults) -> str:
    if not results.unrunnable:
        return ""
    items = "".join(f"<li><code>{escape(u.device)}</code>: {escape(u.reason)}"
                    + (f" ({escape(u.side)})" if u.side else "")
                    + (f": <code>{escape(u.detail)}</code>" if u.detail else "") + "</li>"
                    for u in results.unrunnable)
    return f"<h2>Device types not run</h2><ul>{items}</ul>"


def render(results: SweepResults, verdict: SweepVerdict) -> str:
    found = list(verdict.findings)
    links = _links(found)
    present = [d for d in DIRECTIONS if any(c.direction == d for c in results.cells)]
    maps = "".join(heat_map(results, d, links) for d in present) or "<p>No cell ran.</p>"
    title = f"patchcheck sweep: {results.a.name} and {results.b.name}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>{_header(results, verdict)}"
            f"<h2>Heat maps</h2>{legend()}{maps}"
            f"<h2>Findings</h2>{findings_table(found)}{_unrunnable(results)}</body></html>\n")
