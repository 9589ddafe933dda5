"""The probe's section of index.html (<section id="semantics">)."""

from __future__ import annotations

import html

from patchcheck.probe import versions
from patchcheck.probe.classify import Change
from patchcheck.probe.model import ProbeRun, deviations_text
from patchcheck.report.probe_text import _probed, _vm_text
from patchcheck.verdict.probe import exit_code, words


def html_section(run: ProbeRun) -> str:
    """An HTML fragment for index.html (<section id="semantics">), everything escaped; row
    classes are the page's (passed / failed / error), rows carry data-* for machines."""
    e = html.escape
    rows = []
    for p in run.pairs:
        vm = run.vmstate_for(p.without, p.with_fix, p.machine)
        bad = bool(p.introduced or (vm and vm.incompatible))
        cls = "error" if p.error or (vm and vm.error) else "failed" if bad else "passed"
        mark = {"passed": "✓", "failed": "✗", "error": "⚠"}[cls]
        rows.append(f'<tr class="{cls}" data-pair="{e(p.name)}" data-machine="{e(p.machine)}" '
                    f'data-introduced="{len(p.introduced)}"><td>{mark}</td><td>{e(p.machine)}'
                    f"</td><td>{e(p.without)}</td><td>{e(p.with_fix)}</td>"
                    f"<td>{len(p.changes)}</td><td>{len(p.introduced)}</td>"
                    f"<td>{e(_vm_text(vm))}</td></tr>")
    changes = []
    for p in run.pairs:
        for c in p.changes:
            cls = ' class="failed"' if c.change == Change.INTRODUCED else ""
            changes.append(f"<tr{cls}><td>{e(p.machine)}</td><td>{e(p.name)}</td>"
                           f"<td>{e(c.title or c.register)}</td><td>{c.bit}</td>"
                           f"<td>{e(c.name)}</td><td><code>{e(c.without)}</code></td>"
                           f"<td><code>{e(c.with_fix)}</code></td><td>{e(c.spec or '-')}</td>"
                           f"<td>{e(c.change.value)}{': ' + e(c.reason) if c.reason else ''}"
                           "</td></tr>")
    seen: set[tuple[str, str, str]] = set()
    pre = []
    for p in run.pairs:
        for text in deviations_text(p.preexisting):
            if (p.source, p.machine, text) not in seen:
                seen.add((p.source, p.machine, text))
                pre.append(f"<li>{e(p.machine)} ({e(p.source)}): {e(text)}</li>")
    parts = ['<section id="semantics">', "<h2>Register semantics</h2>",
             f'<p class="small">Each bit of {e(_probed(run))} written and read back on a fresh '
             "paused QEMU; <code>KIND=r</code>: observed behaviour, value after reset. "
             'Every bit: <a href="probe.md">probe.md</a>, JUnit: '
             '<a href="semantics.xml">semantics.xml</a>.</p>',
             f'<p class="verdict{" bad" if exit_code(run) else ""}">{e(words(run))}</p>']
    if rows:
        parts += ["<table><thead><tr><th></th><th>machine</th><th>without fix</th>"
                  "<th>with fix</th><th>changed bits</th><th>introduced violations</th>"
                  "<th>vmstate</th></tr></thead><tbody>", *rows, "</tbody></table>"]
    if changes:
        parts += ["<h3>Guest-visible changes</h3><table><thead><tr><th>machine</th><th>pair</th>"
                  "<th>register</th><th>bit</th><th>name</th><th>without</th><th>with</th>"
                  "<th>spec</th><th>verdict</th></tr></thead><tbody>", *changes,
                  "</tbody></table>"]
    if pre:
        parts += ["<h3>Spec deviations QEMU has without the fix too (not failures)</h3><ul>",
                  *pre, "</ul>"]
    if run.versions:
        parts += ["<h3>Across QEMU versions (old machine type)</h3><ul>",
                  *(f"<li>{e(line.strip())}</li>" for line in versions.lines(run)), "</ul>"]
    parts += [f"<p>note: {e(n)}</p>" for n in [*run.unpaired, *run.notes]]
    parts += [f'<p class="error">error: {e(x)}</p>' for x in run.all_errors]
    parts.append("</section>")
    return "\n".join(parts)
