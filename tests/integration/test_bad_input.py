"""Bad input through the CLI: one line on stderr, a documented exit code, no traceback,
nothing half-written in the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import invoke


def _leftovers(cache: Path) -> list[Path]:
    if not cache.exists():
        return []
    return [p for p in cache.rglob("*") if p.name.startswith((".fetch-", ".clone-"))
            or p.name.endswith((".tmp", ".json.tmp"))]


def _one_error_line(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("patchcheck: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture()
def fresh_cache(tmp_path):
    return {"INVOKE_PATCHCHECK_CACHE_DIR": str(tmp_path / "cache")}


def _patch(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


BAD = [
    (["--source", "svn:foo@1"], "unknown scheme"),
    (["--source", "git:/nonexistent/qemu@master"], "does not exist"),
    (["--source", "git:/tmp@main;rm -rf /"], "not a valid git ref"),
    (["--source", "git:/tmp@$(reboot)"], "not a valid git ref"),
    (["--source", "debian:Bad_Suite"], "not a Debian suite"),
    (["--source", "debian:sid"], "unknown Debian suite"),
    (["--source", "debian:bookworm", "--fix", "/nonexistent.patch"], "no such patch file"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_build_input(args, message, fresh_cache, tmp_path):
    line = _one_error_line(invoke("build", *args, env=fresh_cache), 2)
    assert message in line
    assert _leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.patch", b"", "empty"),
    ("binary.patch", b"\x7fELF\x00\x01\x02", "binary"),
    ("prose.patch", b"this is not a patch\n", "not a patch"),
])
def test_bad_patch_files(name, data, message, fresh_cache, tmp_path):
    patch = _patch(tmp_path, name, data)
    line = _one_error_line(invoke("build", "--source", "debian:bookworm", "--fix", patch,
                                  env=fresh_cache), 2)
    assert message in line


def test_ref_that_does_not_exist(tmp_path, fresh_cache):
    import git

    repo = git.Repo.init(tmp_path / "qemu")
    (tmp_path / "qemu" / "VERSION").write_text("7.2.0\n")
    repo.index.add(["VERSION"])
    repo.index.commit("v")
    line = _one_error_line(invoke("build", "--source", f"git:{tmp_path / 'qemu'}@no-such-branch",
                                  env=fresh_cache), 2)
    assert "no-such-branch" in line and "does not exist" in line


def test_patch_outside_tree_and_not_applying(builds, tmp_path):
    builds["7.2-none"]  # the Debian import is in the shared cache
    outside = _patch(tmp_path, "outside.patch", b"--- a/../etc/passwd\n+++ b/../etc/passwd\n"
                     b"@@ -1 +1 @@\n-root\n+toor\n")
    line = _one_error_line(invoke("build", "--source", "debian:bookworm", "--fix", outside), 2)
    assert "outside" in line or "../" in line
    stale = _patch(tmp_path, "stale.patch", b"diff --git a/hw/pci/pcie.c b/hw/pci/pcie.c\n"
                   b"--- a/hw/pci/pcie.c\n+++ b/hw/pci/pcie.c\n@@ -10,3 +10,3 @@\n"
                   b" no such line one\n-no such line two\n+replacement\n no such line three\n")
    line = _one_error_line(invoke("build", "--source", "debian:bookworm", "--fix", stale), 2)
    assert "stale.patch" in line and "hw/pci/pcie.c:10" in line


def test_unknown_debian_version(builds):
    builds["7.2-none"]
    line = _one_error_line(invoke("build", "--source", "debian:bookworm=9.9.9-404"), 2)
    assert "9.9.9-404" in line


def test_docker_engine_not_reachable(tmp_path):
    result = invoke("build", "--source", "debian:bookworm",
                    env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    line = _one_error_line(result, 3)
    assert "Docker engine not reachable" in line and "dockerd" in line


def test_malformed_configuration(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("patchcheck:\n  matrix:\n    jobs: lots\n")
    line = _one_error_line(invoke("-f", str(bad), "matrix"), 2)
    assert "matrix.jobs" in line


@pytest.mark.parametrize(("args", "message"), [
    (["--machines", "7.2..5.2"], "empty"),
    (["--machines", "banana"], "pc-q35"),
    (["--jobs", "0"], "--jobs"),
    (["--guest", "dance"], "dance"),
    (["--builds", "nope"], "nope"),
    (["--pairs", "sideways"], "sideways"),
])
def test_bad_matrix_options(args, message, tmp_path):
    result = invoke("matrix", *args, env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "r")})
    line = _one_error_line(result, 2)
    assert message in line


def test_unknown_task_option_and_task(tmp_path):
    for args in (["matrix", "--bogus"], ["nosuchtask"]):
        line = _one_error_line(invoke(*args), 2)
        assert "No idea what" in line


@pytest.mark.parametrize(("args", "message"), [
    (["--repeat", "0"], "--repeat '0'"),
    (["--repeat", "twice"], "--repeat 'twice'"),
    (["--machines", "banana"], "pc-q35"),
])
def test_bad_bench_options_fail_before_any_work(args, message, tmp_path):
    result = invoke("bench", *args, env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path / "r")})
    assert message in _one_error_line(result, 2)
    assert not (tmp_path / "r").exists()


def test_unknown_accelerator():
    line = _one_error_line(invoke("matrix", "--accel", "warp"), 2)
    assert "unknown accelerator 'warp'" in line


def test_kvm_requested_where_it_does_not_work(builds, tmp_path):
    """/dev/kvm exists on these machines but nested KVM runs no guest: refused, exit 3."""
    builds["7.2-none"]
    result = invoke("matrix", "--builds", "7.2-none", "--machines", "6.0", "--guest", "synthetic",
                    "--accel", "kvm", env={"INVOKE_PATCHCHECK_REPORTS_DIR": str(tmp_path)})
    if result.returncode == 0:
        pytest.skip("KVM really works on this machine")
    line = _one_error_line(result, 3)
    assert "KVM" in line or "kvm" in line


def test_unwritable_report_directory(builds):
    builds["7.2-none"]
    result = invoke("matrix", "--builds", "7.2-none", "--machines", "6.0",
                    env={"INVOKE_PATCHCHECK_REPORTS_DIR": "/proc/patchcheck-reports"})
    line = _one_error_line(result, 2)
    assert "not writable" in line
