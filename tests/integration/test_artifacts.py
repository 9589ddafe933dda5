"""Issue 17: builds carried from the build stage to a shard on another host. The shard's
cache is empty (another runner): it imports the artifact, compiles nothing, and its cases use
exactly the exported binaries; a damaged artifact stops it with one line and exit 3."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import git
import pytest

from .conftest import invoke


@pytest.fixture(scope="module")
def stage(builds, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The build stage: nightly --build-only --export-to, on this host's cache."""
    root = tmp_path_factory.mktemp("stages")
    remote = root / "qemu"
    branch = git.Repo.clone_from(str(builds.source_repo("7.2-none")), str(remote)).active_branch.name
    artifact = root / "builds.tar.gz"
    args = ["nightly", "--remote", str(remote), "--ref", branch, "--machines", "6.0"]
    built = invoke(*args, "--build-only", "--export-to", str(artifact))
    assert built.returncode == 0, built.stderr[-3000:]
    assert artifact.is_file() and f"exported 2 builds to {artifact}" in built.stderr
    return {"root": root, "args": args, "artifact": artifact}


def _shard(stage: dict[str, object], cache: Path, artifact: Path, run_id: str):
    root = stage["root"]
    assert isinstance(root, Path)
    return invoke(*stage["args"], "--import-from", str(artifact), "--run-id", run_id,  # type: ignore[misc]
                  "--no-history",
                  env={"INVOKE_PATCHCHECK_CACHE_DIR": str(cache),
                       "INVOKE_PATCHCHECK_REPORTS_DIR": str(root / "reports"),
                       "INVOKE_PATCHCHECK_MATRIX_GUESTS": "synthetic,none"})


def test_a_shard_on_another_host_builds_nothing(stage: dict[str, object],
                                                tmp_path: Path) -> None:
    artifact = stage["artifact"]
    assert isinstance(artifact, Path)
    shard = _shard(stage, tmp_path / "other-runner-cache", artifact, "shard-1")
    out = shard.stdout + shard.stderr
    assert shard.returncode == 0, out[-3000:]
    assert "ninja" not in out and "Compiling" not in out and "] built: " not in out
    assert out.count("] imported: ") >= 2
    root = stage["root"]
    assert isinstance(root, Path)
    results = json.loads((root / "reports" / "shard-1" / "results.json").read_text())
    with tarfile.open(artifact, "r:gz") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    exported = {n: b["record"]["binary_sha256"] for n, b in manifest["builds"].items()}
    assert {n: b["binary_sha256"] for n, b in results["builds"].items()} == exported
    assert all(b["binary"].startswith(str(tmp_path / "other-runner-cache"))
               for b in results["builds"].values())
    assert any(c["observed"] == "failed" for c in results["cases"])  # the bug reproduced


def test_a_damaged_artifact_stops_the_shard_in_one_line(stage: dict[str, object],
                                                        tmp_path: Path) -> None:
    artifact = stage["artifact"]
    assert isinstance(artifact, Path)
    damaged = tmp_path / "builds.tar.gz"
    damaged.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    shard = _shard(stage, tmp_path / "cache", damaged, "shard-2")
    assert shard.returncode == 3, shard.stdout[-2000:] + shard.stderr[-2000:]
    lines = [ln for ln in shard.stderr.splitlines() if ln.startswith("patchcheck: error")]
    assert len(lines) == 1 and f"build artifact {damaged}: unreadable" in lines[0]
    assert "Traceback" not in shard.stderr
