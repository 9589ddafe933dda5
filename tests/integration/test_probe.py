"""The register-semantics probe on Debian bookworm's QEMU 7.2 (`7.2-none`, `7.2-v1`,
`7.2-v2`), pc-q35-6.0, QEMU run the way `invoke matrix` runs it (builder container,
Machine, machine_args of the PDS scenario, paused).

What must come out: v1 turns Slot Status bit 6 (Presence Detect State) from read-only
into write-1-to-clear, which violates the specification and fails the JUnit suite; v2
changes nothing the guest can see; the -dump-vmstate output of none, v1 and v2 is the
same.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
from lxml import etree

from patchcheck.commands.probe import probe_command
from patchcheck.config.settings import Settings
from patchcheck.engine.docker import DockerRuntime
from patchcheck.exit_codes import EXIT_DEVIATION
from patchcheck.probe.classify import Change
from patchcheck.probe.model import ProbeRun
from patchcheck.probe.orchestrate import run_probe
from patchcheck.report.probe_text import write
from patchcheck.verdict.probe import exit_code

from .conftest import Builds

pytestmark = pytest.mark.integration

MACHINE = "pc-q35-6.0"
XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit-10.xsd"


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe")


@pytest.fixture(scope="module")
def run(builds: Builds, runtime: DockerRuntime, settings: Settings, probe_dir: Path) -> ProbeRun:
    records = {name: builds[name] for name in ("7.2-none", "7.2-v1", "7.2-v2")}
    result = run_probe(settings, runtime, records, ["6.0"], log=print, run_id="it",
                       outdir=probe_dir)
    write(result, probe_dir)
    for probe in result.probes:
        print(f"{probe.build} {probe.machine}: {probe.experiments} experiments, "
              f"{probe.seconds} s")  # measured timings, shown with -s
    return result


def test_probed_every_bit_without_errors(run: ProbeRun) -> None:
    assert run.all_errors == []
    assert run.machines == {name: [MACHINE] for name in ("7.2-none", "7.2-v1", "7.2-v2")}
    for probe in run.probes:
        assert probe.experiments == 96
        assert probe.cap_offset == 0x54  # found by walking the capability list
        assert probe.register("sltsta").address == 0x6E
        assert probe.reset["sltsta"] == 0x0040 and probe.reset["sltctl"] == 0x07C0


def test_v1_makes_presence_detect_state_write_one_to_clear(run: ProbeRun) -> None:
    pair = run.pair("7.2-none", "7.2-v1", MACHINE)
    assert [(c.register, c.bit, c.name, c.without, c.with_fix, c.spec, c.change)
            for c in pair.changes] == \
        [("sltsta", 6, "PDS", "RO=1", "RW1C=1", "RO", Change.INTRODUCED)]
    pds = run.probe("7.2-v1", MACHINE).bit("sltsta", 6)
    assert pds.violation and "7.5.3.11" in pds.reason
    trace = pds.trace
    i = trace.index("w sltsta 0x0040")
    assert trace[i + 1] == "r sltsta 0x0000"  # writing 0x40 clears PDS with v1
    unpatched = run.probe("7.2-none", MACHINE).bit("sltsta", 6)
    assert unpatched.label == "RO=1" and not unpatched.violation
    assert unpatched.trace[unpatched.trace.index("w sltsta 0x0040") + 1] == "r sltsta 0x0040"


def test_v2_shows_no_guest_visible_change(run: ProbeRun) -> None:
    pair = run.pair("7.2-none", "7.2-v2", MACHINE)
    assert pair.changes == [] and pair.introduced == [] and not pair.error


def test_known_register_semantics_of_the_unpatched_port(run: ProbeRun) -> None:
    none = run.probe("7.2-none", MACHINE)
    status = {b.name: b.label for b in none.register("sltsta").bits}
    assert status["PDC"] == "RW1C=0" and status["CC"] == "RW1C=0"  # armed, then acked
    assert status["PDS"] == "RO=1" and status["EIS"] == "RO=0, armed 1"
    pcc = none.bit("sltctl", 10)
    assert pcc.label == "RW=1" and pcc.unplugged == ["nex-usb-xhci0"]  # power-off unplugs
    assert all(b.label.startswith("RO=") for b in none.register("sltcap").bits)
    # QEMU's own deviations (no writable Link Control bit, no DLLSCE) are the same in both
    # builds: reported, never attributed to the fix.
    pair = run.pair("7.2-none", "7.2-v1", MACHINE)
    assert {d.name for d in pair.preexisting} >= {"ASPMC[0]", "CCC", "DLLSCE"}


def test_vmstate_dumps_do_not_differ(run: ProbeRun, probe_dir: Path) -> None:
    comparisons = [run.vmstate_for("7.2-none", w, MACHINE) for w in ("7.2-v1", "7.2-v2")]
    digests = set()
    for vm in comparisons:
        assert vm is not None and not vm.error
        # a minimal build describes ~50 sections (a full one >100); the scenario's are there
        assert vm.identical and vm.differences == [] and vm.sections > 40
        for path in vm.dumps.values():
            sections = json.loads(gzip.decompress(Path(path).read_bytes()))
            assert {"pcie-root-port", "nec-usb-xhci", "q35-pcihost"} <= set(sections)
        digests |= {vm.without_sha256, vm.with_sha256}
        assert all(Path(p).is_file() for p in vm.dumps.values())
    assert len(digests) == 1  # none, v1 and v2 dump the same description


def test_reports_and_junit(run: ProbeRun, probe_dir: Path) -> None:
    assert exit_code(run) == EXIT_DEVIATION
    doc = etree.parse(str(probe_dir / "semantics.xml"))
    assert etree.XMLSchema(etree.parse(str(XSD))).validate(doc)
    failed = [tc.get("name") for tc in doc.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["7.2-none->7.2-v1 Slot Status"]
    assert not any(tc.find("error") is not None for tc in doc.iter("testcase"))
    md = (probe_dir / "probe.md").read_text()
    assert "| 6 | PDS | RO | RO=1 | RW1C=1 ✗ | RO=1 |" in md
    assert (probe_dir / "probe.json").is_file()


def test_probe_command_adds_the_baseline_and_exits_1_for_v1(
        runtime: DockerRuntime, settings: Settings, tmp_path: Path) -> None:
    local = dataclasses.replace(settings, reports_dir=tmp_path)
    code = probe_command(local, runtime, ["7.2-v1"], ["6.0"], log=lambda line: None)
    assert code == EXIT_DEVIATION
    outdir = tmp_path / runtime.run_id
    assert {p.name for p in outdir.iterdir()} >= {"probe.json", "semantics.xml", "probe.md",
                                                   "vmstate"}
    assert "7.2-none" in (outdir / "probe.json").read_text()  # the without-fix build was added
