"""The sweep's reports on a small hand-made sweep: summary.md says the verdict's words and each
finding, index.html parses and shows a failed cell in its device's row and machine type's column,
junit.xml has a testsuite per device type, reproduce.sh is a valid script with the exact machine
type, device and migration."""

from __future__ import annotations

import os
import shlex
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from patchcheck.report.sweep.files import terminal_text, write_reports
from patchcheck.result.cells import SweepResults, Unrunnable
from patchcheck.verdict.sweep import SweepVerdict, decide
from tests.unit.test_sweep_verdict import I440FX, OTHER_LINES, PDS_LINES, Q35, across, cell, side, sweep

MACHINES = [*Q35, *I440FX]
HOSTILE = "Failed to load <igb>: 'x' & \"y\" `z`"


def _results() -> SweepResults:
    cells = [*across("e1000e", Q35, ["pc-q35-4.0", "pc-q35-4.0.1"], lines=PDS_LINES),
             *across("e1000e", Q35, [], direction="backward"),
             *across("e1000e", Q35, ["pc-q35-10.0"], direction="control"),
             cell("igb", "pc-q35-6.0", "failed", lines=[HOSTILE, *OTHER_LINES[1:]],
                  placement="root-port", action="slot"),
             cell("igb", "pc-q35-6.0", "passed"),
             cell("igb", "pc-q35-7.2", "error", lines=["destination QEMU timed out"]),
             cell("edu", "pc-i440fx-7.2", "not-started", lines=["'edu' is not a valid device"],
                  placement="pci.0")]
    results = sweep(cells, MACHINES, b=side("trixie", in_image=False))
    results.unrunnable.append(Unrunnable("vfio-pci", "host resource", "needs a host device"))
    return results


@pytest.fixture
def written(tmp_path: Path) -> tuple[SweepResults, SweepVerdict, Path]:
    results = _results()
    verdict = decide(results)
    write_reports(results, tmp_path, verdict)
    return results, verdict, tmp_path


