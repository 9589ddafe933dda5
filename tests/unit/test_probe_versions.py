"""Extended configuration space through ECAM over the qtest protocol (a fake qtest server
modelled on q35: PCIEXBAR, the MCH's ids, a root port with AER), the aer register set on it,
and the probe's comparison across QEMU versions."""

from __future__ import annotations

import dataclasses
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patchcheck.build.record import BuildRecord
from patchcheck.probe import assemble, classify, experiment, model, runner, versions
from patchcheck.qemu import ecam
from patchcheck.qemu.pciconf import PciAddress, PciError
from patchcheck.scenarios.aer.model import UNC_MASK_DEFAULT
from patchcheck.scenarios.aer.scenario import ROOT_PORT_ID, SCENARIO
from patchcheck.verdict import probe as probe_verdict

ROOT_PORT = PciAddress(0, 0x12, 0)
WMASK = 0x03FFF030  # QEMU 8.0's writable UNCOR_MASK bits


class FakeQ35:
    """The qtest side of a paused q35 QEMU: port I/O to 0xcf8/0xcfc for the MCH's PCIEXBAR,
    and 32-bit MMIO into ECAM for the MCH and one root port with AER at 0x100 (UNCOR_MASK
    at 0x108: writable with the 8.0 default when `register_on`, else read-only 0)."""

    def __init__(self, register_on: bool) -> None:
        self.latch = 0
        self.pciexbar = 0
        self.mask_wmask = WMASK if register_on else 0
        self.space = {ROOT_PORT: {0x100: 0x0001 | 1 << 16 | 0x148 << 20, 0x148: 0x000D | 1 << 16,
                                  0x108: UNC_MASK_DEFAULT if register_on else 0},
                      PciAddress(0, 0, 0): {0: ecam.Q35_MCH_IDS}}
        self.lines: list[str] = []

    def _decode(self, address: int) -> tuple[PciAddress, int] | None:
        if not self.pciexbar & 1 or not ecam.ECAM_BASE <= address < ecam.ECAM_BASE + (1 << 28):
            return None
        off = address - ecam.ECAM_BASE
        return PciAddress(off >> 20, (off >> 15) & 0x1F, (off >> 12) & 7), off & 0xFFF

    def answer(self, line: str) -> str:
        self.lines.append(line)
        words = line.split()
        if words[0] == "outl" and int(words[1], 16) == 0xCF8:
            self.latch = int(words[2], 16)
        elif words[0] == "outl" and int(words[1], 16) == 0xCFC:
            if self.latch == PciAddress(0, 0, 0).cf8(0x60):
                self.pciexbar = int(words[2], 16)
        elif words[0] == "readl":
            where = self._decode(int(words[1], 16))
            value = self.space.get(where[0], {}).get(where[1], 0) if where else 0xFFFFFFFF
            if where and where[0] not in self.space:
                value = 0xFFFFFFFF
            return f"OK {value:#x}"
        elif words[0] == "writel":
            where = self._decode(int(words[1], 16))
            if where and where == (ROOT_PORT, 0x108):
                old = self.space[ROOT_PORT][0x108]
                value = int(words[2], 16)
                self.space[ROOT_PORT][0x108] = (old & ~self.mask_wmask) | (value & self.mask_wmask)
        else:
            return f"FAIL unknown command {words[0]}"
        return "OK"


