"""Issue 25: `--resume` reuses a finished case only when every setting that can change its
outcome is the same (patchcheck.run.resume), and says why it reruns the others."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from patchcheck.build.record import BuildRecord
from patchcheck.guests.image import GuestImage
from patchcheck.result.model import Case, CaseResult, write_json
from patchcheck.result.outcome import Observed
from patchcheck.run import resume
from patchcheck.run.migrate import side
from patchcheck.run.resume import Current, differences, finished_cases, outcome_settings
from patchcheck.scenarios.pds.scenario import SCENARIO

from ..fakes import build_record

BUG = Case("pc-q35-6.0", "7.2-none", "7.2-none", "synthetic")  # fails without the fix
FIXED = Case("pc-q35-6.0", "7.2-none", "7.2-v2", "synthetic")  # passes with it
LINUX = Case("pc-q35-6.0", "7.2-none", "7.2-v2", "linux")
IMAGE = GuestImage(Path("/cache/guests/k1"), "k1", "linux-image-amd64", "6.1.0-1", "1.35")


def _records() -> dict[str, BuildRecord]:
    return {"7.2-none": build_record("7.2-none"),
            "7.2-v2": build_record("7.2-v2", "v2", has_fix=True)}


def _current(**changes: object) -> Current:
    return dataclasses.replace(Current(SCENARIO, 32, "tcg", 60.0, IMAGE), **changes)  # type: ignore[arg-type]


def _write(outdir: Path, case: Case, records: dict[str, BuildRecord], current: Current,
           observed: Observed | None = None, record: bool = True,
           expected: Observed | None = None) -> None:
    """What caserun writes when a case finishes: its result and the settings it ran with."""
    action = current.action(case.guest)
    model = resume.expected(case, action, records, SCENARIO)
    res = CaseResult(case.machine, case.guest, list(case.globals),
                     side(records[case.source]), side(records[case.destination]),
                     observed or model, expected or model)
    data = res.to_dict()
    if record:
        data[resume.RECORD] = outcome_settings(case, action, records, current)
    path = outdir / "cases" / case.slug / "result.json"
    path.parent.mkdir(parents=True)
    write_json(path, data)


def _resume(outdir: Path, cases: list[Case], records: dict[str, BuildRecord],
            current: Current) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    found = finished_cases(outdir, cases, records, current, lines.append)
    return [r.case.id for r in found], lines


def test_the_same_settings_reuse_every_finished_case(tmp_path: Path) -> None:
    records = _records()
    for case in (BUG, FIXED, LINUX):
        _write(tmp_path, case, records, _current())
    reused, lines = _resume(tmp_path, [BUG, FIXED, LINUX], records, _current())
    assert reused == [BUG.id, FIXED.id, LINUX.id] and lines == []
    data = json.loads((tmp_path / "cases" / LINUX.slug / "result.json").read_text())
    assert data[resume.RECORD]["ram_mib"] == 128  # the Linux guest's floor: what QEMU got
    assert "k1" in data[resume.RECORD]["guest"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"ram_mib": 64}, "ram_mib 32 -> 64"),
    ({"accel": "kvm"}, "accel tcg -> kvm"),
    ({"timeout": 30.0}, "timeout 60 -> 30"),
])
def test_a_changed_setting_reruns_with_one_line_per_reason(tmp_path: Path, change: dict,
                                                           reason: str) -> None:
    records = _records()
    for case in (BUG, FIXED):
        _write(tmp_path, case, records, _current())
    reused, lines = _resume(tmp_path, [BUG, FIXED], records, _current(**change))
    assert reused == [] and lines == [f"rerunning 2 cases: {reason}"]


def test_ram_below_the_linux_guests_floor_changes_only_the_other_cases(tmp_path: Path) -> None:
    records = _records()
    for case in (FIXED, LINUX):
        _write(tmp_path, case, records, _current())
    reused, lines = _resume(tmp_path, [FIXED, LINUX], records, _current(ram_mib=64))
    assert reused == [LINUX.id] and lines == ["rerunning 1 case: ram_mib 32 -> 64"]


def test_another_guest_image_reruns_the_linux_cases(tmp_path: Path) -> None:
    records = _records()
    for case in (FIXED, LINUX):
        _write(tmp_path, case, records, _current())
    newer = dataclasses.replace(IMAGE, key="k2", kernel_version="6.1.0-2")
    reused, lines = _resume(tmp_path, [FIXED, LINUX], records, _current(guest_image=newer))
    assert reused == [FIXED.id]
    assert len(lines) == 1 and lines[0].startswith("rerunning 1 case: guest linux image k1 ")
    assert "-> linux image k2 (linux-image-amd64 6.1.0-2" in lines[0]


def test_another_binary_or_image_reruns_its_cases(tmp_path: Path) -> None:
    records = _records()
    for case in (BUG, FIXED):
        _write(tmp_path, case, records, _current())
    rebuilt = {**records, "7.2-v2": dataclasses.replace(records["7.2-v2"], binary_sha256="9" * 64)}
    reused, lines = _resume(tmp_path, [BUG, FIXED], rebuilt, _current())
    assert reused == [BUG.id] and lines == ["rerunning 1 case: destination_sha256 0 -> 999999999999"]
    other = {k: dataclasses.replace(r, image_id="sha256:" + "a" * 64) for k, r in records.items()}
    reused, lines = _resume(tmp_path, [BUG], other, _current())
    assert reused == [] and lines == [
        "rerunning 1 case: source_image 0 -> aaaaaaaaaaaa; "
        "destination_image 0 -> aaaaaaaaaaaa"]


def test_a_changed_model_reruns_the_case(tmp_path: Path) -> None:
    """The stored `expected` is compared with the model's outcome now."""
    records = _records()
    _write(tmp_path, FIXED, records, _current(), expected=Observed.FAILED,
           observed=Observed.PASSED)
    reused, lines = _resume(tmp_path, [FIXED], records, _current())
    assert reused == [] and lines == [
        "rerunning 1 case: expected failed -> passed (the model changed)"]