def test_every_file_is_written_whole(written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    _, verdict, out = written
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["findings/1-e1000e/reproduce.sh", "findings/2-igb/reproduce.sh",
                     "findings/3-e1000e/reproduce.sh", "index.html", "junit.xml", "summary.md"]
    assert [f.device for f in verdict.findings] == ["e1000e", "igb", "e1000e"]
    assert verdict.findings[2].control


def test_summary_says_the_verdict_and_each_finding(
        written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    _, verdict, out = written
    text = (out / "summary.md").read_text()
    assert text.splitlines()[2] == f"**{verdict.headline}**"
    assert verdict.code == 1 and verdict.headline.startswith("Unknown failures")
    for words in ("| A | bookworm | debian-pkg:bookworm | 7.2.22 |", "Debian package",
                  "machine types: 12: pc-q35-2.4 .. 10.0, pc-i440fx-6.0 .. 8.0",
                  "forward (bookworm -> trixie)", "control (bookworm -> bookworm)",
                  "- machine types: pc-q35-4.0 .. 4.0.1 (2)", f"- error: `{PDS_LINES[0]}`",
                  "- known bug: pds (", "- known bug: unknown", "`` Failed to load <igb>",
                  "[findings/2-igb/reproduce.sh](findings/2-igb/reproduce.sh)",
                  "## Control findings (bookworm -> bookworm: bugs of bookworm alone)",
                  "- `vfio-pci`: host resource: `needs a host device`",
                  "- igb @pcie.0 pc-q35-7.2 forward created: `destination QEMU timed out`",
                  "1 not-started, 1 error"):
        assert words in text, words
    assert text.index("### 2. igb") < text.index("## Control findings") < text.index("### 3.")


Attrs = dict[str, str | None]


@dataclass
class Heat:
    columns: list[str] = field(default_factory=list)  # the machine types, from the titles
    rows: dict[str, list[Attrs]] = field(default_factory=dict)  # device -> its cells


class Page(HTMLParser):
    """The heat maps' tables (their column machine types, and rows of cells by device), and
    whatever the page would fetch from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Heat] = []
        self.row: list[Attrs] = []
        self.header = ""
        self.in_th = False
        self.in_heat = False
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if any((v or "").startswith(("http:", "https:", "//")) for k, v in attrs
               if k in ("href", "src")) or tag in ("script", "link", "img"):
            self.external.append(tag)
        if tag == "table" and a.get("class") == "heat":
            self.tables.append(Heat())
            self.in_heat = True
        elif self.in_heat and tag == "th" and a.get("title"):
            self.tables[-1].columns.append(a["title"] or "")
        elif tag == "tr":
            self.row, self.header = [], ""
        elif tag == "th":
            self.in_th = True
        elif tag == "td" and self.in_heat:
            self.row.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self.in_th = False
        elif tag == "table":
            self.in_heat = False
        elif tag == "tr" and self.in_heat and self.row:
            self.tables[-1].rows[self.header] = self.row

    def handle_data(self, data: str) -> None:
        if self.in_th:
            self.header += data


def test_the_heat_map_shows_a_failed_cell_in_its_row_and_column(
        written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    _, verdict, out = written
    text = (out / "index.html").read_text()
    page = Page()
    page.feed(text)
    assert page.external == []
    assert len(page.tables) == 3  # forward, backward, control
    forward = page.tables[0]
    columns, rows = forward.columns, forward.rows
    assert columns == MACHINES
    assert list(rows) == ["e1000e", "igb", "edu"]
    assert [list(t.rows) for t in page.tables[1:]] == [["e1000e"], ["e1000e"]]
    igb = rows["igb"]
    at = columns.index("pc-q35-6.0")
    assert igb[at]["data-outcome"] == "failed-unknown"  # failed wins over the passed placement
    assert igb[at]["data-machine"] == "pc-q35-6.0" and igb[at]["data-device"] == "igb"
    assert "root-port/slot failed" in (igb[at]["title"] or "")
    assert "pcie.0/created passed" in (igb[at]["title"] or "")
    assert igb[columns.index("pc-q35-7.2")]["data-outcome"] == "error"
    e1000e = rows["e1000e"]
    assert [c.get("data-outcome") for c in e1000e[:5]] == [
        "passed", "passed", "failed-known", "failed-known", "passed"]
    assert f'data-exit="{verdict.code}"' in text
    assert "<igb>" not in text and "Failed to load &lt;igb&gt;" in text


def test_junit_has_a_testsuite_per_device_and_a_testcase_per_machine_and_direction(
        written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    suites = ET.parse(written[2] / "junit.xml").getroot()
    assert suites.tag == "testsuites"
    by = {s.get("name", ""): s for s in suites.findall("testsuite")}
    assert sorted(by) == ["e1000e", "edu", "igb", "vfio-pci"]
    e1000e = {tc.get("name"): tc for tc in by["e1000e"].findall("testcase")}
    assert len(e1000e) == 3 * len(Q35)
    failed = e1000e["pc-q35-4.0 forward (bookworm -> trixie)"].find("failure")
    assert failed is not None and failed.get("message") == PDS_LINES[0]
    assert e1000e["pc-q35-10.0 control (bookworm -> bookworm)"].find("failure") is not None
    assert e1000e["pc-q35-2.4 backward (trixie -> bookworm)"].find("failure") is None
    igb = {tc.get("name"): tc for tc in by["igb"].findall("testcase")}
    igb_failure = igb["pc-q35-6.0 forward (bookworm -> trixie)"].find("failure")
    assert igb_failure is not None and igb_failure.get("message") == HOSTILE
    assert igb["pc-q35-7.2 forward (bookworm -> trixie)"].find("error") is not None
    skipped = by["edu"].find("testcase/skipped")
    assert skipped is not None and "not-started" in (skipped.get("message") or "")
    not_run = by["vfio-pci"].find("testcase/skipped")
    assert not_run is not None and "host resource" in (not_run.get("message") or "")


def test_junit_is_valid_against_the_junit_schema(
        written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).resolve().parents[1] / "fixtures"
                                             / "junit-10.xsd")))
    doc = etree.parse(str(written[2] / "junit.xml"))
    assert schema.validate(doc), "\n".join(str(e) for e in schema.error_log)
    names = [(c.get("classname"), c.get("name")) for c in doc.findall(".//testcase")]
    assert len(set(names)) == len(names)


def test_reproduce_sh_is_a_valid_script_of_the_first_failing_cell(
        written: tuple[SweepResults, SweepVerdict, Path]) -> None:
    results, verdict, out = written
    path = out / "findings/1-e1000e/reproduce.sh"
    assert os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    text = path.read_text()
    first = verdict.findings[0].first
    assert first.machine == "pc-q35-4.0"
    args = shlex.join(["-machine", "pc-q35-4.0", "-nodefaults", *first.args])
    assert f"{args} -incoming unix:/tmp/pc/migrate.sock" in text  # the destination
    assert f"{args} -S" in text  # the source, paused
    assert "(qemu) migrate unix:/tmp/pc/migrate.sock" in text
    assert "-display none" in text and text.count("--network none") == 2
    # B's binary is a host path, mounted; A's is inside its image, nothing mounted for it
    assert "-v /cache/builds/trixie/bin:/qemu:ro" in text
    source = next(ln for ln in text.splitlines() if ln.endswith(" -S"))
    assert "/qemu:ro" not in source and f"{results.a.image} /usr/bin/qemu-system-x86_64" in source
    slot = (out / "findings/2-igb/reproduce.sh").read_text()
    assert "(qemu) device_del dev0" in slot and "-machine pc-q35-6.0" in slot
    usage = subprocess.run(["sh", str(path)], capture_output=True, text=True, check=True)
    assert "(qemu) migrate unix:/tmp/pc/migrate.sock" in usage.stdout


def test_the_terminal_text_is_the_verdict_and_the_findings() -> None:
    results = _results()
    verdict = decide(results)
    text = terminal_text(verdict)
    assert text.splitlines()[0] == verdict.headline
    assert "[pds] e1000e @pcie.0 created forward bookworm -> trixie: pc-q35-4.0 .. 4.0.1" in text
    assert "[UNKNOWN] igb @root-port slot forward" in text
    assert text.index("Control findings") < text.index("3. [UNKNOWN] e1000e")


def test_a_diff_is_in_the_summary(tmp_path: Path) -> None:
    base = sweep(across("e1000e", Q35, ["pc-q35-7.2"]))
    new = sweep(across("e1000e", Q35, ["pc-q35-2.4", "pc-q35-3.0"]))
    verdict = decide(new, base=base)
    write_reports(new, tmp_path, verdict)
    text = (tmp_path / "summary.md").read_text()
    assert "## Compared with the base sweep" in text
    assert "2 regressed cells, 1 fixed cells" in text
    assert "- e1000e @pcie.0, action created, forward bookworm -> trixie: pc-q35-2.4 .. 3.0" in text
    assert "Fixes (passing now" in text and ": pc-q35-7.2: `" in text
    assert (tmp_path / "index.html").read_text().count('class="h failed-unknown"') == 2