@pytest.fixture
def qtest_server() -> Iterator[tuple[Path, FakeQ35]]:
    """A unix socket served by a FakeQ35 (the experiment's QEMU, as its qtest sees it)."""
    qemu = FakeQ35(register_on=True)
    directory = Path(tempfile.mkdtemp(prefix="qt-"))
    path = directory / "qt.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        buffer = b""
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    conn.sendall(b"IRQ raise 0\n" if line == b"outl 0xcf8 0x80000064" else b"")
                    conn.sendall(qemu.answer(line.decode()).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, qemu
    server.close()


class Monitor:
    """QMP as the probe uses it: query-pci finds the root port, qom-list its peripherals."""

    def hmp(self, command: str) -> str:
        raise AssertionError(f"no port I/O through the monitor for ECAM: {command}")

    def qmp(self, command: str, **args: object) -> Any:
        if command == "query-pci":
            return [{"bus": 0, "devices": [{"bus": 0, "slot": 0x12, "function": 0,
                                            "qdev_id": ROOT_PORT_ID}]}]
        if command == "qom-list":
            return [{"name": ROOT_PORT_ID}]
        raise AssertionError(command)


def test_ecam_reaches_extended_space_and_walks_its_capabilities(qtest_server) -> None:
    path, qemu = qtest_server
    qt = ecam.Qtest(path, timeout=5)
    assert ecam.EcamConfig(qt, ROOT_PORT).read(0x108, 4) == 0xFFFFFFFF  # window still off
    ecam.enable(qt)
    assert qemu.pciexbar == ecam.ECAM_BASE | 1
    cfg = ecam.EcamConfig(qt, ROOT_PORT)
    assert ecam.extended_capabilities(cfg) == [(0x100, 0x0001), (0x148, 0x000D)]
    assert ecam.find_extended_capability(cfg, 0x0001) == 0x100
    with pytest.raises(PciError, match=r"no extended capability 0x0002 \(present: 0x0001@0x100"):
        ecam.find_extended_capability(cfg, 0x0002)
    cfg.write(0x108, 4, 0xFFFFFFFF)
    assert cfg.read(0x108, 4) == WMASK
    with pytest.raises(ValueError):
        cfg.read(0x1000, 4)
    qt.close()


def test_an_experiment_on_uncor_mask_through_ecam(qtest_server) -> None:
    path, qemu = qtest_server
    registers = SCENARIO.probe
    assert registers is not None and registers.extended
    qt = ecam.Qtest(path, timeout=5)
    exp = next(e for e in experiment.experiments(registers) if e.bit == 22)
    outcome = runner.run_experiment(exp, Monitor(), registers, qt)
    qt.close()
    assert outcome.cap_offset == 0x100 and not outcome.error
    reads = [op.value for op in outcome.trace if op.register == "uncor_mask" and not op.write]
    assert reads[0] == UNC_MASK_DEFAULT  # after reset: bits 22 and 25
    assert [(v >> 22) & 1 for v in reads[2:6]] == list(runner.STEPS)  # it follows the writes
    assert any(ln.startswith("writel 0xb0090108") for ln in qemu.lines)  # 00:12.0 + 0x108


def test_extended_registers_need_a_qtest_connection() -> None:
    registers = SCENARIO.probe
    assert registers is not None
    with pytest.raises(PciError, match="qtest socket"):
        runner.open_capability(Monitor(), registers, None)


def _record(name: str, version: str, has_fix: bool, machines: list[str]) -> BuildRecord:
    return BuildRecord(name=name, key=name, source="debian:x", commit="c" * 40, tree_id="t",
                       qemu_version=version, package_version=None,
                       fix={"state": "compat" if has_fix else "none", "applied": "clean",
                            "has_fix": has_fix},
                       generation="trixie", image="i", image_id="sha256:0", configure=[],
                       seconds=0.0, ccache="", binary=f"/b/{name}", binary_sha256="0",
                       reproduce="", machines=machines)


OLD = ["pc-q35-7.1", "pc-q35-7.2"]
NEW = [*OLD, "pc-q35-8.0", "pc-q35-10.0"]


def test_version_pairs_use_the_oldest_version_on_its_newest_type() -> None:
    records = {"7.2-none": _record("7.2-none", "7.2.22", False, OLD),
               "10.0-compat": _record("10.0-compat", "10.0.13", True, NEW),
               "10.0-none": _record("10.0-none", "10.0.13", False, NEW)}
    assert versions.pairs(records) == [("7.2-none", "10.0-compat", "pc-q35-7.2"),
                                       ("7.2-none", "10.0-none", "pc-q35-7.2")]
    same = {k: v for k, v in records.items() if k.startswith("10.0")}
    assert versions.pairs(same) == []  # one version: nothing to compare across
    assert versions.version_of("10.0.13") == (10, 0, 13) and versions.version_of("x") == ()


def _probe(name: str, on: bool) -> model.BuildProbe:
    registers = SCENARIO.probe
    assert registers is not None
    record = _record(name, "10.0.13" if name != "old" else "7.2.22", on, NEW)
    outcomes = []
    for exp in experiment.experiments(registers):
        reset = UNC_MASK_DEFAULT if on else 0
        writable = on and bool(WMASK >> exp.bit & 1)
        trace = [classify.read("uncor_mask", reset)]
        current = reset
        for value in runner.STEPS:
            trace.append(classify.write("uncor_mask", current))
            if writable:
                current = (current & ~(1 << exp.bit)) | value << exp.bit
            trace.append(classify.read("uncor_mask", current))
        outcomes.append(runner.Outcome(exp, trace, 0x100))
    return assemble.assemble(record, "pc-q35-7.2", [], outcomes, registers)


@pytest.mark.parametrize(("newer_on", "newer_has_fix", "breaks"), [
    (False, True, False),  # the fix keeps 7.2's read-only 0: unchanged
    (True, False, False),  # without the fix it changes: the bug, reported, not a failure
    (True, True, True),  # a "fix" that changes the old type: a failure
])
def test_a_change_across_versions_fails_only_a_build_with_the_fix(
        newer_on: bool, newer_has_fix: bool, breaks: bool) -> None:
    registers = SCENARIO.probe
    assert registers is not None
    old, new = _probe("old", False), _probe("new", newer_on)
    run = model.ProbeRun("r", "now", builds={"old": {"has_fix": False},
                                            "new": {"has_fix": newer_has_fix}})
    run.versions.append(model.compare_probes(old, new, registers))
    changed = {c.bit for c in run.versions[0].changes}
    assert changed == (set(range(32)) & {b for b in range(32) if WMASK >> b & 1}
                       if newer_on else set())
    assert bool(model.breaks(run)) == breaks
    assert (probe_verdict.exit_code(run) == 1) == breaks
    assert ("does not keep an old machine type" in probe_verdict.words(run)) == breaks
    again = model.from_dict(run.to_dict())  # probe.json keeps the comparisons
    assert [dataclasses.asdict(v) for v in again.versions] == \
        [dataclasses.asdict(v) for v in run.versions]
    text = "\n".join(versions.lines(run))
    assert "across versions" in text and ("unchanged" in text) == (not newer_on)
