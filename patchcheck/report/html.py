"""results -> index.html: one self-contained page (inline CSS, no script, no external asset).

The grid has a row per machine type (numeric order; forced -globals get their own row), a
column group per source->destination pair and a cell per guest action. A cell shows the
observed outcome as a symbol and a colour, a second mark where it differs from the model,
and links to the case's entry below it, which links to the case's logs. Cells carry
data-case-id, data-observed, data-expected and data-deviates for machines (the tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path
from urllib.parse import quote

from patchcheck.errors import UsageError
from patchcheck.qemu.machine_types import q35_version
from patchcheck.report.junit import log_paths
from patchcheck.report.markdown import BUILD_FIELDS, build_facts, run_facts
from patchcheck.result.files import write_whole
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed
from patchcheck.verdict.judge import scenario_title

SYMBOL = {Observed.PASSED: "✓", Observed.FAILED: "✗", Observed.FAILED_OTHER: "✗?",
          Observed.FLAKY: "≈", Observed.ERROR: "⚠", Observed.SKIPPED: "–"}
DEVIATES = "≠"
LOG_LABEL = {"source": "source QEMU log", "destination": "destination QEMU log",
             "console": "guest console log", "reproduce": "reproduce.sh"}

Row = tuple[str, tuple[str, ...]]

CSS = """
body{font:14px/1.4 "DejaVu Sans",Verdana,sans-serif;margin:1.5em;color:#111;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse}th,td{border:1px solid #999;padding:.15em .4em;vertical-align:top}
th{background:#eee;text-align:left}.meta th{width:9em}.small{font-size:.85em;color:#444}
.verdict{border:3px solid #111;padding:.5em .8em;font-size:1.1em;margin:.8em 0}
.verdict.bad{border-style:double;border-width:5px}.partial{font-weight:bold}
code,pre{font-family:"DejaVu Sans Mono",monospace;font-size:.9em}
pre{white-space:pre-wrap;word-break:break-all;margin:.2em 0}
.wrap{overflow-x:auto}.grid th{text-align:center;white-space:nowrap}.grid th.m{text-align:left}
.grid td.c{text-align:center;padding:0;min-width:2.4em;height:1.8em}
.grid td.c a{display:block;padding:.15em .3em;color:#111;text-decoration:none;font-weight:bold;
font-size:1.15em}.grid th.m{max-width:16em;white-space:normal}
.passed{background:#bfe6d5}.failed{background:#f6c98a}.error{background:#cdbde6}
.skipped{background:#e4e4e4}.failed-other{background:#e69f9f}.flaky{background:#f0e68c}
td.dev{outline:3px solid #111;outline-offset:-3px;background-image:repeating-linear-gradient(
45deg,transparent 0 5px,rgba(0,0,0,.22) 5px 7px)}
.mark{font-size:.8em;vertical-align:super;margin-left:.1em}
.legend span.k{display:inline-block;min-width:2.2em;height:1.4em;line-height:1.4em;
vertical-align:middle;text-align:center;border:1px solid #999;
margin:0 .3em 0 1em;font-weight:bold}
.legend span.k.dev{outline:3px solid #111;outline-offset:-3px}
.cases td.o{text-align:center;font-weight:bold;white-space:nowrap}
.cases tr:target{outline:3px solid #0072b2}
@page{size:landscape;margin:1cm}
@media print{body{margin:0;font-size:10px}.wrap{overflow:visible}a{color:inherit}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}details pre{display:block}
tr{break-inside:avoid}}
"""


def _machine_key(row: Row) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    try:
        return (q35_version(row[0]), "", row[1])
    except UsageError:  # not a pc-q35 type: after them, by name
        return ((1 << 30,), row[0], row[1])


def rows(cases: Iterable[CaseResult]) -> list[Row]:
    return sorted({(r.machine, tuple(r.globals)) for r in cases}, key=_machine_key)


def pair(r: CaseResult) -> str:
    return f"{r.source.build}->{r.destination.build}"


def _fix_name(fix: str) -> str:
    return Path(fix).name if "/" in fix else fix or "?"  # a patch file: its name


def _cell_id(r: CaseResult) -> str:
    return "c-" + r.case.slug


def _describe(r: CaseResult) -> str:
    text = f"{r.case.id}: {r.observed.value}, expected {r.expected.value}"
    return text + (" (deviates from the model)" if r.deviates else "")


def _cell(r: CaseResult | None) -> str:
    if r is None:
        return '<td class="none"></td>'
    obs = r.observed.value
    mark = f'<span class="mark">{DEVIATES}</span>' if r.deviates else ""
    return (f'<td class="c {obs}{" dev" if r.deviates else ""}" data-case-id="{escape(r.case.id)}"'
            f' data-observed="{obs}" data-expected="{r.expected.value}"'
            f' data-deviates="{str(r.deviates).lower()}"><a href="#{escape(_cell_id(r))}"'
            f' title="{escape(_describe(r))}" aria-label="{escape(_describe(r))}">'
            f"{SYMBOL[r.observed]}{mark}</a></td>")


def _row_label(row: Row) -> str:
    extra = "".join(f'<br><span class="small" title="-global {escape(g)}">+ '
                    f"{escape(g.split('=')[0].split('.')[-1])}={escape(g.split('=')[-1])}</span>"
                    for g in row[1])
    return f'<th class="m">{escape(row[0])}{extra}</th>'


def grid_html(run: RunResults) -> str:
    if not run.cases:
        return "<p>No case ran.</p>"
    guests = list(dict.fromkeys(r.guest for r in run.cases))
    pairs = list(dict.fromkeys(pair(r) for r in run.cases))
    first = {pair(r): r for r in reversed(run.cases)}
    cells = {(r.machine, tuple(r.globals), pair(r), r.guest): r for r in run.cases}
    head1 = ['<th class="m" rowspan="2">machine type</th>']
    for p in pairs:
        r = first[p]
        head1.append(f'<th colspan="{len(guests)}">{escape(r.source.build)} &rarr; '
                     f'{escape(r.destination.build)}<br><span class="small">fix '
                     f"{escape(_fix_name(r.source.fix))} &rarr; "
                     f"{escape(_fix_name(r.destination.fix))}"
                     "</span></th>")
    head2 = [f'<th class="small">{escape(g)}</th>' for _ in pairs for g in guests]
    body = []
    for row in rows(run.cases):
        tds = [_cell(cells.get((*row, p, g))) for p in pairs for g in guests]
        body.append(f"<tr>{_row_label(row)}{''.join(tds)}</tr>")
    return (f'<div class="wrap"><table class="grid"><thead><tr>{"".join(head1)}</tr>'
            f'<tr>{"".join(head2)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def legend() -> str:
    items = [f'<span class="k {o.value}">{SYMBOL[o]}</span>{o.value}' for o in Observed]
    items.append(f'<span class="k dev">{DEVIATES}</span>outlined, hatched and marked {DEVIATES}:'
                 " observed differs from what the model expects")
    items.append('<span class="k"></span>blank: not part of the matrix')
    return f'<p class="legend">{"".join(items)}</p>'


def _link(run_dir: Path, role: str, path: str) -> str:
    label = escape(LOG_LABEL.get(role, f"{role} log"))
    target = run_dir / path if not Path(path).is_absolute() else Path(path)
    if not target.is_file():
        return f"{label} (missing)"
    href = Path(path).as_uri() if Path(path).is_absolute() else quote(path)
    return f'<a href="{escape(href)}">{label}</a>'


def _case_row(r: CaseResult, run_dir: Path) -> str:
    logs = " &middot; ".join(_link(run_dir, role, p) for role, p in log_paths(r, run_dir).items())
    detail = r.destination_error or r.message
    why = f"<pre>{escape(detail)}</pre>" if detail else ""
    if r.message and r.destination_error and r.message not in r.destination_error:
        why = f"<pre>{escape(r.message)}</pre>{why}"
    repro = (f"<details><summary>reproducer command</summary><pre>{escape(r.reproduce)}</pre>"
             "</details>") if r.reproduce else ""
    dev = f'<span class="mark">{DEVIATES}</span>' if r.deviates else ""
    return (f'<tr id="{escape(_cell_id(r))}"><td class="o {r.observed.value}'
            f'{" dev" if r.deviates else ""}">{SYMBOL[r.observed]}{dev}</td>'
            f"<td><code>{escape(r.case.id)}</code><br>observed <b>{r.observed.value}</b>, "
            f"expected {r.expected.value}; {r.seconds:.2f} s</td>"
            f'<td class="logs">{logs or "no logs"}{repro}</td><td>{why}</td></tr>')


def cases_html(run: RunResults, run_dir: Path) -> str:
    order = {row: i for i, row in enumerate(rows(run.cases))}
    ordered = sorted(run.cases, key=lambda r: order[(r.machine, tuple(r.globals))])
    body = "".join(_case_row(r, run_dir) for r in ordered)
    return ('<table class="cases"><thead><tr><th></th><th>case</th><th>logs</th>'
            f"<th>destination error / message</th></tr></thead><tbody>{body}</tbody></table>")


def header_html(run: RunResults) -> str:
    meta = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in run_facts(run))
    head = "".join(f"<th>{escape(f)}</th>" for f in BUILD_FIELDS)
    body = "".join("<tr>" + "".join(f'<td title="{escape(full)}">{escape(short)}</td>'
                                    for short, full in build_facts(name, b)) + "</tr>"
                   for name, b in run.builds.items())
    return (f'<h2>What was tested</h2><table class="meta">{meta}</table>'
            f'<h2>Builds</h2><div class="wrap"><table class="builds"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>")


def _deviations(run: RunResults) -> str:
    bad = [r for r in run.cases if r.deviates]
    if not bad:
        return ""
    links = ", ".join(f'<a href="#{escape(_cell_id(r))}">{SYMBOL[r.observed]} '
                      f"{escape(r.case.id)}</a>" for r in bad[:50])
    more = f" and {len(bad) - 50} more" if len(bad) > 50 else ""
    return f"<p>Observed differs from expected in {len(bad)} cases: {links}{more}.</p>"


def render(run: RunResults, run_dir: Path) -> str:
    from patchcheck.verdict.decision import decide_dir, task_of

    decision, task = decide_dir(run, run_dir), task_of(run)
    code = decision.exit_code(task)
    cls = "verdict" if code == 0 else "verdict bad"
    words = "<br>".join(escape(line) for line in decision.lines(task))
    partial = ('<p class="partial">⚠ Partial run: not every planned case finished.</p>'
               if run.partial else "")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>patchcheck {escape(run.run_id)}</title><style>{CSS}</style></head><body>"
            f"<h1>patchcheck run {escape(run.run_id)}</h1>"
            f'<p id="scenario">Scenario: {escape(scenario_title(run.settings))}</p>'
            f'<p class="{cls}" id="verdict" data-exit="{code}">{words}</p>{partial}'
            f"{_deviations(run)}{header_html(run)}<h2>Grid</h2>{legend()}{grid_html(run)}"
            f"{_semantics(run_dir)}"
            f'<h2>Cases</h2>{cases_html(run, run_dir)}</body></html>\n')


def _semantics(run_dir: Path) -> str:
    """The register-semantics probe's section, when the run has one (probe.json)."""
    from patchcheck.probe import model as probe_model
    from patchcheck.report import probe_page

    semantics = probe_model.load(run_dir)
    return probe_page.html_section(semantics) if semantics is not None else ""


def write(run: RunResults, run_dir: Path) -> Path:
    return write_whole(run_dir / "index.html", render(run, run_dir))
