"""What every sweep report says the same way: the facts of what was swept, the arrow of a
direction, a known bug's title, a finding's directory, a code span."""

from __future__ import annotations

import re
from collections import Counter

from patchcheck.errors import UsageError
from patchcheck.result.cells import CellOutcome, Direction, SweepResults
from patchcheck.verdict.sweep import Finding, machine_ranges


def finding_dir(number: int, finding: Finding) -> str:
    """findings/<n>-<device>, relative to the report directory (n from 1)."""
    return f"findings/{number}-{re.sub(r'[^A-Za-z0-9._-]+', '_', finding.device)}"


def code(text: str) -> str:
    """A Markdown code span of one line, whatever backticks the text holds."""
    text = " ".join(text.splitlines())
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def known_title(name: str) -> str:
    """A scenario by name and title, "<name> (<title>)"; a name the registry does not know
    stays as it is."""
    from patchcheck.scenarios import registry

    try:
        return f"{name} ({registry.get(name).title})"
    except UsageError:
        return name


def arrow(results: SweepResults, direction: str) -> str:
    a, b = results.a.name, results.b.name
    ends: dict[str, tuple[str, str]] = {Direction.FORWARD: (a, b), Direction.BACKWARD: (b, a),
                                        Direction.CONTROL: (a, a)}
    source, destination = ends.get(direction, ("?", "?"))
    return f"{source} -> {destination}"


def outcome_counts(results: SweepResults) -> str:
    counts = Counter(c.outcome for c in results.cells)
    known = [f"{counts.pop(o.value)} {o.value}" for o in CellOutcome if o.value in counts]
    return ", ".join([*known, *(f"{n} {o}" for o, n in sorted(counts.items()))]) or "none"


def swept_facts(results: SweepResults) -> list[tuple[str, str]]:
    """(what, value): what the sweep covered, for summary.md and index.html."""
    directions = [d.value for d in Direction if any(c.direction == d for c in results.cells)]
    machines = results.machines or sorted({c.machine for c in results.cells})
    took = f"{results.seconds:g} s, started {results.started or '?'}, finished " \
        f"{results.finished or '?'}"
    return [
        ("device types", f"{len(results.devices)}: {', '.join(results.devices)}"),
        ("machine types", f"{len(machines)}: {machine_ranges(machines, machines) or 'none'}"),
        ("guest actions", ", ".join(results.actions) or "?"),
        ("directions", ", ".join(f"{d} ({arrow(results, d)})" for d in directions) or "none"),
        ("cells", f"{len(results.cells)}: {outcome_counts(results)}"),
        ("migrations", f"{results.migrations}; {took}"
                       + (" (PARTIAL: not every cell has an answer)" if results.partial else "")),
        ("settings", ", ".join(f"{k}={v}" for k, v in sorted(results.settings.items())) or "-"),
    ]
