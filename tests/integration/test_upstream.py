"""Issue 13 against real upstream QEMU commits: a reviewer's clone of upstream QEMU builds
and checks with its subprojects (submodules up to 8.0, meson wraps after), fetched through
mirrors that git's URL rewriting points upstream's URLs at, as a user with a local mirror
would. Builds run with network none; what cannot be had offline is said in one line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from patchcheck.source import gitcmd
from patchcheck.source.specs import GitSources, GitSpec
from patchcheck.source.subprojects.complete import pins_of
from patchcheck.source.subprojects.needs import BuildKind, needed
from patchcheck.source.subprojects.store import SubprojectStore, SubprojectUnavailable
from patchcheck.tree import prepare as trees

from .conftest import UPSTREAM_DATA, invoke

UPSTREAM = UPSTREAM_DATA
MISSING_TESTFLOAT = "40619cbb3bf32872df8c53cc457039229428a263"
PDS_ERROR = "Bad config data: i=0x6e read: 0 device: 40"

pytestmark = pytest.mark.skipif(not (UPSTREAM / "qemu.git").is_dir(),
                                reason=f"no upstream QEMU test data at {UPSTREAM}")


def mirror_env() -> dict[str, str]:
    """Upstream's URLs rewritten to the local mirrors, for one process (no git config file)."""
    return {"GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": f"url.{(UPSTREAM / 'mirrors').resolve()}/.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://gitlab.com/qemu-project/",
            "GIT_CONFIG_KEY_1": "protocol.file.allow", "GIT_CONFIG_VALUE_1": "always"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reviewer's own clone of upstream QEMU."""
    path = tmp_path_factory.mktemp("upstream") / "qemu"
    git.Repo.clone_from(str(UPSTREAM / "qemu.git"), str(path))
    return path


@pytest.fixture(scope="module")
def mirrors() -> Iterator[None]:
    """The mirror rewriting in this process too, for the tests that call the package."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in mirror_env().items():
            mp.setenv(key, value)
        yield


def check(clone: Path, commit: str, reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke("check", "--repo", str(clone), "--commit", commit, *args,
                  env={**mirror_env(), "INVOKE_PATCHCHECK_REPORTS_DIR": str(reports)})


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-4000:] + result.stderr[-3000:]


def run_data(reports: Path) -> dict:
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and p.name.startswith("check-")]
    return json.loads((run_dir / "results.json").read_text())


def outcome(data: dict, machine: str, source: str, destination: str) -> dict:
    (case,) = [c for c in data["cases"] if c["machine"] == machine
               and c["source"]["build"] == source and c["destination"]["build"] == destination]
    return case


@pytest.fixture(scope="module")
def v720(clone: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`invoke check` of upstream v7.2.0, once for the module: the process and its reports."""
    reports = tmp_path_factory.mktemp("v720")
    return check(clone, "v7.2.0", reports), reports


def test_v7_2_0_builds_with_its_submodules_and_the_fix_is_tested(v720) -> None:
    result, reports = v720
    assert result.returncode == 0, output(result)
    assert "\nTested-by: " in result.stdout
    data = run_data(reports)
    without, with_fix = data["builds"]["without"], data["builds"]["with"]
    assert without["qemu_version"] == "7.2.0" and without["fix"]["applied"] == "unchanged"
    assert with_fix["fix"]["state"] == "v2" and with_fix["fix"]["applied"] == "clean"
    pinned = {s["name"]: s["revision"][:8] for s in without["subprojects"]}
    assert pinned == {"keycodemapdb": "d21009b1", "berkeley-softfloat-3": "b64af41c",
                      "berkeley-testfloat-3": "5a59dcec"}  # the ROMs, meson and dtc: not needed
    failing = outcome(data, "pc-q35-6.0", "without", "without")
    assert failing["observed"] == "failed" and PDS_ERROR in failing["destination_error"]
    assert outcome(data, "pc-q35-6.0", "without", "with")["observed"] == "passed"


def test_a_second_check_fetches_and_builds_nothing(clone: Path, tmp_path: Path, v720) -> None:
    result = check(clone, "v7.2.0", tmp_path)  # after the module's first check of it
    assert result.returncode == 0, output(result)
    logged = result.stdout + result.stderr
    assert "fetching" not in logged and "] built: " not in logged, output(result)
    assert logged.count("] cached: ") >= 2  # both builds, from the cache


def test_master_carries_v2_none_reverts_it_and_check_passes(clone: Path, tmp_path: Path) -> None:
    result = check(clone, "master", tmp_path)
    assert result.returncode == 0, output(result)
    assert "fix: v2, already in the commit" in result.stdout
    data = run_data(tmp_path)
    assert data["builds"]["without"]["fix"]["applied"] == "reverted"
    assert data["builds"]["with"]["fix"]["applied"] == "already-present"
    assert data["builds"]["with"]["qemu_version"] == "10.2.50"
    assert outcome(data, "pc-q35-6.0", "without", "without")["observed"] == "failed"


def test_master_aer_check_reverts_the_compat_entry_and_passes(clone: Path, tmp_path: Path
                                                              ) -> None:
    """`check --scenario aer`: master carries the hw_compat_7_2 entry; without it a pc-q35-7.2
    source is rejected by a destination with it, and the probe finds master's register on
    that type unchanged by the fix's absence only (nothing introduced)."""
    result = check(clone, "master", tmp_path, "--scenario", "aer")
    assert result.returncode == 0, output(result)
    assert "fix: compat, already in the commit" in result.stdout
    assert "Without the fix at the source it fails (1 case): get_pci_config_device: Bad config " \
        "data: i=0x10a read: 40" in result.stdout
    assert "on pc-q35-7.2, pc-q35-8.0, pc-q35-11.0." in result.stdout  # the boundary types
    data = run_data(tmp_path)
    assert data["settings"]["scenario"] == "aer"
    assert data["builds"]["without"]["fix"]["applied"] == "reverted"
    assert outcome(data, "pc-q35-7.2", "without", "with")["observed"] == "failed"
    assert outcome(data, "pc-q35-7.2", "with", "without")["observed"] == "passed"
    assert outcome(data, "pc-q35-8.0", "without", "with")["observed"] == "passed"


def _observed(run_dir: Path, rename: dict[str, str]) -> dict[tuple[str, str, str], str]:
    data = json.loads((run_dir / "results.json").read_text())
    return {(c["machine"], rename.get(c["source"]["build"], c["source"]["build"]),
             rename.get(c["destination"]["build"], c["destination"]["build"])): c["observed"]
            for c in data["cases"]}


def test_master_against_debian_7_2_as_debian_10_0_against_it(clone: Path, tmp_path: Path) -> None:
    config = tmp_path / "upstream.yaml"
    config.write_text(
        "patchcheck:\n"
        f"  reports_dir: {tmp_path / 'reports'}\n"
        "  builds:\n"
        f"    up-master: {{source: 'git:{clone}@master', fix: v2}}\n"
        "  matrix:\n"
        "    guests: {synthetic: all}\n"
        "    force_global: false\n"
        "    semantics: false\n")
    runs = {}
    for newer in ("up-master", "10.0-v2"):
        result = invoke("-f", str(config), "matrix", "--builds", f"{newer},7.2-none", "--pairs",
                        f"{newer}->7.2-none,7.2-none->{newer}", "--run-id", newer,
                        env=mirror_env())
        assert result.returncode == 0, output(result)  # every case as the model expects
        runs[newer] = _observed(tmp_path / "reports" / newer, {newer: "newer"})
    # master dropped the oldest q35 types (5.1 is its oldest here): every type it shares
    # with 7.2, in both directions, 10.0 shares with 7.2 too, and each comes out the same
    common = set(runs["up-master"])
    assert common <= set(runs["10.0-v2"]), sorted(common - set(runs["10.0-v2"]))
    assert {m for m, _, _ in common} >= {"pc-q35-6.0", "pc-q35-6.1", "pc-q35-7.2"}
    assert len(common) == 2 * len({m for m, _, _ in common})
    assert runs["up-master"] == {k: runs["10.0-v2"][k] for k in common}
    assert runs["up-master"][("pc-q35-6.0", "newer", "7.2-none")] == "failed"
    assert runs["up-master"][("pc-q35-6.0", "7.2-none", "newer")] == "passed"


@pytest.mark.parametrize("commit", ["v8.0.0", "pcie-pds-fix"])
def test_a_revision_nowhere_to_be_had_is_untestable_in_one_line(clone: Path, tmp_path: Path,
                                                                commit: str) -> None:
    result = check(clone, commit, tmp_path)
    assert result.returncode == 125, output(result)
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("cannot test ")]
    for part in ("berkeley-testfloat-3", "40619cbb", "https://gitlab.com/qemu-project/"
                 "berkeley-testfloat-3", "insteadOf"):
        assert part in line, line
    assert "Traceback" not in result.stderr


