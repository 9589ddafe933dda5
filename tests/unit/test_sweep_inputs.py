"""The sweep's bad input, each a UsageError of one line before any QEMU migrates: what both
sides have (patchcheck.run.sweep.inventories.common_of: --devices and --machines against the
builds' inventories), the two sides and --against (patchcheck.commands.sweep, checked before
any engine is contacted), and `invoke sweep` itself: exit 2, one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patchcheck.commands.sweep import _against, _sides
from patchcheck.config import settings as config
from patchcheck.config.settings import Settings, SweepSettings
from patchcheck.errors import UsageError
from patchcheck.qemu.inventory import DeviceType, Inventory
from patchcheck.result.cells import Cell, SweepResults, SweepSide
from patchcheck.run.sweep.inventories import common_of

PROJECT = Path(__file__).resolve().parents[2]
MATRIX_RUN = PROJECT / "tests" / "fixtures" / "reports" / "demo3"  # a matrix run, not a sweep
A = SweepSide("bookworm", "debian-pkg:bookworm", "7.2.22", "Debian package", "sha256:a", "/usr/bin/q")
B = SweepSide("trixie", "debian-pkg:trixie", "10.0.7", "Debian package", "sha256:b", "/usr/bin/q")
PORT = DeviceType("pcie-root-port", frozenset({"pcie", "port", "slot"}))


def _types(*names: str) -> dict[str, DeviceType]:
    return {n: PORT if n == PORT.name else DeviceType(n, frozenset({"pcie"})) for n in names}


INV = {"bookworm": Inventory(_types("e1000", "e1000e", "nvme", "vfio-pci", "pcie-root-port"),
                             ("none", "pc-i440fx-7.2", "pc-q35-7.2"), "7.2.22"),
       "trixie": Inventory(_types("e1000", "e1000e", "igb", "nvme", "vfio-pci", "pcie-root-port"),
                           ("none", "pc-i440fx-10.0", "pc-i440fx-7.2", "pc-q35-10.0", "pc-q35-7.2"),
                           "10.0.7")}
SWEEP = SweepSettings(port="pcie-root-port", fillers=("pci-testdev", "e1000"))


def _one_line_error(machines: str = "", devices: tuple[str, ...] = (),
                    inv: dict[str, Inventory] = INV) -> str:
    with pytest.raises(UsageError) as caught:
        common_of(A, B, inv, SWEEP, machines, devices)
    text = str(caught.value)
    assert len(text.splitlines()) == 1 and text.startswith("sweep: "), text
    return text


# --- what both sides have -------------------------------------------------------------------


def test_what_both_sides_have_and_why_the_others_are_not_swept() -> None:
    found = common_of(A, B, INV, SWEEP, "", ())
    assert [d.name for d in found.devices] == ["e1000", "e1000e", "nvme", "pcie-root-port"]
    assert {(u.device, u.reason) for u in found.unrunnable} == {
        ("igb", "only in trixie"), ("vfio-pci", "needs a host resource")}
    assert found.machines == ["pc-q35-7.2", "pc-i440fx-7.2"]  # "none" and 10.0 are not both's
    assert (found.carriers.port, found.carriers.filler) == (PORT, INV["trixie"].devices["e1000"])


def test_the_devices_asked_for_are_the_ones_swept() -> None:
    found = common_of(A, B, INV, SWEEP, "q35", ("nvme", "igb"))
    assert [d.name for d in found.devices] == ["nvme"]
    assert [(u.device, u.reason) for u in found.unrunnable] == [("igb", "only in trixie")]
    assert found.machines == ["pc-q35-7.2"]


def test_an_unknown_device_type_is_one_line() -> None:
    text = _one_line_error(devices=("e1000", "e100e"))
    assert text == ("sweep: --devices: 'e100e' is not a PCI device type of bookworm or trixie "
                    "(see `-device help`)")


def test_a_machine_type_only_one_build_has_is_one_line() -> None:
    assert _one_line_error("pc-q35-10.0") == "sweep: machine type 'pc-q35-10.0' is known to trixie only"
    assert _one_line_error("pc-q35-7.2,pc-i440fx-10.0") == \
        "sweep: machine type 'pc-i440fx-10.0' is known to trixie only"
    assert _one_line_error("pc-q35-2.0") == \
        "sweep: machine type 'pc-q35-2.0' is known to neither bookworm nor trixie"


def test_builds_without_a_pc_machine_type_in_common_is_one_line() -> None:
    apart = {"bookworm": Inventory(INV["bookworm"].devices, ("microvm", "pc-q35-7.2")),
             "trixie": Inventory(INV["trixie"].devices, ("microvm", "pc-q35-10.0", "isapc"))}
    assert _one_line_error(inv=apart) == \
        "sweep: bookworm and trixie have no pc-q35 or pc-i440fx machine type in common"


@pytest.mark.parametrize("machines", ["pc-q35-2.0..4.0", "pc-i440fx-8.0.."],
                         ids=["a range below both", "a range above what both know"])
def test_machines_that_select_nothing_both_know_is_one_line(machines: str) -> None:
    text = _one_line_error(machines)
    assert machines in text


# --- the two sides, and --against ------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return config.load({"patchcheck": {"reports_dir": str(tmp_path / "reports"),
                                       "cache_dir": str(tmp_path / "cache")}})


@pytest.mark.parametrize("names, words", [
    (("7.2-none",), "sweep: --builds takes two different sides A,B (got '7.2-none')"),
    (("7.2-none", "10.0-v2", "7.2-v2"), "(got '7.2-none,10.0-v2,7.2-v2')"),
    (("debian-pkg:bookworm", "debian-pkg:bookworm"), "two different sides"),
    (("7.2-none", "mine"), "sweep: 'mine' is neither debian-pkg:<suite>[=<version>] nor a "
                           "configured build (configured: 7.2-none, 7.2-v1"),
    (("debian-pkg:Bookworm", "7.2-none"), "'Bookworm' is not a Debian suite name"),
], ids=["one side", "three sides", "the same side twice", "neither packaged nor configured",
        "a packaged spec that does not parse"])
def test_two_sides_or_one_line(settings: Settings, names: tuple[str, ...], words: str) -> None:
    with pytest.raises(UsageError) as caught:
        _sides(settings, names)
    assert len(str(caught.value).splitlines()) == 1 and words in str(caught.value)


def test_two_good_sides_pass(settings: Settings) -> None:
    assert _sides(settings, ("debian-pkg:bookworm", "10.0-v2")) == ("debian-pkg:bookworm", "10.0-v2")


def _a_sweep(path: Path) -> None:
    path.mkdir(parents=True)
    SweepResults(A, B, cells=[Cell("e1000e", "pcie.0", "pc-q35-7.2", "forward", "created",
                                   "bookworm", "trixie", "passed")]).write(path / "results.json")


def test_against_an_earlier_sweep_by_run_id_or_directory(settings: Settings) -> None:
    _a_sweep(settings.reports_dir / "sweep-1")
    assert _against(settings, "") is None
    for run in ("sweep-1", str(settings.reports_dir / "sweep-1"),
                str(settings.reports_dir / "sweep-1" / "results.json")):
        base = _against(settings, run)
        assert base is not None and [c.device for c in base.cells] == ["e1000e"]


def test_against_a_directory_without_a_sweep_is_one_line(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for run, words in ((str(empty), "no sweep's results.json there"),
                       (str(MATRIX_RUN), "not a sweep's results.json"),
                       ("no-such-run", "no-such-run")):
        with pytest.raises(UsageError) as caught:
            _against(settings, run)
        text = str(caught.value)
        assert len(text.splitlines()) == 1 and f"--against {run}" in text and words in text, text


# --- through `invoke sweep`, as a user runs it (no engine: a row that reached it exits 3) -----


def _invoke(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    for name in ("tasks.py", "invoke.yaml"):
        shutil.copy(PROJECT / name, project / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "DOCKER_", "XDG_"))}
    env.update(HOME=str(home), INVOKE_PATCHCHECK_CACHE_DIR=str(tmp_path / "cache"),
               DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "invoke", "sweep", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("patchcheck: error: sweep: "), line
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("args, words", [
    (["--builds", "a"], ["--builds takes two different sides A,B (got 'a')"]),
    (["--builds", "7.2-none,7.2-none"], ["two different sides", "'7.2-none,7.2-none'"]),
    (["--builds", "7.2-none,mine"], ["'mine' is neither"]),
], ids=["one side", "the same side twice", "an unknown side"])
def test_invoke_sweep_with_bad_sides(tmp_path: Path, args: list[str], words: list[str]) -> None:
    _assert_one_line(_invoke(tmp_path, *args), *words)


def test_invoke_sweep_against_a_matrix_run(tmp_path: Path) -> None:
    result = _invoke(tmp_path, "--builds", "7.2-none,10.0-none", "--against", str(MATRIX_RUN))
    _assert_one_line(result, f"--against {MATRIX_RUN}", "not a sweep's results.json")


def test_invoke_sweep_against_the_history_file(tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    history.write_text(json.dumps([{"run_id": "nightly-1", "cases": {}}]))
    result = _invoke(tmp_path, "--builds", "7.2-none,10.0-none", "--against", str(history))
    _assert_one_line(result, f"--against {history}")
