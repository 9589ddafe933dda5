"""`invoke sweep` between Debian's packaged QEMUs, 7.2 (bookworm) and 10.0 (trixie), with
real QEMUs migrating in containers: the PDS bug comes out of the generic slot action with
the scenario's signature and only 10.0 -> 7.2; every finding is reported with its line; the
grouped migrations answer as one device per migration does; bad input is one line."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from .conftest import PROJECT, invoke

SIDES = "debian-pkg:bookworm,debian-pkg:trixie"
MACHINES = "pc-q35-5.2,pc-q35-6.0,pc-q35-6.1,pc-i440fx-7.2"
PDS = "get_pci_config_device: Bad config data: i=0x6e read: 0 device: 40"
# A sample for the grouped == one-per-migration proof: devices that pass, that fail on
# the destination (one that hides others in its group), that the source cannot migrate,
# that crash the source, that do not start, and ports.
SAMPLE = ("am53c974,dc390,e1000e,ich9-ahci,nvme,pci-serial-2x,cxl-type3,pcie-root-port,"
          "ioh3420,xio3130-downstream,x3130-upstream,qemu-xhci,virtio-net-pci,pci-bridge,"
          "ivshmem-plain,rtl8139")


class SweepRun:
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        where = [ln for ln in result.stdout.splitlines() if ln.startswith("Reports: ")]
        assert where, result.stdout[-3000:] + result.stderr[-3000:]
        self.dir = PROJECT / where[-1].removeprefix("Reports: ")
        self.data: dict[str, Any] = json.loads((self.dir / "results.json").read_text())

    def cells(self, **match: str) -> list[dict[str, Any]]:
        return [c for c in self.data["cells"] if all(c[k] == v for k, v in match.items())]


def sweep(*args: str, env: dict[str, str] | None = None) -> SweepRun:
    return SweepRun(invoke("sweep", *args, env={"CI": "true", **(env or {})}))


@pytest.fixture(scope="module")
def packaged() -> SweepRun:
    return sweep("--builds", SIDES, "--machines", MACHINES)


def test_pds_comes_out_of_the_slot_action_from_10_0_to_7_2_only(packaged: SweepRun) -> None:
    run = packaged
    assert run.data["a"]["qemu_version"].startswith("7.2.")
    assert run.data["b"]["qemu_version"].startswith("10.0.")
    pds = [c for c in run.data["cells"] if c["outcome"] == "failed" and PDS in c["error"]]
    assert {(c["device"], c["placement"], c["action"]) for c in pds} == {
        ("pcie-root-port", "pcie.0", "slot")}
    by_direction = {(c["direction"], c["source"], c["destination"], c["machine"]) for c in pds}
    assert by_direction == {(d, src, "bookworm", m)
                            for d, src in (("backward", "trixie"), ("control", "bookworm"))
                            for m in ("pc-q35-5.2", "pc-q35-6.0")}
    assert {c["known"] for c in pds} == {"pds"}
    # 7.2 -> 10.0 and every type from 6.1 on: the root port's slot migrates
    for machine in ("pc-q35-5.2", "pc-q35-6.0", "pc-q35-6.1"):
        cell, = run.cells(device="pcie-root-port", placement="pcie.0", action="slot",
                          machine=machine, direction="forward")
        assert cell["outcome"] == "passed", cell
    assert [c["outcome"] for c in run.cells(device="pcie-root-port", action="slot",
                                            machine="pc-q35-6.1")] == ["passed"] * 3
    # the slot action is the pciehp sequence, kept for reproduce.sh
    assert any(h.startswith("o /w 0xcf8") for c in pds for h in c["hmp"])


def test_every_finding_is_reported_with_its_first_line(packaged: SweepRun) -> None:
    run = packaged
    summary = (run.dir / "summary.md").read_text()
    failed = [c for c in run.data["cells"] if c["outcome"] == "failed"]
    assert failed
    for cell in failed:
        assert cell["device"] in summary and cell["error"].split(" for ")[0] in summary, cell
    scripts = sorted(run.dir.glob("findings/*/reproduce.sh"))
    linked = set(re.findall(r"findings/[^()\[\]\s`]+/reproduce\.sh", summary))
    assert scripts and {str(s.relative_to(run.dir)) for s in scripts} == linked
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    pds_script = next(s for s in scripts if "pcie-root-port" in s.parent.name)
    text = pds_script.read_text()
    assert "pc-q35-5.2" in text and "o /w 0xcf8" in text and "migrate unix:" in text
    # exit 1: unknown findings beside the known one; the words say so
    assert run.result.returncode == 1, run.result.stderr[-2000:]
    assert "Unknown failures" in run.result.stdout and "Exit code 1" in summary


def test_reports_heat_map_and_junit(packaged: SweepRun) -> None:
    run = packaged
    html = (run.dir / "index.html").read_text()
    for direction in ("forward", "backward", "control"):
        assert direction in html
    assert "pc-q35-5.2" in html and "pcie-root-port" in html
    root = ET.parse(run.dir / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(run.data["devices"]) <= set(suites)
    port = suites["pcie-root-port"]
    names = {str(c.get("name")): c for c in port.iter("testcase")}
    failing = [n for n, c in names.items() if c.find("failure") is not None]
    assert any(n.startswith("pc-q35-6.0 backward") for n in failing)
    assert not any(n.startswith("pc-q35-6.1") for n in failing)


def test_what_was_not_swept_is_listed_with_its_reason(packaged: SweepRun) -> None:
    reasons = {(u["device"], u["reason"]) for u in packaged.data["unrunnable"]}
    assert ("vfio-pci", "needs a host resource") in reasons
    assert ("igb", "only in trixie") in reasons
    assert ("nvme", "unmigratable") in reasons
    refused = [u for u in packaged.data["unrunnable"] if u["device"] == "cxl-type3"]
    assert refused and all(u["reason"].startswith("does not start") and "lsa" in u["detail"]
                           for u in refused)
    summary = (packaged.dir / "summary.md").read_text()
    assert "vfio-pci" in summary and "needs a host resource" in summary


def _normal(cell: dict[str, Any]) -> tuple[str, str]:
    """A cell's answer without where its group put it (slot numbers and qdev ids)."""
    line = re.sub(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7](:[0-9a-f]{2}\.[0-7])*", "PATH",
                  cell["error"])
    return cell["outcome"], re.sub(r"\bs[0-9a-f]{2}([cdf])|addr=0x[0-9a-f]+", "X", line)


