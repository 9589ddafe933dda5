"""A compact text grid (pair x machine type) for the terminal and for summary.md."""

from __future__ import annotations

from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed

LEGEND = (". passed and F failed with the bug's error, as the model expects; X deviates from "
          "the model (O: failed with another error); ~ flaky; E error; - skipped")


def symbol(r: CaseResult) -> str:
    if r.observed == Observed.ERROR:
        return "E"
    if r.observed == Observed.SKIPPED:
        return "-"
    if r.observed == Observed.FAILED_OTHER:
        return "O"
    if r.observed == Observed.FLAKY and not r.deviates:
        return "~"
    if r.deviates:
        return "X"
    return "F" if r.observed == Observed.FAILED else "."


def render(run: RunResults) -> str:
    if not run.cases:
        return "(no cases)"
    from patchcheck.qemu.machine_types import q35_version

    guests = list(dict.fromkeys(r.guest for r in run.cases))
    pairs = list(dict.fromkeys(f"{r.source.build}->{r.destination.build}" for r in run.cases))
    cols: set[str] = set()
    cells: dict[tuple[str, str], list[CaseResult]] = {}
    for r in run.cases:
        col = r.machine.removeprefix("pc-q35-") + ("*" if r.globals else "")
        cols.add(col)
        cells.setdefault((f"{r.source.build}->{r.destination.build}", col), []).append(r)
    columns = sorted(cols, key=lambda c: (q35_version("pc-q35-" + c.rstrip("*")), c))
    pw = max(len(p) for p in pairs)
    widths = [max(len(c), len(guests)) for c in columns]
    lines = [f"{LEGEND}. Each cell: {'/'.join(guests)}; * = native PCIe hotplug forced.",
             " " * pw + " " + " ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    for p in pairs:
        row = []
        for c, w in zip(columns, widths, strict=True):
            rs = {r.guest: r for r in cells.get((p, c), [])}
            text = "".join(symbol(rs[g]) if g in rs else " " for g in guests).rstrip()
            row.append((text or "").rjust(w))
        lines.append(p.rjust(pw) + " " + " ".join(row))
    return "\n".join(lines)
