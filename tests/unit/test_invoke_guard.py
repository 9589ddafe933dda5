"""The .pth guard that gives plain `invoke` patchcheck's one-line configuration errors for the
files invoke reads before tasks.py (~/.invoke.yaml): it acts only in a patchcheck project,
and a real interpreter started as `invoke` runs it from a site directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import invoke

from patchcheck.cli import guard as invoke_guard

PROJECT = Path(__file__).resolve().parents[2]
LIBRARIES = Path(invoke.__file__).resolve().parents[1]  # where invoke is installed


def test_a_patchcheck_project_is_found_upwards(tmp_path: Path) -> None:
    nested = tmp_path / "project" / "a" / "b"
    nested.mkdir(parents=True)
    assert not invoke_guard.is_patchcheck_project(nested)
    (tmp_path / "project" / "tasks.py").write_text("from invoke import task\n")
    assert not invoke_guard.is_patchcheck_project(nested)  # another project's tasks
    (tmp_path / "project" / "tasks.py").write_text("from patchcheck.cli.collection import ns\n")
    assert invoke_guard.is_patchcheck_project(nested)
    assert invoke_guard.project_tasks(nested) == tmp_path / "project" / "tasks.py"


def test_install_writes_one_line_once(tmp_path: Path) -> None:
    path = invoke_guard.install(tmp_path)
    assert path.read_text() == invoke_guard.PTH_LINE and path.read_text().count("\n") == 1
    before = path.stat().st_mtime_ns
    assert invoke_guard.install(tmp_path) == path and path.stat().st_mtime_ns == before


def _run_as(program: str, site_dir: Path, cwd: Path, home: Path,
            project: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    """A real interpreter whose argv[0] is `program` (as in invoke's console script), with
    `site_dir` added as a site directory (so its .pth runs) and invoke's Program run as the
    console script does."""
    script = cwd / program
    script.write_text(  # -S: no site directory of the machine's (its .pth files) takes part
        "import site, sys\n"
        f"sys.path.append({str(LIBRARIES)!r})\n"
        f"site.addsitedir({str(site_dir)!r})\n"
        "from invoke.main import program\n"
        "sys.exit(program.run())\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")},
           "HOME": str(home), "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, "-S", str(script), "--list"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def _layout(tmp_path: Path, tasks: str, guard: bool = True) -> tuple[Path, Path, Path]:
    site_dir, project, home = tmp_path / "site", tmp_path / "project", tmp_path / "home"
    for d in (site_dir, project, home):
        d.mkdir()
    if guard:
        invoke_guard.install(site_dir)
    (project / "tasks.py").write_text(tasks)
    (home / ".invoke.yaml").write_text("patchcheck:\n  matrix: [\n")
    return site_dir, project, home


def test_invoke_in_a_patchcheck_project_reports_the_user_file_in_one_line(tmp_path: Path) -> None:
    site_dir, project, home = _layout(tmp_path, "from patchcheck.cli.collection import ns\n")
    result = _run_as("invoke", site_dir, project, home)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("patchcheck: error: configuration: ")
    assert f"{home}/.invoke.yaml:3:1:" in lines[0]


def test_other_projects_and_programs_keep_their_behaviour(tmp_path: Path) -> None:
    site_dir, project, home = _layout(tmp_path, "from invoke import task\n")
    result = _run_as("invoke", site_dir, project, home)
    assert result.returncode != 2 and "Traceback" in result.stderr  # invoke's own way
    (project / "tasks.py").write_text("from patchcheck.cli.collection import ns\n")
    result = _run_as("other-tool", site_dir, project, home)  # not invoke: the line is inert
    assert "Traceback" in result.stderr and "patchcheck: error" not in result.stderr


def test_without_the_guard_invoke_shows_its_traceback(tmp_path: Path) -> None:
    """What the guard is for: the same project and file, no .pth."""
    site_dir, project, home = _layout(tmp_path, "from patchcheck.cli.collection import ns\n", guard=False)
    result = _run_as("invoke", site_dir, project, home)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_without_patchcheck_the_line_stays_silent(tmp_path: Path) -> None:
    """patchcheck uninstalled (or an editable install whose checkout is gone): invoke runs
    as it would without the file, with no "Error processing line" from site.py."""
    site_dir, project, home = _layout(
        tmp_path, "from invoke import task\n\n\n@task\ndef hello(c):\n    pass\n")
    (home / ".invoke.yaml").write_text("{}\n")
    result = _run_as("invoke", site_dir, project, home, project=tmp_path / "gone")
    assert result.returncode == 0, result.stderr
    assert "Error processing line" not in result.stderr and "Traceback" not in result.stderr
