"""`invoke nightly.sweep`: the tracked branch swept against the newest release tag, night
after night, and what changed since the previous night. The remote is a clone of the Debian
7.2 tree the suite already builds (tagged v7.2.0), so the first night's builds are cached."""

from __future__ import annotations

import json
from pathlib import Path

import git

from .conftest import invoke

ENTRY = '    { "pcie-root-port-base", "disable-acs", "true" }, /* Added in 4.1 */\n'


def _night(remote: Path, reports: Path, run_id: str) -> tuple[int, str]:
    result = invoke("nightly.sweep", "--remote", str(remote), "--ref", "main",
                    "--ref", "latest-stable:1", "--machines", "pc-q35-3.0,pc-q35-3.1,pc-q35-4.0",
                    "--run-id", run_id,
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(reports), "CI": "true",
                         "INVOKE_PATCHCHECK_SWEEP_BUILD_DEVICES": "configured"})
    return result.returncode, result.stdout + result.stderr


def test_nightly_sweep_says_what_changed_since_the_previous_night(builds, tmp_path: Path) -> None:
    source = builds.source_repo("7.2-none")
    remote = tmp_path / "qemu"
    repo = git.Repo.clone_from(str(source), str(remote))
    repo.git.checkout("-qb", "main")
    repo.create_tag("v7.2.0")
    reports = tmp_path / "reports"

    code, out = _night(remote, reports, "night-1")
    assert code == 0, out[-3000:]  # the branch is the tag: nothing fails between them
    assert "v7.2.0..main: first night" in out

    machine_c = remote / "hw" / "core" / "machine.c"
    text = machine_c.read_text()
    assert text.count(ENTRY) == 1
    machine_c.write_text(text.replace(ENTRY, ""))
    with repo.git.custom_environment(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
                                     GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost"):
        repo.git.commit("-qam", "machine: drop the disable-acs compat entry")

    code, out = _night(remote, reports, "night-2")
    assert code == 1, out[-3000:]
    regressions = [ln for ln in out.splitlines() if ln.startswith("v7.2.0..main: regression:")]
    assert regressions and all("pcie-root-port" in ln for ln in regressions), out[-3000:]
    assert any("pc-q35-3.0 .. 3.1" in ln for ln in regressions), regressions
    assert not any("4.0" in ln for ln in regressions)
    pairs = json.loads((reports / "sweep-nightly.json").read_text())
    assert pairs == {"v7.2.0..main": "night-2-v7.2.0-to-main"}
