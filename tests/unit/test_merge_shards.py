"""Issue 25: report.merge takes a complete set of shards only, and carries the probe of the
shard that ran it (shard 1/N) into the merged run (patchcheck.report.merge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchcheck.errors import UsageError
from patchcheck.probe.model import ProbeRun
from patchcheck.report import probe_text as probe_report
from patchcheck.report.merge import merge
from patchcheck.result.model import CaseResult, RunResults, write_json
from patchcheck.result.outcome import Observed
from patchcheck.run.migrate import side
from patchcheck.verdict.decision import read_semantics

from ..fakes import build_record

SECTION = "Register semantics\n------------------"  # summary.md's section of a probe
MACHINES = ["pc-q35-5.2", "pc-q35-6.0", "pc-q35-6.1", "pc-q35-7.0", "pc-q35-7.2"]
SETTINGS = {"builds": ["7.2-none", "7.2-v2"], "pairs": ["same-tree"], "machines": "",
            "guests": {"synthetic": "all"}, "timeout": 60.0, "ram_mib": 32,
            "accel": "tcg", "scenario": "pds"}


def _run(reports: Path, run_id: str, shard: str, machine: str = "",
         probe: bool = False, **settings: object) -> Path:
    """A finished run (shard `shard`, "" for a whole run) with one case per machine type
    given (default: the shard's own)."""
    none, v2 = build_record("7.2-none"), build_record("7.2-v2", "v2", has_fix=True)
    k = int(shard.partition("/")[0] or 1)
    case = CaseResult(machine or MACHINES[k - 1], "synthetic", [], side(none), side(v2),
                      Observed.PASSED, Observed.PASSED)
    run = RunResults(run_id, {"7.2-none": none.to_dict(), "7.2-v2": v2.to_dict()}, [case],
                     "2026-01-01T00:00:00+00:00",
                     settings={**SETTINGS, "shard": shard, **settings})
    directory = reports / run_id
    directory.mkdir(parents=True)
    write_json(directory / "results.json", run.to_dict())
    if probe:
        probe_report.write(ProbeRun(run_id, "2026-01-01T00:00:00+00:00",
                                    notes=[f"probed by {run_id}"]), directory)
    return directory


def _refused(dirs: list[Path], out: Path) -> str:
    with pytest.raises(UsageError) as caught:
        merge(dirs, out)
    assert not out.exists()  # nothing written
    return str(caught.value)


def test_a_complete_set_merges_in_shard_order(tmp_path: Path) -> None:
    dirs = [_run(tmp_path, f"shard-{k}", f"{k}/3") for k in (3, 1, 2)]
    merged = merge(dirs, tmp_path / "merged")
    assert merged.settings["merged_from"] == ["shard-1", "shard-2", "shard-3"]
    assert merged.settings["shard"] == "" and len(merged.cases) == 3
    assert (tmp_path / "merged" / "results.json").is_file()


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    dirs = [_run(tmp_path, f"shard-{k}", f"{k}/3") for k in (1, 3)]
    assert _refused(dirs, tmp_path / "merged") == \
        "report.merge: shard 2/3 is missing (have 1/3, 3/3)"
    dirs = [_run(tmp_path, "four-4", "4/4")]
    assert _refused(dirs, tmp_path / "merged") == \
        "report.merge: shards 1/4, 2/4, 3/4 are missing (have 4/4)"


def test_a_duplicated_shard_and_mixed_sets_are_refused(tmp_path: Path) -> None:
    one, two = _run(tmp_path, "shard-1", "1/2"), _run(tmp_path, "shard-2", "2/2")
    again = _run(tmp_path, "again-1", "1/2", machine="pc-q35-7.2")
    assert _refused([one, two, again], tmp_path / "m") == \
        "report.merge: shard 1/2 is given twice (shard-1, again-1)"
    assert _refused([one, two, one], tmp_path / "m") == \
        "report.merge: shard 1/2 is given twice (shard-1, shard-1)"
    third = _run(tmp_path, "of-three", "3/3", machine="pc-q35-7.0")
    assert _refused([one, two, third], tmp_path / "m") == \
        "report.merge: the shards are of different sets (shard-1: 1/2, shard-2: 2/2, " \
        "of-three: 3/3)"
    whole = _run(tmp_path, "whole", "", machine="pc-q35-7.2")
    message = _refused([one, two, whole], tmp_path / "m")
    assert message.startswith("report.merge: whole is not a shard but shard-1 is (1/2)")


def test_shards_of_different_matrices_are_refused(tmp_path: Path) -> None:
    one = _run(tmp_path, "shard-1", "1/2")
    two = _run(tmp_path, "shard-2", "2/2", ram_mib=64)
    assert _refused([one, two], tmp_path / "m") == \
        "report.merge: the shards were run with different ram_mib (shard-1: 32, " \
        "shard-2: 64): not one matrix"


def test_the_accelerator_compares_by_what_was_used(tmp_path: Path) -> None:
    one = _run(tmp_path, "shard-1", "1/2", accel="accelerator: tcg (requested)")
    two = _run(tmp_path, "shard-2", "2/2", accel="accelerator: tcg (auto: no /dev/kvm)")
    assert len(merge([one, two], tmp_path / "m").cases) == 2
    three = _run(tmp_path, "k-1", "1/2", accel="accelerator: kvm (auto: KVM ran a guest)")
    four = _run(tmp_path, "k-2", "2/2", accel="tcg")
    assert "different accel (k-1: kvm, k-2: tcg)" in _refused([three, four], tmp_path / "n")


def test_whole_runs_merge_by_hand_when_disjoint(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", "", machine="pc-q35-6.0")
    b = _run(tmp_path, "b", "", machine="pc-q35-7.2", builds=["7.2-v2"])
    merged = merge([a, b], tmp_path / "m")
    assert merged.settings["merged_from"] == ["a", "b"] and len(merged.cases) == 2
    c = _run(tmp_path, "c", "", machine="pc-q35-6.0")
    assert "is in both a and c: these are not disjoint" in _refused([a, c], tmp_path / "n")


def test_the_probe_of_shard_one_is_carried(tmp_path: Path) -> None:
    dirs = [_run(tmp_path, "shard-1", "1/2", probe=True), _run(tmp_path, "shard-2", "2/2")]
    (dirs[0] / "vmstate").mkdir()
    (dirs[0] / "vmstate" / "dump.json").write_text("{}")
    out = tmp_path / "merged"
    merged = merge(dirs, out)
    assert merged.settings["probe_from"] == "shard-1"
    assert json.loads((out / "probe.json").read_text())["notes"] == ["probed by shard-1"]
    assert (out / "probe.md").is_file() and (out / "semantics.xml").is_file()
    assert (out / "vmstate" / "dump.json").is_file()
    assert read_semantics(out).ran or read_semantics(out).summary
    assert SECTION in (out / "summary.md").read_text()  # the probe's section
    assert 'name="semantics"' in (out / "junit.xml").read_text()
    # merged again into the same directory from runs without a probe: none is left behind
    again = [_run(tmp_path / "b", "s-1", "1/2"), _run(tmp_path / "b", "s-2", "2/2")]
    assert merge(again, out).settings["probe_from"] == ""
    assert not (out / "probe.json").exists() and not (out / "vmstate").exists()
    assert SECTION not in (out / "summary.md").read_text()


def test_two_probes_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", "", machine="pc-q35-6.0", probe=True)
    b = _run(tmp_path, "b", "", machine="pc-q35-7.2", probe=True)
    assert _refused([a, b], tmp_path / "m") == (
        "report.merge: a, b each have a register-semantics probe (probe.json); merge runs "
        "of which at most one ran the probe")