def test_grouped_sweep_equals_one_device_per_migration(packaged: SweepRun) -> None:
    """The shortcuts (groups, screening, a source shared by destinations) off: one device per
    migration, every device tried on every machine type, a source per destination; the same
    answer for every cell of the sample."""
    machines = "pc-q35-6.0,pc-i440fx-7.2"
    reference = sweep("--builds", SIDES, "--machines", machines, "--devices", SAMPLE,
                      env={"INVOKE_PATCHCHECK_SWEEP_GROUP_SIZE": "1",
                           "INVOKE_PATCHCHECK_SWEEP_SCREEN": "false",
                           "INVOKE_PATCHCHECK_SWEEP_SHARE_SOURCES": "false"})
    sample = set(SAMPLE.split(","))
    screened = {(u["device"], u["reason"].split()[-2]) for u in packaged.data["unrunnable"]
                if u["reason"].startswith("does not start")}
    grouped = {_key(c): _normal(c) for c in packaged.data["cells"]
               if c["device"] in sample and c["machine"] in machines.split(",")}
    one_each = {_key(c): _normal(c) for c in reference.data["cells"]}
    assert len(one_each) >= 100
    for key, answer in one_each.items():
        if key not in grouped:  # screened out of the groups: it must not start here either
            assert answer[0] == "not-started" and (key[0], key[1]) in screened, (key, answer)
        else:
            assert grouped[key] == answer, key
    assert set(grouped) <= set(one_each)
    # one device per migration: a migration (at least) per device, layout, type and source
    units = {(c["device"], c["placement"], c["machine"], c["action"], c["source"])
             for c in reference.data["cells"]}
    assert reference.data["migrations"] >= len(units)


def _key(cell: dict[str, Any]) -> tuple[str, ...]:
    return (cell["device"], cell["placement"], cell["machine"], cell["direction"], cell["action"])


@pytest.mark.parametrize("args, words", [
    (("--devices", "no-such-device"), "'no-such-device' is not a PCI device type"),
    (("--machines", "pc-q35-10.0"), "known to trixie only"),
    (("--builds", "debian-pkg:bookworm"), "takes two different sides"),
    (("--builds", "debian-pkg:bookworm,debian-pkg:no such"), "debian-pkg"),
])
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    full = args if args[0] == "--builds" else ("--builds", SIDES, *args)
    result = invoke("sweep", *full, "--run-id", "sweep-bad-input", env={"CI": "true"})
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-1000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, lines


def test_results_are_cells(packaged: SweepRun) -> None:
    cells = packaged.data["cells"]
    keys = [_key(c) for c in cells]
    assert len(keys) == len(set(keys))  # one cell per device, placement, type, direction, action
    assert {c["outcome"] for c in cells} >= {"passed", "failed", "unmigratable"}
    assert not packaged.data["partial"]
    assert all(c["error"] for c in cells if c["outcome"] != "passed")
    assert Path(packaged.dir / "results.json").stat().st_size > 0


CONFIGURED = {"INVOKE_PATCHCHECK_SWEEP_BUILD_DEVICES": "configured"}  # the suite's own builds


