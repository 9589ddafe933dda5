"""results.json round trip, junit.xml and the text grid, from hand-made case results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from patchcheck.report import grid, junit
from patchcheck.result.model import CaseResult, RunResults, write_json
from patchcheck.result.outcome import Observed

pytestmark = pytest.mark.usefixtures("isolated_env")

MakeResult = Callable[..., CaseResult]
FORCE = "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
DEST_ERROR = ("qemu-system-x86_64: get_pci_config_device: Bad config data: i=0x6e read: 0 "
              "device: 40 cmask: ff wmask: 0 w1cmask:19")


def _logs(base: Path, slug: str, lines: int = 200) -> dict[str, str]:
    directory = base / "cases" / slug
    directory.mkdir(parents=True)
    out = {}
    for role in ("source", "destination"):
        path = directory / f"{role}.log"
        body = [f"{role} line {i}" for i in range(lines)]
        body[-2] = f"\x1b[1m{role}: <escape & markup>\x1b[0m"  # ANSI codes from QEMU's stderr
        if role == "destination":
            body[-1] = DEST_ERROR
        path.write_text("\n".join(body) + "\n")
        out[role] = str(path)
    return out


@pytest.fixture
def run(tmp_path: Path, make_result: MakeResult) -> RunResults:
    base = tmp_path / "reports" / "run-1"
    base.mkdir(parents=True)
    cases = [
        # passed, as expected
        make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed", seconds=0.4,
                    source_status="completed", destination_status="running",
                    guest_state={"sltsta": 0x40, "sltctl": 0x7c0}, reproduce="qemu-system-x86_64 ..."),
        # failed, as expected: the bug reproduces
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed", seconds=0.3,
                    destination_error=DEST_ERROR, source_status="completed",
                    destination_status="exited", reproduce="qemu-system-x86_64 -M pc-q35-6.0"),
        # deviating: the fix at the destination did not help
        make_result("pc-q35-6.0", "7.2-none", "7.2-v1", "failed", "passed", seconds=0.5,
                    destination_error=DEST_ERROR, message="destination exited",
                    reproduce="qemu-system-x86_64 -M pc-q35-6.0 (v1)"),
        # infrastructure error
        make_result("pc-q35-7.2", "7.2-v2", "7.2-v2", "error", "passed",
                    message="timeout after 60 s", destination_error="QMP connection lost"),
        # skipped: a build failed
        make_result("pc-q35-7.2", "7.2-v1", "7.2-v2", "skipped", "passed",
                    message="build 7.2-v1 failed"),
        # same machine and pair as above, native hotplug forced: a distinct test name
        make_result("pc-q35-7.2", "7.2-none", "7.2-none", "failed", "failed", globals=[FORCE]),
        make_result("pc-q35-7.2", "7.2-none", "7.2-none", "passed", "passed"),
    ]
    cases[1].logs = _logs(base, cases[1].case.slug)
    cases[2].logs = _logs(base, cases[2].case.slug)
    builds = {
        "7.2-none": {"source": "debian:bookworm", "commit": "a" * 40, "qemu_version": "7.2.0",
                     "fix": {"state": "none", "applied": "unchanged"}, "image_id": "sha256:" + "1" * 64},
        "7.2-v2": {"source": "debian:bookworm", "commit": "b" * 40, "qemu_version": "7.2.0",
                   "fix": {"state": "v2", "applied": "clean"}, "image_id": "sha256:" + "1" * 64},
    }
    return RunResults(run_id="run-1", builds=builds, cases=cases, started="2024-05-01T10:00:00",
                      seconds=12.5, host={"cpus": 2}, settings={"accel": "tcg"})


def _junit(run: RunResults, base: Path) -> ET.Element:
    path = junit.write(run, base)
    assert path == base / "junit.xml"
    assert not (base / ".junit.xml.tmp").exists()
    return ET.parse(path).getroot()


def test_junit_counts(run: RunResults, tmp_path: Path) -> None:
    root = _junit(run, tmp_path / "reports" / "run-1")
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(run.cases) == int(suite.get("tests", "-1"))
    expected: Counter[str] = Counter()
    for r in run.cases:
        if r.observed == Observed.SKIPPED:
            expected["skipped"] += 1
        elif r.observed == Observed.ERROR:
            expected["errors"] += 1
        elif r.deviates:
            expected["failures"] += 1
    assert expected == Counter(failures=1, errors=1, skipped=1)
    for key in ("failures", "errors", "skipped"):
        assert int(suite.get(key, "-1")) == expected[key], key
    children = Counter(child.tag for tc in cases for child in tc
                       if child.tag in ("failure", "error", "skipped"))
    assert children == Counter(failure=1, error=1, skipped=1)


def test_junit_testcases(run: RunResults, tmp_path: Path) -> None:
    root = _junit(run, tmp_path / "reports" / "run-1")
    cases = root.iter("testcase")
    by_name = {}
    for tc, r in zip(cases, run.cases, strict=True):
        assert tc.get("classname") == f"migration.{r.machine}"
        by_name[(tc.get("classname"), tc.get("name"))] = (tc, r)
    assert len(by_name) == len(run.cases)  # names are unique within a classname

    tc, _ = by_name[("migration.pc-q35-6.0", "7.2-none->7.2-v1[synthetic]")]
    failure = tc.find("failure")
    assert failure is not None
    assert "observed failed, expected passed: destination exited" in (failure.get("message") or "")
    assert "i=0x6e" in (failure.text or "") + (failure.get("message") or "") + \
        (tc.findtext("system-out") or "")
    tc, _ = by_name[("migration.pc-q35-7.2", "7.2-v2->7.2-v2[synthetic]")]
    error = tc.find("error")
    assert error is not None and "timeout after 60 s" in (error.get("message") or "")
    tc, _ = by_name[("migration.pc-q35-7.2", "7.2-v1->7.2-v2[synthetic]")]
    skipped = tc.find("skipped")
    assert skipped is not None
    assert "build 7.2-v1 failed" in (skipped.get("message") or "") + (skipped.text or "")
    tc, _ = by_name[("migration.pc-q35-6.0", "7.2-none->7.2-none[synthetic]")]
    assert tc.find("failure") is None  # failing as the model expects is a passing test
    assert ("migration.pc-q35-7.2",
            "7.2-none->7.2-none[synthetic]+acpi-pci-hotplug-with-bridge-support=off") in by_name
    assert float(by_name[("migration.pc-q35-6.0", "7.2-none->7.2-v2[synthetic]")][0]
                 .get("time", "0")) == pytest.approx(0.4)


def test_junit_system_out(run: RunResults, tmp_path: Path) -> None:
    base = tmp_path / "reports" / "run-1"
    root = _junit(run, base)
    outs = {(tc.get("classname"), tc.get("name")): tc.findtext("system-out") or ""
            for tc in root.iter("testcase")}
    out = outs[("migration.pc-q35-6.0", "7.2-none->7.2-v1[synthetic]")]
    slug = run.cases[2].case.slug
    assert f"[[ATTACHMENT|cases/{slug}/source.log]]" in out
    assert f"[[ATTACHMENT|cases/{slug}/destination.log]]" in out
    assert "observed: failed  expected: passed" in out
    assert "--- destination log (tail) ---" in out and DEST_ERROR in out
    assert "source line 197" in out and "destination line 197" in out
    assert "source line 150" not in out and "destination line 0\n" not in out
    assert len(out.splitlines()) <= 3 + 2 * (1 + junit.TAIL_LINES) + 2 + 2 + 1
    assert "qemu-system-x86_64 -M pc-q35-6.0 (v1)" in out
    assert "<escape & markup>" in out  # escaped in the file, intact after parsing

    passed = outs[("migration.pc-q35-6.0", "7.2-none->7.2-v2[synthetic]")]
    assert "guest state after the action: sltsta=0x0040, sltctl=0x07c0" in passed
    assert "status completed" in passed and "status running" in passed
    assert "[[ATTACHMENT|" not in passed  # no logs, no attachments
    for text in outs.values():
        assert len(text) < 20_000


def test_junit_properties(run: RunResults, tmp_path: Path) -> None:
    root = _junit(run, tmp_path / "reports" / "run-1")
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["run_id"] == "run-1" and props["partial"] == "false"
    assert str(props["build.7.2-v2"]).startswith(
        "debian:bookworm commit bbbbbbbbbbbb QEMU 7.2.0 fix v2/clean")


def test_junit_empty_run(tmp_path: Path) -> None:
    empty = RunResults(run_id="r", builds={}, cases=[], started="2024-01-01T00:00:00", partial=True)
    root = ET.fromstring(junit.to_xml(empty, tmp_path))
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None and int(suite.get("tests", "-1")) == 0


def test_results_json_round_trip(run: RunResults, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_json(path, run.to_dict())
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    data = json.loads(path.read_text())
    assert data["cases"][2]["observed"] == "failed" and data["cases"][2]["expected"] == "passed"
    assert data["cases"][2]["id"] == "pc-q35-6.0:7.2-none->7.2-v1[synthetic]"
    loaded = RunResults.load(path)
    assert loaded == run
    assert [c.case for c in loaded.cases] == [c.case for c in run.cases]
    assert loaded.cases[5].case.globals == (FORCE,)
    for original, back in zip(run.cases, loaded.cases, strict=True):
        assert type(back.observed) is Observed and back.observed is original.observed
        assert type(back.expected) is Observed and back.expected is original.expected
        again = CaseResult.from_dict(json.loads(json.dumps(original.to_dict())))
        assert again == original and again.deviates == original.deviates


def test_case_result_from_dict_ignores_unknown_fields(run: RunResults) -> None:
    data = run.cases[0].to_dict()
    data["added_in_a_later_version"] = {"x": 1}
    assert CaseResult.from_dict(data) == run.cases[0]


def test_grid(run: RunResults) -> None:
    text = grid.render(run)
    lines = text.splitlines()
    assert lines[0].startswith(grid.LEGEND)
    header = lines[1].split()
    assert header == ["6.0", "7.2", "7.2*"]
    rows = {line.split()[0]: line for line in lines[2:]}

    def cell(pair: str, column: str) -> str:
        start = lines[1].index(" " + column if column != "7.2" else " 7.2 ") + 1
        return rows[pair][start:start + len(column)].strip()

    assert cell("7.2-none->7.2-v1", "6.0") == "X"  # the deviating case
    assert cell("7.2-none->7.2-none", "6.0") == "F"
    assert cell("7.2-none->7.2-v2", "6.0") == "."
    assert cell("7.2-v2->7.2-v2", "7.2") == "E"
    assert cell("7.2-v1->7.2-v2", "7.2") == "-"
    assert cell("7.2-none->7.2-none", "7.2*") == "F"
    assert "\n".join(lines[2:]).count("X") == 1


def test_grid_symbols(make_result: MakeResult) -> None:
    assert grid.symbol(make_result("pc-q35-6.0", "a-none", "b-v1", "passed", "failed")) == "X"
    assert grid.symbol(make_result("pc-q35-6.0", "a-none", "b-v1", "failed", "passed")) == "X"
    assert grid.symbol(make_result("pc-q35-6.0", "a-none", "b-v1", "error", "failed")) == "E"
    assert grid.render(RunResults("r", {}, [], "")) == "(no cases)"


def test_a_case_from_a_shared_source_says_so(tmp_path: Path, make_result: MakeResult) -> None:
    from patchcheck.report.junit import testcase

    first = make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed", guest="linux")
    later = make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed", guest="linux",
                        source_migration=2)
    assert "shared" not in testcase(first, tmp_path).stdout
    assert "source: migration 2 of a source QEMU shared" in testcase(later, tmp_path).stdout


def test_a_case_tried_again_says_what_its_first_attempt_saw(tmp_path: Path,
                                                            make_result: MakeResult) -> None:
    from patchcheck.report.junit import testcase

    once = make_result("pc-q35-6.0", "7.2-none", "10.0-v2", "passed", "passed", guest="linux")
    twice = make_result("pc-q35-6.0", "7.2-none", "10.0-v2", "passed", "passed", guest="linux")
    twice.earlier_attempts = ["failed: no heartbeat on the destination console (logs: x)"]
    assert "earlier attempt" not in testcase(once, tmp_path).stdout
    out = testcase(twice, tmp_path).stdout
    assert "earlier attempt (the destination's guest did not survive; tried again with a " \
           "fresh destination): failed: no heartbeat on the destination console" in out