def test_changed_globals_rerun(tmp_path: Path) -> None:
    records = _records()
    _write(tmp_path, FIXED, records, _current())
    path = tmp_path / "cases" / FIXED.slug / "result.json"
    data = json.loads(path.read_text())
    data[resume.RECORD]["destination_globals"] = ["x.y=on"]
    path.write_text(json.dumps(data))
    reused, lines = _resume(tmp_path, [FIXED], records, _current())
    assert reused == [] and lines == ["rerunning 1 case: destination_globals [x.y=on] -> []"]


def test_errors_and_results_without_settings_rerun(tmp_path: Path) -> None:
    records = _records()
    _write(tmp_path, BUG, records, _current(), observed=Observed.ERROR)
    _write(tmp_path, FIXED, records, _current(), record=False)
    reused, lines = _resume(tmp_path, [BUG, FIXED, LINUX], records, _current())
    assert reused == []
    assert lines == ["rerunning 1 case: error last time",
                     "rerunning 1 case: its settings were not recorded (an older patchcheck "
                     "ran it)"]


def test_a_flaky_case_reruns_and_a_failure_with_another_error_is_reused(tmp_path: Path
                                                                         ) -> None:
    """A flaky case gave no verdict: a resumed run tries it again. A failure with another
    error is an outcome like any: with the same settings it stands."""
    records = _records()
    _write(tmp_path, FIXED, records, _current(), observed=Observed.FLAKY)
    _write(tmp_path, BUG, records, _current(), observed=Observed.FAILED_OTHER)
    reused, lines = _resume(tmp_path, [BUG, FIXED], records, _current())
    assert reused == [BUG.id]
    assert lines == ["rerunning 1 case: flaky last time"]


def test_a_case_whose_build_is_missing_now_is_left_to_the_skipped(tmp_path: Path) -> None:
    records = _records()
    _write(tmp_path, FIXED, records, _current())
    reused, lines = _resume(tmp_path, [FIXED], {"7.2-none": records["7.2-none"]}, _current())
    assert reused == [] and lines == []


def test_differences_compare_as_json_does() -> None:
    now = {"timeout": 60.0, "source_globals": ["a=1"], "ram_mib": 32}
    assert differences({"timeout": 60, "source_globals": ["a=1"], "ram_mib": 32}, now) == []
    assert differences({"timeout": 60, "source_globals": ["a=1"]}, now) == [
        "ram_mib (not recorded) -> 32"]
    assert differences(None, now) == [
        "its settings were not recorded (an older patchcheck ran it)"]
