"""The cases a run does not run: those an earlier, interrupted run of the same id finished
with the same settings (`--resume`), and those a failed build leaves skipped.

A case is reused only when everything that can change its outcome is what this run would
run it with: each case's result.json carries `outcome_settings` (written as the case
finishes, `outcome_settings()` below): the scenario, the accelerator actually used (tcg or
kvm), the RAM its QEMUs got, the case timeout, the guest action's identity (the Linux
guest: its image key and package versions), the -globals each side got, and both sides'
binaries (sha256) and runtime images; and the expected outcome, recomputed now from the
model (the model may have changed between the runs). A case that is not reused is said
why, one line per reason: `rerunning 12 cases: ram_mib 32 -> 64`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchcheck.build.record import BuildRecord
from patchcheck.guests.action import Action
from patchcheck.guests.image import GuestImage
from patchcheck.guests.linux import LinuxAction
from patchcheck.result.model import Case, CaseResult, Side
from patchcheck.result.outcome import Observed
from patchcheck.run.migrate import side
from patchcheck.scenarios.base import Scenario

RECORD = "outcome_settings"  # the key in each case's result.json


@dataclass(frozen=True)
class Current:
    """What this run runs a case with."""

    scenario: Scenario
    ram_mib: int  # patchcheck.matrix.ram_mib (a case gets max(this, its action's minimum))
    accel: str  # the accelerator actually used: tcg or kvm
    timeout: float
    guest_image: GuestImage | None = None  # the Linux guest's image, when the run has one

    def action(self, guest: str) -> Action:
        if guest == LinuxAction.name and self.guest_image is not None:
            return self.scenario.linux_action(self.guest_image, self.timeout)
        return self.scenario.action(guest)


def guest_identity(action: Action) -> str:
    """The guest action, as far as it can change an outcome: its name; for the Linux guest
    also its image (key, kernel and busybox versions)."""
    name = action.name or type(action).__name__
    if isinstance(action, LinuxAction):
        image = action.image
        return (f"{name} image {image.key} ({image.kernel_package} {image.kernel_version}, "
                f"busybox {image.busybox_version})")
    return name


def outcome_settings(case: Case, action: Action, records: Mapping[str, BuildRecord],
                     current: Current) -> dict[str, Any]:
    """What a case ran with, besides its id, that can change its outcome."""
    scen = current.scenario
    src, dst = side(records[case.source]), side(records[case.destination])
    return {
        "scenario": scen.name, "accel": current.accel,
        "ram_mib": max(current.ram_mib, action.min_ram_mib), "timeout": current.timeout,
        "guest": guest_identity(action),
        "source_globals": scen.globals_for(case.globals, "source", src),
        "destination_globals": scen.globals_for(case.globals, "destination", dst),
        "source_sha256": records[case.source].binary_sha256,
        "destination_sha256": records[case.destination].binary_sha256,
        "source_image": records[case.source].image_id,
        "destination_image": records[case.destination].image_id,
    }


def expected(case: Case, action: Action, records: Mapping[str, BuildRecord],
             scenario: Scenario) -> Observed:
    """The model's outcome for the case, now."""
    src, dst = side(records[case.source]), side(records[case.destination])
    fails = scenario.expected_to_fail(case.machine, src, dst, case.globals, action)
    return Observed.FAILED if fails else Observed.PASSED


def differences(stored: Any, now: Mapping[str, Any]) -> list[str]:
    """Each setting that differs, as `name OLD -> NOW`; a result without the record (written
    before patchcheck recorded it) is one reason of its own."""
    if not isinstance(stored, dict):
        return ["its settings were not recorded (an older patchcheck ran it)"]
    return [f"{key} {_show(stored.get(key))} -> {_show(value)}"
            for key, value in now.items() if _normal(stored.get(key)) != _normal(value)]


def why_rerun(result: CaseResult, stored: Any, case: Case,
              records: Mapping[str, BuildRecord], current: Current) -> str:
    """Why an earlier result of the case is not reused ("" when it is)."""
    if result.observed.no_verdict:  # a resumed run always runs it again
        return f"{result.observed.value} last time"
    action = current.action(case.guest)
    why = differences(stored, outcome_settings(case, action, records, current))
    model = expected(case, action, records, current.scenario)
    if model != result.expected:
        why.append(f"expected {result.expected.value} -> {model.value} (the model changed)")
    return "; ".join(why)


def finished_cases(outdir: Path, case_list: Sequence[Case], records: dict[str, BuildRecord],
                   current: Current, log: Callable[[str], None] = print) -> list[CaseResult]:
    """Cases of an earlier (interrupted) run that finished with this run's settings; the
    others that had finished are logged, one line per reason."""
    found = []
    reasons: dict[str, int] = {}
    for case in case_list:
        loaded = _load(outdir / "cases" / case.slug / "result.json")
        if loaded is None or case.source not in records or case.destination not in records:
            continue  # never finished, or a build is missing now (its cases are skipped)
        result, stored = loaded
        if result.case.id != case.id:
            continue
        why = why_rerun(result, stored, case, records, current)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
        else:
            found.append(result)
    for why, count in reasons.items():
        log(f"rerunning {count} case{'s' if count != 1 else ''}: {why}")
    return found


def _load(path: Path) -> tuple[CaseResult, Any] | None:
    try:
        data = json.loads(path.read_text())
        return CaseResult.from_dict(data), data.get(RECORD)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _normal(value: Any) -> Any:
    """JSON's view of a value: tuples are lists, 60 and 60.0 are one timeout."""
    return json.loads(json.dumps(value))


def _show(value: Any) -> str:
    if value is None:
        return "(not recorded)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    text = str(value)
    if text.startswith("sha256:"):
        text = text.removeprefix("sha256:")
    return text[:12] if len(text) == 64 and all(c in "0123456789abcdef" for c in text) \
        else text


def skipped(case: Case, records: dict[str, BuildRecord], build: str, why: str) -> CaseResult:
    def s(name: str) -> Side:
        if name in records:
            return side(records[name])
        return Side(name, "", "", "", False, "")
    return CaseResult(case.machine, case.guest, list(case.globals), s(case.source),
                      s(case.destination), Observed.SKIPPED, Observed.SKIPPED,
                      message=f"build {build} failed: {why}")
