"""Issue 3 against real builds: real QEMU processes migrating, judged from the destination."""

from __future__ import annotations

import difflib
import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from patchcheck.exit_codes import EXIT_OK
from patchcheck.result.outcome import Observed
from patchcheck.run.matrix import MatrixOptions, run_matrix


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, settings, runtime, builds):
    """7.2 none/v1/v2, all same-tree pairs, pc-q35-6.0 and 7.2, both guest actions."""
    for name in ("7.2-none", "7.2-v1", "7.2-v2"):
        builds[name]
    reports = tmp_path_factory.mktemp("reports")
    # The semantics probe (which flags v1) has its own tests: this run is about migrations.
    local = replace(settings, reports_dir=reports,
                    matrix=replace(settings.matrix, semantics=False))
    options = MatrixOptions(builds=("7.2-none", "7.2-v1", "7.2-v2"), pairs=("same-tree",),
                            machines="6.0,7.2", guests=("synthetic", "none"), jobs=2,
                            run_id="small")
    code = run_matrix(local, runtime, options, log=lambda line: None)
    data = json.loads((reports / "small" / "results.json").read_text())
    return code, data, reports / "small"


def _case(data, machine, src, dst, guest, globals_=()):
    found = [c for c in data["cases"] if c["machine"] == machine and c["guest"] == guest
             and c["source"]["build"] == src and c["destination"]["build"] == dst
             and tuple(c["globals"]) == tuple(globals_)]
    assert len(found) == 1, (machine, src, dst, guest, globals_)
    return found[0]


def test_unpatched_destination_fails_on_6_0(small_run):
    _, data, _ = small_run
    case = _case(data, "pc-q35-6.0", "7.2-none", "7.2-none", "synthetic")
    assert case["observed"] == "failed" and case["expected"] == "failed"
    assert "Bad config data: i=0x6e read: 0 device: 40" in case["destination_error"]
    assert case["guest_state"]["slot_control"] & 0x0400  # the guest action powered the slot off


def test_fix_at_destination_passes_and_only_destination_matters(small_run):
    _, data, _ = small_run
    assert _case(data, "pc-q35-6.0", "7.2-none", "7.2-v2", "synthetic")["observed"] == "passed"
    assert _case(data, "pc-q35-6.0", "7.2-none", "7.2-v1", "synthetic")["observed"] == "passed"
    back = _case(data, "pc-q35-6.0", "7.2-v2", "7.2-none", "synthetic")
    assert back["observed"] == "failed" and "i=0x6e" in back["destination_error"]


def test_newer_machine_type_and_none_action_always_pass(small_run):
    _, data, _ = small_run
    for case in data["cases"]:
        if case["machine"] == "pc-q35-7.2" and not case["globals"]:
            assert case["observed"] == "passed", case["id"]
        if case["guest"] == "none":
            assert case["observed"] == "passed", case["id"]


def test_forced_native_hotplug_brings_the_bug_back_on_a_new_type(small_run):
    _, data, _ = small_run
    forced = [c for c in data["cases"] if c["globals"]]
    assert forced and all(c["machine"] == "pc-q35-7.2" for c in forced)
    case = _case(data, "pc-q35-7.2", "7.2-none", "7.2-none", "synthetic", forced[0]["globals"])
    assert case["observed"] == "failed" and "i=0x6e" in case["destination_error"]


def test_every_case_as_expected_and_exit_zero(small_run):
    code, data, _ = small_run
    assert code == EXIT_OK
    assert all(c["observed"] == c["expected"] for c in data["cases"])
    # 9 same-tree pairs x (2 types x synthetic + boundary types x none + forced cases)
    assert len(data["cases"]) >= 9 * 4


