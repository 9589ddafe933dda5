"""Issue 27: a QEMU the kernel kills for memory is an error with its reason, never a verdict.

A real `invoke matrix` whose QEMU containers get a memory limit below what one QEMU needs
(patchcheck.matrix.qemu_memory_mib): every QEMU is killed by the kernel's OOM killer as it
starts, so every case is an `error` that says so, in results.json and junit.xml, with the
QEMU's log kept; the run exits 3 (no verdict) and leaves no container. The same run resumed
without the limit (the fault repaired) reruns those cases and comes out as expected, with no
cleanup in between. Figures: docs/reliability.md, "Memory".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker

from patchcheck.engine.runtime import LABEL_RUN

from .conftest import invoke

# One paused 7.2 QEMU with the synthetic guest is charged about 20 MiB of its container's
# memory, the launcher beside it 7: at 16 MiB the launcher lives and no QEMU can start.
LIMIT_MIB = 16
REASON = f"killed by the kernel: out of memory (container memory limit {LIMIT_MIB} MiB)"
MATRIX = ["matrix", "--builds", "7.2-none,7.2-v2", "--machines", "6.0,7.2", "--guest",
          "synthetic", "--jobs", "2"]


def _containers(run_id: str) -> list:
    return docker.from_env().containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})


def _env(reports: Path, memory_mib: int) -> dict[str, str]:
    return {"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports), "CI": "true",
            "INVOKE_PATCHCHECK_MATRIX_SEMANTICS": "false",  # the probe: see docs/reliability.md
            "INVOKE_PATCHCHECK_MATRIX_QEMU_MEMORY_MIB": str(memory_mib)}


def test_qemus_killed_for_memory_are_errors_with_the_reason_and_the_next_run_works(
        builds, tmp_path):
    builds["7.2-none"], builds["7.2-v2"]
    reports = tmp_path / "r"
    result = invoke(*MATRIX, "--run-id", "oom", env=_env(reports, LIMIT_MIB), timeout=600)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "No verdict (exit 3)" in result.stdout
    run = reports / "oom"
    data = json.loads((run / "results.json").read_text())
    cases = data["cases"]
    assert len(cases) == 12 and data.get("partial") is not True
    for case in cases:
        assert case["observed"] == "error", case  # never passed, failed or failed-other
        killed = re.match(r"(destination|source)( and source)? QEMUs? w(as|ere) ", case["message"])
        assert killed and REASON in case["message"], case["message"]
        role = killed.group(1)
        log = Path(case["logs"][role]).read_text()  # the QEMU's log, kept, says why it ended
        assert f"patchcheck launcher: qemu-system-x86_64 was {REASON}" in log
    junit = (run / "junit.xml").read_text()
    assert junit.count("<error ") == 12 and "<failure" not in junit
    assert len(re.findall(rf'<error [^>]*message="[^"]*{re.escape(REASON)}', junit)) == 12
    assert _containers("oom") == []

    # the fault repaired (no limit): the same run resumed reruns every case, no cleanup
    again = invoke(*MATRIX, "--resume", "oom", env=_env(reports, 0), timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "rerunning 12 cases: error last time" in again.stdout + again.stderr
    cases = json.loads((run / "results.json").read_text())["cases"]
    assert sorted(c["observed"] for c in cases) == ["failed"] * 4 + ["passed"] * 8
    assert all(c["observed"] == c["expected"] for c in cases)
    assert _containers("oom") == []