def test_aer_comes_out_where_its_model_says_and_nowhere_else() -> None:
    """10.0 as Debian ships it (A, the hw_compat_7_2 entry) against 10.0 with that entry
    reverted (B): the builds test_aer_matrix makes. The source decides (no guest action)."""
    from patchcheck.result.model import Side
    from patchcheck.scenarios.aer.model import expected_to_fail

    machines = ("pc-q35-7.1", "pc-q35-7.2", "pc-q35-8.0")
    run = sweep("--scenario", "aer", "--builds", "10.0-compat,10.0-none",
                "--machines", ",".join(machines), env=CONFIGURED)
    assert run.data["a"]["name"] == "10.0-compat" and run.data["b"]["name"] == "10.0-none"
    sides = {"10.0-compat": Side("10.0-compat", "10.0.13", "compat", "", True, ""),
             "10.0-none": Side("10.0-none", "10.0.13", "none", "", False, "")}
    failed = [c for c in run.data["cells"] if c["outcome"] == "failed"]
    assert failed and {c["known"] for c in failed} == {"aer"}
    assert {c["device"] for c in failed} == {"pcie-root-port"}  # the one with AER state here
    for machine in machines:
        for direction in ("forward", "backward", "control"):
            for action in ("created", "slot"):
                cell, = run.cells(device="pcie-root-port", placement="pcie.0", machine=machine,
                                  direction=direction, action=action)
                model = expected_to_fail(machine, sides[cell["source"]],
                                         sides[cell["destination"]], (), ())
                assert (cell["outcome"] == "failed") == model, cell
    # a device behind a failing root port cannot answer: blocked, never passed or failed
    blocked = [c for c in run.data["cells"] if c["outcome"] == "blocked"]
    assert blocked and all(c["direction"] == "backward" and c["machine"] != "pc-q35-8.0"
                           and "its port pcie-root-port failed" in c["error"] for c in blocked)
    assert run.result.returncode == 0, run.result.stdout[-2000:]  # a known bug only


def test_a_patch_that_drops_one_compat_entry_changes_exactly_its_devices_and_types() -> None:
    patch = PROJECT / "tests" / "fixtures" / "sweep" / "no-disable-acs-compat.patch"
    machines = ("pc-q35-3.0", "pc-q35-3.1", "pc-q35-4.0")
    run = sweep("--base", "debian:trixie", "--patch", str(patch),
                "--machines", ",".join(machines), env=CONFIGURED)
    assert run.data["b"]["name"] == "trixie+no-disable-acs-compat"
    failed = [c for c in run.data["cells"] if c["outcome"] == "failed"]
    # hw_compat_3_1's entry is {pcie-root-port-base, disable-acs}: the root ports of <= 3.1
    assert {(c["device"], c["machine"], c["direction"]) for c in failed} == {
        ("pcie-root-port", m, d) for m in ("pc-q35-3.0", "pc-q35-3.1")
        for d in ("forward", "backward")}
    assert all("Bad config data" in c["error"] for c in failed)
    assert run.result.returncode == 1
    assert "The patch makes migrations fail" in run.result.stdout


def test_an_interrupted_sweep_writes_what_it_answered(tmp_path: Path) -> None:
    """Ctrl-C in the middle: exit 3 within seconds, no container of the run left, and the
    cells answered so far in results.json (partial) and in every report."""
    import os
    import signal
    import sys
    import time

    import docker

    from patchcheck.engine.runtime import LABEL_RUN

    env = {**os.environ, "INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path), "CI": "true",
           "INVOKE_PATCHCHECK_SWEEP_JOBS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "sweep", "--builds", SIDES,
                             "--run-id", "sweep-intr"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "sweep-intr" / "results.json"
    deadline = time.monotonic() + 180
    while not (results.exists() and json.loads(results.read_text())["cells"]):
        assert time.monotonic() < deadline and proc.poll() is None, "no cells written"
        time.sleep(0.2)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 3 and "Traceback" not in err, err[-2000:]
    assert "interrupted" in err
    data = json.loads(results.read_text())
    assert data["partial"] is True and data["cells"]
    for name in ("summary.md", "index.html", "junit.xml"):
        assert (tmp_path / "sweep-intr" / name).stat().st_size > 0
    left = docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN}=sweep-intr"})
    assert left == []


def test_the_linux_guest_boots_with_the_devices_and_runs_on_after_migration() -> None:
    """--guest linux: a real boot with each group's devices on the source, the running guest
    migrated, its heartbeats on the destination's console."""
    run = sweep("--builds", SIDES, "--machines", "pc-q35-7.2", "--guest", "linux",
                "--devices", "e1000e,virtio-net-pci,ich9-ahci,qemu-xhci,pcie-root-port,nvme",
                env={"INVOKE_PATCHCHECK_SWEEP_ACTIONS": "created"})
    linux = run.cells(action="linux")
    assert {c["placement"] for c in linux} == {"pcie.0", "root-port"}
    assert {c["direction"] for c in linux} == {"forward", "backward", "control"}
    answered = {(c["device"], c["outcome"]) for c in linux}
    assert ("e1000e", "passed") in answered and ("virtio-net-pci", "passed") in answered
    assert ("nvme", "unmigratable") in answered
    assert not [c for c in linux if c["outcome"] == "error"], linux
    assert run.result.returncode == 0, run.result.stdout[-2000:]