def test_the_fix_state_is_asserted_without_a_build(clone: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    states = {}
    for ref in ("pcie-pds-fix", "pcie-pds-fix-parent", "v8.0.0"):
        tree = GitSources(cache).resolve(GitSpec(str(clone), ref))
        states[ref] = trees.prepare(tree, "v2", cache).fix.applied
    assert states == {"pcie-pds-fix": "already-present", "pcie-pds-fix-parent": "clean",
                      "v8.0.0": "clean"}


def test_two_commits_pinning_one_revision_fetch_it_once(clone: Path, tmp_path: Path, mirrors: None
                                                        ) -> None:
    store = SubprojectStore(tmp_path / "cache", vendor_roots=[], log=lambda line: None)
    repo = GitSources(tmp_path / "cache").mirror(str(clone))
    kind = BuildKind(("--target-list=x86_64-softmmu",), builder_meson=(1, 0, 1))
    for ref in ("v8.0.0", "pcie-pds-fix-parent"):
        commit = gitcmd.out(repo, "rev-parse", f"{ref}^{{commit}}")
        for pin in needed(pins_of(repo, commit), kind):
            try:
                store.get(pin)
            except SubprojectUnavailable as exc:
                assert pin.revision == MISSING_TESTFLOAT, exc
    assert sorted(store.fetched) == ["berkeley-softfloat-3 b64af41c3276",
                                     "keycodemapdb f5772a62ec52"]
    assert not (store.root / "berkeley-testfloat-3" / MISSING_TESTFLOAT).exists()
    assert [p.name for p in (store.root / "berkeley-testfloat-3").iterdir()
            if p.name.startswith(".tmp")] == []
    assert os.environ["GIT_CONFIG_COUNT"] == "2"