def test_junit_counts_equal_results(small_run):
    _, data, outdir = small_run
    root = ET.parse(outdir / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(data["cases"])
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    assert failures == sum(1 for c in data["cases"] if c["observed"] != c["expected"]
                           and c["observed"] in ("passed", "failed"))
    assert errors == sum(1 for c in data["cases"] if c["observed"] == "error")
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(set(names)) == len(names)
    assert all(cls.startswith("migration.pc-q35-") for cls, _ in names)
    out = cases[0].find("system-out")
    assert out is not None and "[[ATTACHMENT|" in (out.text or "")


def test_case_logs_and_reproducer_are_kept(small_run):
    _, data, _ = small_run
    case = _case(data, "pc-q35-6.0", "7.2-none", "7.2-none", "synthetic")
    dest_log = Path(case["logs"]["destination"]).read_text()
    assert "Bad config data: i=0x6e" in dest_log
    assert "docker run" in Path(case["logs"]["reproduce"]).read_text()
    assert case["source_status"]  # recorded, though never the verdict


def test_default_matrix_end_to_end(default_matrix_run):
    """`invoke matrix` on the default configuration: every migration case as the model
    expects; the semantics probe flags v1 (PDS made guest-clearable), hence exit 1."""
    result = default_matrix_run.result
    assert result.returncode == 1, (default_matrix_run.unexpected() + "\n"
                                    + result.stdout[-2000:] + result.stderr[-2000:])
    assert "Not as expected (exit 1): 853 cases, a fix introduces a specification " \
        "violation." in result.stdout
    assert "With the fix at the destination every case passes (" in result.stdout
    semantics = [ln for ln in result.stdout.splitlines() if ln.startswith("Register semantics:")]
    assert semantics and "7.2-v1" in semantics[0] and "PDS" in semantics[0]
    assert "7.2-v2" not in semantics[0] and "10.0" not in semantics[0]
    data = default_matrix_run.data
    observed = {c["observed"] for c in data["cases"]}
    assert observed == {Observed.PASSED.value, Observed.FAILED.value}
    assert all(c["observed"] == c["expected"] for c in data["cases"])
    builds = {c["source"]["build"] for c in data["cases"]}
    assert builds == {"7.2-none", "7.2-v1", "7.2-v2", "10.0-v2", "10.0-none"}
    cross = _case(data, "pc-q35-6.0", "10.0-v2", "7.2-none", "synthetic")
    assert cross["observed"] == "failed"
    assert _case(data, "pc-q35-6.0", "7.2-none", "10.0-v2", "synthetic")["observed"] == "passed"
    assert _case(data, "pc-q35-10.0", "10.0-none", "10.0-none", "synthetic")["observed"] == "passed"


def test_patches_not_built_yet_are_built_in_the_run_and_every_pair_runs(
        tmp_path, settings, runtime, builds):
    """With 7.2-none built and two patches of a user's not built yet, the run builds both,
    says so, and runs every same-tree pair with a good verdict (exit 0). The
    first patch also declares something in pcie_port.h, so that its build recompiles the
    files that include it. The cases of the pairs whose builds exist go out while the last
    build compiles, and the run says how many; when they finish and when the next tree is
    prepared is the scheduler's business: tests/unit/test_schedule.py and
    test_run_background.py test it without timing a real run."""
    from patchcheck.config.settings import BuildSpec

    marker = f"patchcheck_not_built_before_{uuid.uuid4().hex}"
    patches = {"mine": _user_patch(builds, tmp_path, "mine",
                                   {"include/hw/pci/pcie_port.h": f"extern int {marker};\n"}),
               "mine2": _user_patch(builds, tmp_path, "mine2", {})}
    reports = tmp_path / "reports"
    local = replace(settings, reports_dir=reports,
                    builds={**settings.builds, **{name: BuildSpec(name, "debian:bookworm", str(path))
                                                  for name, path in patches.items()}},
                    matrix=replace(settings.matrix, semantics=False))
    options = MatrixOptions(builds=("7.2-none", *patches), pairs=("same-tree",),
                            machines="6.0,7.2", guests=("synthetic",), jobs=2,
                            run_id="streaming")
    lines: list[str] = []
    code = run_matrix(local, runtime, options, log=lines.append)
    data = json.loads((reports / "streaming" / "results.json").read_text())
    assert code == EXIT_OK and not data["partial"], lines[-20:]
    assert data["builds"]["mine"]["incremental_from"]  # from a build of the same tree
    for name in patches:  # really built in this run, and the run says so
        assert not data["builds"][name].get("cached")
        assert any(line.startswith(f"[{name}] ready to compile") for line in lines), lines
        assert any(line.startswith(f"[{name}] built") for line in lines), lines
    assert {(c["source"]["build"], c["destination"]["build"]) for c in data["cases"]} == {
        (s, d) for s in ("7.2-none", *patches) for d in ("7.2-none", *patches)}
    # the cases of the pairs whose builds existed went out while mine2 compiled, as it says
    early = sum(1 for c in data["cases"]
                if {c["source"]["build"], c["destination"]["build"]} <= {"7.2-none", "mine"})
    assert early and any(line.endswith(f"({early} given out while builds compiled)")
                         for line in lines), lines


def _user_patch(builds, tmp_path: Path, name: str, additions: dict[str, str]) -> Path:
    """A patch file of a user's against 7.2-none's tree: the shipped v2 fix plus a line no
    build had before in hw/pci/pcie.c, and `additions` appended to other files."""
    none = builds["7.2-none"]
    repo = builds.source_repo("7.2-none")
    v2 = Path(__file__).resolve().parents[2] / "patchcheck/scenarios/pds/patches/v2.patch"
    diff: list[str] = []
    scratch = tmp_path / f"apply-{name}"
    for path in ("hw/pci/pcie.c", *additions):
        original = subprocess.run(["git", "-C", str(repo), "show", f"{none.commit}:{path}"],
                                  check=True, capture_output=True, text=True).stdout
        (scratch / path).parent.mkdir(parents=True, exist_ok=True)
        (scratch / path).write_text(original)
        if path == "hw/pci/pcie.c":
            subprocess.run(["git", "apply", str(v2)], cwd=scratch, check=True)
        changed = (scratch / path).read_text() + additions.get(
            path, f"/* not built before: {uuid.uuid4()} */\n")
        diff += difflib.unified_diff(original.splitlines(keepends=True),
                                     changed.splitlines(keepends=True), f"a/{path}", f"b/{path}")
    out = tmp_path / f"{name}.patch"
    out.write_text("".join(diff))
    return out


def test_a_shared_paused_source_gives_what_a_fresh_source_per_case_gives(small_run, settings,
                                                                         runtime, tmp_path):
    """matrix.share_sources (the default): one source per build, type and -globals, its
    stream taken once and given to each destination. The same run with a fresh source per
    case must give every case the same outcome, destination error, destination status and
    guest state."""
    _, shared, _ = small_run
    groups: dict[tuple, list[int]] = {}
    for c in shared["cases"]:
        key = (c["source"]["build"], c["machine"], c["guest"], tuple(c["globals"]))
        groups.setdefault(key, []).append(c["source_migration"])
    # each source served its three destinations (1, 2, 3), none started twice
    assert sorted(map(sorted, groups.values())) == [[1, 2, 3]] * len(groups)
    local = replace(settings, reports_dir=tmp_path,
                    matrix=replace(settings.matrix, semantics=False, share_sources=False))
    options = MatrixOptions(builds=("7.2-none", "7.2-v1", "7.2-v2"), pairs=("same-tree",),
                            machines="6.0,7.2", guests=("synthetic", "none"), jobs=2,
                            run_id="fresh")
    assert run_matrix(local, runtime, options, log=lambda line: None) == EXIT_OK
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())
    assert {c["source_migration"] for c in fresh["cases"]} == {1}
    fields = ("observed", "destination_error", "destination_status", "guest_state")
    by_id = {c["id"]: c for c in fresh["cases"]}
    assert sorted(by_id) == sorted(c["id"] for c in shared["cases"])
    for case in shared["cases"]:
        assert {f: case[f] for f in fields} == {f: by_id[case["id"]][f] for f in fields}, \
            case["id"]
