"""The words of `invoke check`: the paragraph a reviewer pastes into a qemu-devel reply, made
of the run's facts and the decision's own lines (decision.py), with the Tested-by line only
when the decision deserves it."""

from __future__ import annotations

from patchcheck.qemu.machine_types import order
from patchcheck.result.model import RunResults
from patchcheck.scenarios import registry as scenarios
from patchcheck.verdict.decision import Decision


def reply(run: RunResults, commit: str, note: str, decision: Decision, identity: str) -> str:
    """A paragraph for a qemu-devel reply, and the Tested-by line (for `identity`, "Name
    <email>") when it is deserved."""
    build = run.builds.get("with", {})
    types = order({c.machine for c in run.cases})
    scen = scenarios.get(str(run.settings.get("scenario", "")))
    words = scen.words
    failing = [c for c in run.cases if c.observed.value == "failed"
               and not (c.destination if words.fix_side == "destination" else c.source).has_fix]
    error = next(iter(failing[0].destination_error.splitlines()), "") if failing else ""
    lines = [f"Tested {commit} (QEMU {build.get('qemu_version', '?')}) with {note}.",
             f"The question: does it fix {scen.title} on this commit, that is, remove the "
             f"destination's \"{scen.signature.text}\"? Without the fix is the commit with "
             "no known fix of the bug; with it, the same tree plus the fix.",
             f"{words.reproducer} ({_guests(run)} guest action, "
             f"{run.settings.get('accel', 'tcg')}), "
             f"all four directions between the builds without and with the fix, on "
             f"{', '.join(types)}."]
    if failing:
        lines.append(f"Without the fix at the {words.fix_side} it fails ({len(failing)} "
                     f"case{'s' if len(failing) != 1 else ''}): "
                     f"{error.split(': ', 1)[-1]}")
    lines += decision.words
    if decision.tested_by:
        lines += ["", f"Tested-by: {identity}"]
    return "\n".join(lines)


def _guests(run: RunResults) -> str:
    return ", ".join(sorted({c.guest for c in run.cases})) or "no"
