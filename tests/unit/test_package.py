"""A real package (issue 17): the wheel built from the project holds everything the tool reads
at run time, and its `patchcheck` command runs the tasks from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _not_sources(directory: str, names: list[str]) -> list[str]:
    """What a copy of the checkout leaves out: git, caches, and at its top the build output
    and reports."""
    top = Path(directory) == PROJECT
    return [n for n in names if n in (".git", "__pycache__", ".mypy_cache", ".ruff_cache")
            or n.endswith(".egg-info") or (top and n in ("build", "reports", "dist"))]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the built wheel installed (the dependencies from the
    system's site packages: installing them is pip's job, not what is tested here)."""
    root = tmp_path_factory.mktemp("pkg")
    # built from a copy: setuptools' build/ directory in a used checkout holds files of
    # earlier layouts, which would make a wheel without them look complete
    source = root / "source"
    shutil.copytree(PROJECT, source, ignore=_not_sources)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(root / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("patchcheck-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root / "venv")],
                   check=True)
    subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--no-deps", "--ignore-installed", str(wheel)],  # not the checkout's install
                   check=True, capture_output=True)
    return root / "venv"


def _run(venv: Path, *args: str, cwd: Path, home: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "PYTHON"))}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)


def test_the_wheel_holds_every_runtime_file(venv: Path, tmp_path: Path) -> None:
    script = ("import pathlib, patchcheck; d = pathlib.Path(patchcheck.__file__).parent; "
              "print(d); print('\\n'.join(sorted(str(p.relative_to(d)) for p in d.rglob('*') "
              "if p.is_file() and '__pycache__' not in p.parts)))")
    out = _run(venv, str(venv / "bin" / "python"), "-c", script, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, *files = out.stdout.splitlines()
    assert where.startswith(str(venv)), where  # the installed copy, not the checkout
    shipped = {str(p.relative_to(PROJECT / "patchcheck")) for p in
               (PROJECT / "patchcheck").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert shipped <= set(files), sorted(shipped - set(files))
    for needed in ("build/cc-minimal", "engine/launcher.py", "guests/init.sh", "cli/invoke.yaml",
                   "build/containers/builder-bookworm.Dockerfile",
                   "build/containers/builder-trixie.Dockerfile",
                   "scenarios/pds/patches/v2.patch", "scenarios/aer/patches/compat.patch"):
        assert needed in files


def test_the_command_runs_the_tasks_from_any_directory(venv: Path, tmp_path: Path) -> None:
    command = str(venv / "bin" / "patchcheck")
    listed = _run(venv, command, "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for task in ("matrix", "check", "series", "bisect", "probe", "nightly.run"):
        assert f"  {task}" in listed.stdout
    helped = _run(venv, command, "matrix", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "--scenario" in helped.stdout
    assert "Usage: patchcheck" in _run(venv, command, "--help", cwd=tmp_path).stdout
    # the package's configuration, from any directory: a bad option is still one line
    bad = _run(venv, command, "matrix", "--scenario", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "--scenario 'nope'" in bad.stderr


def test_a_broken_user_configuration_is_one_line(venv: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("patchcheck:\n  matrix: [unclosed\n   jobs: 2\n")
    out = _run(venv, str(venv / "bin" / "patchcheck"), "--list", cwd=tmp_path, home=home)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0
    assert ".invoke.yaml:3:" in out.stderr


def test_the_projects_invoke_yaml_is_the_packages() -> None:
    """One default configuration: plain `invoke` in the checkout reads the same file the
    installed package carries (a copy once drifted from it)."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "invoke.yaml").resolve() == (root / "patchcheck" / "cli" / "invoke.yaml")
