"""The probe's verdict: a probe run's exit code and its one sentence, for `invoke probe`, the
matrix's decision (decision.py) and the probe's reports."""

from __future__ import annotations

from patchcheck.exit_codes import EXIT_DEVIATION, EXIT_INFRA, EXIT_OK
from patchcheck.probe.model import ProbeRun, break_texts, breaks


def exit_code(run: ProbeRun) -> int:
    """0: no fix introduces a violation; 1: one does (or breaks vmstate, or changes an old
    machine type's registers across versions); 3: errors."""
    if run.all_errors:
        return EXIT_INFRA
    if run.introduced or any(v.incompatible for v in run.vmstate) or breaks(run):
        return EXIT_DEVIATION
    return EXIT_OK


def words(run: ProbeRun) -> str:
    """The probe's finding in one sentence."""
    if run.all_errors:
        return f"probe incomplete: {len(run.all_errors)} error(s); first: {run.all_errors[0]}"
    found = [f"{p.with_fix} on {p.machine}: {c.title or c.register} bit {c.bit} {c.name} "
             f"{c.without} -> {c.with_fix} (spec {c.spec})" for p, c in run.introduced]
    broken = [f"{v.with_fix} on {v.machine}: vmstate {len(v.incompatible)} incompatible "
              f"difference(s)" for v in run.vmstate if v.incompatible]
    if found or broken:
        return "a fix introduces a specification violation: " + "; ".join(found + broken)
    if break_texts(run):
        return ("a fix does not keep an old machine type's registers: "
                + "; ".join(break_texts(run)))
    changed = sum(1 for p in run.pairs for c in p.changes)
    if not run.pairs and run.versions:
        return "across versions: " + ("no build with the fix changes an old machine type's "
                                      "registers")
    if not run.pairs:
        return "nothing compared (no without-fix/with-fix pair of one tree)"
    if changed:
        return f"no fix introduces a violation ({changed} other guest-visible change(s))"
    return "no fix changes guest-visible register behaviour"
