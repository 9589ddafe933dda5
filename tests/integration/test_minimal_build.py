"""The minimal build (the default configuration) against the full one: the same observed
outcome in every case, the same register-semantics finding.

The minimal run is the session's `invoke matrix` (shared with test_matrix.py); the full
run is `invoke -f FILE matrix` with `build.devices: []` — QEMU's default device set and the
feature-trimmed `build.configure` alone, as documented — so its builds are separate cache
entries next to the minimal ones. The full run takes the 7.2 tree's three builds (every
pair among them, every machine type): one cold full build instead of two keeps the suite's
time down (docs/builds.md: until 2026-12-03 it compared the whole default matrix).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import MatrixRun, invoke

Key = tuple[str, str, str, str, tuple[str, ...]]


@pytest.fixture(scope="module")
def full_matrix_run(tmp_path_factory: pytest.TempPathFactory) -> MatrixRun:
    work = tmp_path_factory.mktemp("full-configuration")
    conf = work / "full.json"
    conf.write_text(json.dumps({"patchcheck": {"build": {"devices": []},
                                               "reports_dir": str(work / "reports")}}))
    return MatrixRun(invoke("-f", str(conf), "matrix", "--builds", ",".join(FULL),
                            env={"CI": "true"}))


FULL = ("7.2-none", "7.2-v1", "7.2-v2")  # the tree the full configuration is built for


def _key(case: dict[str, Any]) -> Key:
    return (case["machine"], case["guest"], case["source"]["build"],
            case["destination"]["build"], tuple(case["globals"]))


def _outcomes(run: MatrixRun) -> dict[Key, str]:
    found: dict[Key, str] = {}
    for case in run.data["cases"]:
        assert _key(case) not in found, _key(case)
        found[_key(case)] = case["observed"]
    return found


def test_two_really_different_configurations(default_matrix_run, full_matrix_run):
    minimal, full = default_matrix_run.data["builds"], full_matrix_run.data["builds"]
    assert set(minimal) == {"7.2-none", "7.2-v1", "7.2-v2", "10.0-v2", "10.0-none"}
    assert set(full) == set(FULL)
    for name in full:
        small, big = minimal[name], full[name]
        assert small["devices"] == "minimal", (name, small.get("devices"))
        assert big["devices"] == "default", (name, big.get("devices"))
        assert "--without-default-devices" in small["configure"]
        assert "--without-default-devices" not in big["configure"]
        assert small["key"] != big["key"] and small["binary"] != big["binary"]
        assert small["binary_sha256"] != big["binary_sha256"]
        assert small["tree_id"] == big["tree_id"]  # the same source and fix
        assert os.path.getsize(small["binary"]) < os.path.getsize(big["binary"]), name
        assert small["machines"] == big["machines"]  # every pc-q35 type in both
        # optimisation per part in the minimal build only; the full one keeps QEMU's -O2
        assert small["optimize"] == ["libqemu-*:-O1", "*:-O0"] and big["optimize"] == []
        assert "CC=/patchcheck/cc" in small["reproduce"] and "/patchcheck/cc" not in big["reproduce"]


def test_same_observed_outcome_in_every_case(default_matrix_run, full_matrix_run):
    minimal, full = _outcomes(default_matrix_run), _outcomes(full_matrix_run)
    assert not default_matrix_run.data["partial"] and not full_matrix_run.data["partial"]
    assert len(minimal) >= 800  # the whole default matrix (853 cases with QEMU 7.2 and 10.0)
    within = {key for key in minimal if key[2] in FULL and key[3] in FULL}
    assert full.keys() == within and len(full) >= 200  # every case of the 7.2 tree's pairs
    differ = [(key, minimal[key], full[key]) for key in full if minimal[key] != full[key]]
    assert not differ, (f"{len(differ)} cases differ (minimal, full): {differ[:20]}\n"
                        f"minimal: {default_matrix_run.unexpected()}\n"
                        f"full: {full_matrix_run.unexpected()}")
    assert {"passed", "failed"} == set(full.values())


def test_same_register_semantics_finding(default_matrix_run, full_matrix_run):
    codes = (default_matrix_run.result.returncode, full_matrix_run.result.returncode)
    assert codes == (1, 1), (default_matrix_run.unexpected(), full_matrix_run.unexpected())
    probes = [json.loads((Path(run.run_dir) / "probe.json").read_text())
              for run in (default_matrix_run, full_matrix_run)]
    for probe in probes:
        assert "7.2-v1" in probe["verdict"] and "PDS" in probe["verdict"], probe["verdict"]

    def changes(probe: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((p["machine"], p["without"], p["with_fix"], c["register"], c["bit"],
                       c["without"], c["with_fix"], c["change"])
                      for p in probe["pairs"] for c in p["changes"]
                      if p["without"] in FULL and p["with_fix"] in FULL)
    assert changes(probes[1]) and changes(probes[0]) == changes(probes[1])


def test_precompiled_header_changes_no_byte_of_the_binary(builds, runtime, settings):
    """The minimal build precompiles qemu/osdep.h (build.minimal_pch); the same build without
    it is the same binary, byte for byte, and GCC used the header wherever it was valid."""
    import dataclasses

    from patchcheck.build.pipeline import Pipeline

    with_pch = builds["7.2-none"]
    assert with_pch.pch == "qemu/osdep.h" and with_pch.devices == "minimal"
    plain = Pipeline(runtime, dataclasses.replace(settings, minimal_pch=""),
                     log=lambda line: None).build(settings.builds["7.2-none"])
    assert plain.pch == "" and plain.key != with_pch.key
    assert plain.binary_sha256 == with_pch.binary_sha256
    # the headers were made and used: one per set of compiler flags, in the kept build directory
    kept = Path(with_pch.binary).parent.parent / "build" / "patchcheck-pch"
    made = list(kept.glob("*/*/qemu/osdep.h.gch"))
    assert 5 <= len(made) <= 40, made
    # GCC says where it could not use one (a file that defines a macro the header tests first)
    log = (Path(with_pch.binary).parent.parent / "build.log").read_text()
    assert log.count("not used because") <= 5, log.count("not used because")
