"""`invoke matrix --scenario aer` on the scenario's default builds (Debian 7.2, Debian 10.0
as shipped, 10.0 with the hw_compat_7_2 entry reverted), end to end with real QEMU."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from .conftest import MatrixRun, invoke

LINE = "Bad config data: i=0x10a read: 40 device: 0 cmask: ff wmask: 0 w1cmask:0"


@pytest.fixture(scope="module")
def aer_run() -> MatrixRun:
    return MatrixRun(invoke("matrix", "--scenario", "aer", env={"CI": "true"}))


def _case(data: dict[str, Any], machine: str, src: str, dst: str, forced: bool = False
          ) -> dict[str, Any]:
    found = [c for c in data["cases"] if c["machine"] == machine and c["source"]["build"] == src
             and c["destination"]["build"] == dst and bool(c["globals"]) == forced]
    assert len(found) == 1, (machine, src, dst, forced, len(found))
    return found[0]


def test_every_case_as_the_model_expects(aer_run: MatrixRun) -> None:
    result = aer_run.result
    assert result.returncode == 0, aer_run.unexpected() + "\n" + result.stdout[-2000:] + \
        result.stderr[-2000:]
    assert "As expected (exit 0): all 250 cases came out as the model says." in result.stdout
    assert "With the fix at the source every case passes (" in result.stdout
    data = aer_run.data
    assert data["settings"]["scenario"] == "aer"
    assert {c["source"]["build"] for c in data["cases"]} == {"7.2-none", "10.0-compat",
                                                             "10.0-none"}
    assert {c["observed"] for c in data["cases"]} == {"passed", "failed"}
    assert all(c["observed"] == c["expected"] for c in data["cases"])


def test_without_the_fix_the_destination_rejects_uncor_mask(aer_run: MatrixRun) -> None:
    data = aer_run.data
    failed = [c for c in data["cases"] if c["observed"] == "failed"]
    assert failed and all(LINE in c["destination_error"] for c in failed)
    # the source decides: without the fix it fails towards 7.2 and towards a fixed 10.0 ...
    for dst in ("7.2-none", "10.0-compat"):
        case = _case(data, "pc-q35-7.2", "10.0-none", dst)
        assert case["observed"] == "failed" and case["guest_state"] == {
            "x-pcie-err-unc-mask": "true"}
    # ... with it, 10.0 -> 7.2 works both ways, and the register is off on 7.2 types
    fixed = _case(data, "pc-q35-7.2", "10.0-compat", "7.2-none")
    assert fixed["observed"] == "passed"
    assert fixed["guest_state"] == {"x-pcie-err-unc-mask": "false"}
    assert _case(data, "pc-q35-7.2", "7.2-none", "10.0-none")["observed"] == "passed"
    # from 8.0 on both 10.0 builds have the register on: nothing to reject
    assert _case(data, "pc-q35-8.0", "10.0-none", "10.0-compat")["observed"] == "passed"


def test_the_forced_register_on_a_fixed_source_brings_the_bug_back(aer_run: MatrixRun) -> None:
    data = aer_run.data
    case = _case(data, "pc-q35-7.2", "10.0-compat", "7.2-none", forced=True)
    assert case["globals"] == ["pcie-root-port.x-pcie-err-unc-mask=on"]
    assert case["observed"] == "failed" and LINE in case["destination_error"]
    # the -global went to the source only, and no forced case has a 7.2 source
    lines = [ln for ln in open(case["logs"]["reproduce"]).read().splitlines()
             if "-global pcie-root-port.x-pcie-err-unc-mask=on" in ln]
    assert len(lines) == 1 and lines[0].rstrip().endswith(" -S")  # the paused source's
    assert not [c for c in data["cases"] if c["globals"] and c["source"]["build"] == "7.2-none"]


def test_reports_name_the_scenario(aer_run: MatrixRun) -> None:
    assert "scenario aer:" in aer_run.stdout
    html = (aer_run.run_dir / "index.html").read_text()
    assert 'id="scenario">Scenario: aer:' in html
    root = ET.parse(aer_run.run_dir / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["scenario"] == "aer"
    assert "scenario aer" in (aer_run.run_dir / "summary.md").read_text()


def test_the_probe_compares_7_2_with_10_0_on_an_old_machine_type(aer_run: MatrixRun) -> None:
    """The register-semantics probe reads UNCOR_MASK through ECAM: on pc-q35-7.2, 10.0 with
    the fix shows the guest exactly 7.2's register, 10.0 without it a writable one."""
    probe = json.loads((aer_run.run_dir / "probe.json").read_text())
    assert probe["exit_code"] == 0 and not probe["errors"], probe["verdict"]
    across = {(v["without"], v["with_fix"], v["machine"]): v for v in probe["versions"]}
    assert set(across) == {("7.2-none", "10.0-compat", "pc-q35-7.2"),
                           ("7.2-none", "10.0-none", "pc-q35-7.2")}
    assert across[("7.2-none", "10.0-compat", "pc-q35-7.2")]["changes"] == []
    changed = {c["bit"]: (c["without"], c["with_fix"])
               for c in across[("7.2-none", "10.0-none", "pc-q35-7.2")]["changes"]}
    assert changed[22] == ("RO=0", "RW=1") and changed[4] == ("RO=0", "RW=0")
    assert 26 not in changed and 0 not in changed  # QEMU's wmask: bits 4, 5, 12-25
    reset = {(p["build"], p["machine"]): p["reset"]["uncor_mask"] for p in probe["probes"]}
    assert reset[("10.0-none", "pc-q35-7.2")] == 0x02400000
    assert reset[("10.0-compat", "pc-q35-7.2")] == 0 == reset[("7.2-none", "pc-q35-7.2")]
    assert reset[("10.0-compat", "pc-q35-10.0")] == 0x02400000
    assert "Register semantics:" in aer_run.stdout
