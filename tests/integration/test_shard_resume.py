"""Issue 6: shards merge to the unsharded run; an interrupted run resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import PROJECT, invoke

SMALL = ["--builds", "7.2-none,7.2-v2", "--machines", "5.0..7.2", "--jobs", "2"]


def _outcomes(run_dir: Path) -> dict[str, tuple[str, str]]:
    data = json.loads((run_dir / "results.json").read_text())
    ids = [c["id"] for c in data["cases"]]
    assert len(ids) == len(set(ids))
    return {c["id"]: (c["observed"], c["expected"]) for c in data["cases"]}


@pytest.fixture(scope="module")
def reports(tmp_path_factory, builds):
    builds["7.2-none"], builds["7.2-v2"]
    path = tmp_path_factory.mktemp("reports")
    ref = invoke("matrix", *SMALL, "--run-id", "reference", env=_env(path))
    assert ref.returncode == 0, ref.stderr[-2000:]
    return path


def _env(path: Path) -> dict[str, str]:
    return {"INVOKE_PATCHCHECK_REPORTS_DIR": str(path), "CI": "true"}


def test_shards_merge_to_the_unsharded_run(reports):
    for k in (1, 2, 3):
        run = invoke("matrix", *SMALL, "--shard", f"{k}/3", "--run-id", f"shard-{k}",
                     env=_env(reports))
        assert run.returncode == 0, run.stderr[-2000:]
    shards = [_outcomes(reports / f"shard-{k}") for k in (1, 2, 3)]
    assert all(shards)
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])
    merged = invoke("report.merge", "--run", "shard-1", "--run", "shard-2", "--run", "shard-3",
                    "--out", "merged", env=_env(reports))
    assert merged.returncode == 0, merged.stderr
    assert _outcomes(reports / "merged") == _outcomes(reports / "reference")
    assert (reports / "merged" / "junit.xml").is_file()
    assert (reports / "merged" / "index.html").is_file()
    # shard 1/3 ran the register-semantics probe; the merge carries it (issue 25)
    assert (reports / "shard-1" / "probe.json").is_file()
    assert not (reports / "shard-2" / "probe.json").exists()
    assert (reports / "merged" / "probe.json").is_file()
    assert "Register semantics\n---" in (reports / "merged" / "summary.md").read_text()
    assert "Register semantics (probe of shard-1): " in merged.stdout
    again = invoke("report.merge", "--run", "shard-1", "--run", "shard-1", "--out", "dup",
                   env=_env(reports))
    assert again.returncode == 2 and "shard 1/3 is given twice" in again.stderr
    assert not (reports / "dup").exists()


def test_merge_with_a_shard_missing_exits_2_naming_it(reports):
    for k in (1, 3):
        if not (reports / f"shard-{k}" / "results.json").is_file():  # run alone
            run = invoke("matrix", *SMALL, "--shard", f"{k}/3", "--run-id", f"shard-{k}",
                         env=_env(reports))
            assert run.returncode == 0, run.stderr[-2000:]
    merged = invoke("report.merge", "--run", "shard-1", "--run", "shard-3", "--out",
                    "incomplete", env=_env(reports))
    assert merged.returncode == 2, merged.stderr
    assert merged.stderr.strip() == \
        "patchcheck: error: report.merge: shard 2/3 is missing (have 1/3, 3/3)"
    assert not (reports / "incomplete").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_interrupted_run_resumes_to_the_same_result(reports, sig):
    """A CI job's time limit (SIGTERM) or a closed terminal (SIGHUP, issue 27)."""
    run_id = f"interrupted-{sig.name}"
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "matrix", *SMALL, "--run-id",
                             run_id], cwd=PROJECT, env={**os.environ, **_env(reports)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cases = reports / run_id / "cases"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(cases.glob("*/result.json"))) < 5:
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err[-2000:]
    partial = json.loads((reports / run_id / "results.json").read_text())
    assert partial["partial"] is True
    written = [json.loads(p.read_text()) for p in cases.glob("*/result.json")]
    # a case cut short by the interruption may have written an "error": resume reruns it
    finished = sum(1 for r in written if r["observed"] in ("passed", "failed"))
    assert 0 < finished <= len(written) < len(_outcomes(reports / "reference"))
    assert partial["cases"]  # what had finished when the signal came is in results.json
    resumed = invoke("matrix", *SMALL, "--resume", run_id, env=_env(reports))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{finished} of" in resumed.stderr  # the finished cases were reused, not re-run
    assert _outcomes(reports / run_id) == _outcomes(reports / "reference")
    assert json.loads((reports / run_id / "results.json").read_text())["partial"] is False
    assert _testcases(reports / run_id) == _testcases(reports / "reference")


def _testcases(run_dir: Path) -> list[tuple[str, str, str]]:
    """junit.xml's test cases: (suite, name, what they say: failure, skipped, error or pass)."""
    import xml.etree.ElementTree as ET

    found = []
    for suite in ET.parse(run_dir / "junit.xml").getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            kind = next((c.tag for c in case if c.tag in ("failure", "skipped", "error")), "pass")
            found.append((suite.get("name", ""), case.get("name", ""), kind))
    return sorted(found)


RAM = ["--builds", "7.2-none,7.2-v2", "--machines", "6.0", "--guest", "synthetic",
       "--jobs", "2"]


def test_resume_after_a_changed_ram_mib_reruns(reports):
    """Issue 25: a finished case is reused only with the settings it ran with."""
    env = {**_env(reports), "INVOKE_PATCHCHECK_MATRIX_SEMANTICS": "false"}
    first = invoke("matrix", *RAM, "--run-id", "ram", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    ram = json.loads((reports / "ram" / "results.json").read_text())["settings"]["ram_mib"]
    before = _outcomes(reports / "ram")
    total = len(before)
    more = {**env, "INVOKE_PATCHCHECK_MATRIX_RAM_MIB": str(ram * 2)}
    changed = invoke("matrix", *RAM, "--resume", "ram", env=more)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert f"rerunning {total} cases: ram_mib {ram} -> {ram * 2}" in changed.stderr
    assert f"resuming ram: 0 of {total} cases already finished" in changed.stderr
    data = json.loads((reports / "ram" / "results.json").read_text())
    assert data["settings"]["ram_mib"] == ram * 2 and not data["partial"]
    recorded = [json.loads(p.read_text())["outcome_settings"]["ram_mib"]
                for p in (reports / "ram" / "cases").glob("*/result.json")]
    assert recorded == [ram * 2] * total
    same = invoke("matrix", *RAM, "--resume", "ram", env=more)
    assert same.returncode == 0, same.stderr[-2000:]
    assert f"resuming ram: {total} of {total} cases already finished" in same.stderr
    assert "rerunning" not in same.stderr
    assert _outcomes(reports / "ram") == before  # the same outcomes with more RAM
