"""What patchcheck needs from invoke beyond its documented API (patchcheck.cli.invoke_compat,
docs/invoke.md): one test per method replaced for plain `invoke`, with its control (without
the replacement invoke behaves otherwise, so a release that changes either side fails here),
and the invoke state that PatchcheckConfig reads and sets. An invoke outside the tested range
fails the first test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import invoke
import pytest
from invoke import Config

from patchcheck.cli import invoke_compat
from patchcheck.cli.invoke_compat import PatchcheckConfig, PatchcheckExecutor
from patchcheck.cli.program import program
from patchcheck.config import origin

pytestmark = pytest.mark.usefixtures("isolated_env")

PROJECT = Path(__file__).resolve().parents[2]
TASKS = """\
from invoke import Collection, task
{patch}

@task
def show(c):
    jobs = c.config.patchcheck.matrix.jobs
    print(type(jobs).__name__, repr(jobs), c.config.run.echo)


ns = Collection(show)
ns.configure({{"patchcheck": {{"matrix": {{"jobs": 0}}}}}})
"""
PATCH = "from patchcheck.cli.invoke_compat import patch_plain_invoke\npatch_plain_invoke()\n"
EXECUTOR = "tasks:\n  executor_class: patchcheck.cli.invoke_compat.PatchcheckExecutor\n"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_the_installed_invoke_is_in_the_tested_range() -> None:
    """pyproject.toml pins the range these tests passed with; a newer invoke is a new check
    of every test here (and of docs/invoke.md), then a new pin."""
    dependencies = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("invoke"))
    low, high = re.fullmatch(r"invoke>=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]
    assert _version(low) <= _version(invoke.__version__) < _version(high), (pin, invoke.__version__)


def _plain_invoke(tmp_path: Path, *args: str, patch: bool = True, project_yaml: str = EXECUTOR,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python3 -m invoke ARGS` in a project whose tasks.py does what patchcheck's does."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "tasks.py").write_text(TASKS.format(patch=PATCH if patch else ""))
    (project / "invoke.yaml").write_text(project_yaml)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=project,
                          env={**keep, "PYTHONPATH": str(PROJECT), **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def _one_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchcheck: error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


# --- Program.parse_tasks ---------------------------------------------------------------------

def test_an_unknown_option_is_exit_2(tmp_path: Path) -> None:
    _one_line(_plain_invoke(tmp_path, "show", "--nope"), 2, "No idea what '--nope' is!")
    own = _plain_invoke(tmp_path, "show", "--nope", patch=False)
    assert own.returncode == 1 and own.stderr.strip() == "No idea what '--nope' is!"


# --- Config.load_project -------------------------------------------------------------------

def test_the_project_file_is_read_after_tasks_py_through_the_checked_reader(tmp_path: Path) -> None:
    broken = EXECUTOR + "patchcheck: [\n"
    _one_line(_plain_invoke(tmp_path, "show", project_yaml=broken), 2,
              f"{tmp_path}/project/invoke.yaml:4:1:", "expected the node content")
    own = _plain_invoke(tmp_path, "show", project_yaml=broken, patch=False)
    assert own.returncode == 1 and "Traceback" in own.stderr


# --- Config.load_runtime -------------------------------------------------------------------

def test_a_missing_runtime_file_is_an_error(tmp_path: Path) -> None:
    _one_line(_plain_invoke(tmp_path, "-f", str(tmp_path / "gone.yaml"), "show"), 2,
              f"{tmp_path}/gone.yaml: no such file")
    own = _plain_invoke(tmp_path, "-f", str(tmp_path / "gone.yaml"), "show", patch=False)
    assert own.returncode == 0, own.stderr  # invoke skips it silently


def test_a_runtime_file_syntax_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"patchcheck": ')
    _one_line(_plain_invoke(tmp_path, "-f", str(tmp_path / "run.json"), "show"), 2,
              f"{tmp_path}/run.json:1:")


# --- Config.merge --------------------------------------------------------------------------

def test_a_merge_conflict_names_its_source(tmp_path: Path) -> None:
    """The project file and the `-f` file disagree, before any task runs."""
    (tmp_path / "run.yaml").write_text("patchcheck:\n  matrix: 5\n")
    project = EXECUTOR + "patchcheck:\n  matrix: {jobs: 1}\n"
    args = ("-f", str(tmp_path / "run.yaml"), "show")
    _one_line(_plain_invoke(tmp_path, *args, project_yaml=project), 2,
              f"{tmp_path}/run.yaml:2:11:", "patchcheck.matrix must be a mapping, not 5")
    own = _plain_invoke(tmp_path, *args, project_yaml=project, patch=False)
    assert own.returncode == 1 and "AmbiguousMergeError" in own.stderr


# --- tasks.executor_class (public): the environment ------------------------------------------

def test_the_executor_reads_patchcheck_settings_as_text(tmp_path: Path) -> None:
    env = {"INVOKE_PATCHCHECK_MATRIX_JOBS": "abc", "INVOKE_RUN_ECHO": "1"}
    result = _plain_invoke(tmp_path, "show", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["str 'abc' True"]  # invoke's own still cast
    own = _plain_invoke(tmp_path, "show", env=env, project_yaml="{}\n")
    assert own.returncode == 1 and "ValueError" in own.stderr  # int('abc')


def test_the_executor_upgrades_invokes_config(tmp_path: Path) -> None:
    (tmp_path / "invoke.yaml").write_text("patchcheck:\n  matrix:\n    jobs: 3\n")
    config = Config(project_location=str(tmp_path), lazy=True)
    config.load_project()
    executor = PatchcheckExecutor(invoke.Collection(), config)
    assert isinstance(executor.config, PatchcheckConfig)
    assert executor.config.patchcheck.matrix.jobs == 3
    assert origin.source_of(executor.config, ("patchcheck", "matrix", "jobs")) == \
        f"{tmp_path}/invoke.yaml:3:11"


# --- invoke's state, as PatchcheckConfig reads and sets it -----------------------------------

def test_the_levels_are_where_origin_finds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (home / ".invoke.yml").write_text("patchcheck:\n  reports_dir: mine\n")
    (project / "invoke.json").write_text('{"patchcheck": {"matrix": {"jobs": 2}}}')
    (tmp_path / "run.py").write_text("patchcheck = {'matrix': {'timeout': 9}}\n")
    monkeypatch.setenv("INVOKE_PATCHCHECK_MATRIX_JOBS", "4")
    config = PatchcheckConfig(project_location=str(project), user_prefix=f"{home}/.")
    config.load_project()
    config.set_runtime_path(str(tmp_path / "run.py"))
    config.load_runtime()
    config.load_shell_env()
    assert config.patchcheck.reports_dir == "mine" and config.patchcheck.matrix.timeout == 9
    assert config.patchcheck.matrix.jobs == "4"
    where = {key: origin.source_of(config, ("patchcheck", *key.split("."))) for key in
             ("reports_dir", "matrix.timeout", "matrix.jobs")}
    assert where == {"reports_dir": f"{home}/.invoke.yml:2:16",
                     "matrix.timeout": f"{tmp_path}/run.py",
                     "matrix.jobs": "INVOKE_PATCHCHECK_MATRIX_JOBS"}


def test_an_invoke_setting_that_does_not_cast_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    config = PatchcheckConfig(defaults={**Config.global_defaults(), "limits": {"n": 1}}, lazy=True)
    monkeypatch.setenv("INVOKE_LIMITS_N", "many")
    with pytest.raises(invoke.Exit) as caught:
        config.load_shell_env()
    assert caught.value.code == 2
    assert caught.value.message == ("patchcheck: error: configuration: INVOKE_LIMITS_N: "
                                    "'many' is not a valid limits.n")


# --- the patchcheck command: no replacement at all -----------------------------------------------

def test_the_command_reads_the_user_file_itself(capsys: pytest.CaptureFixture[str]) -> None:
    home = Path(os.environ["HOME"])
    (home / ".invoke.yaml").write_text("patchcheck:\n  matrix: [\n")
    with pytest.raises(SystemExit) as caught:
        program().run(["patchcheck", "--list"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        f"patchcheck: error: configuration: {home}/.invoke.yaml:3:1: expected the node "
        "content, but found '<stream end>' (while parsing a flow node)\n")


def test_the_command_replaces_nothing_of_invokes() -> None:
    """Importing the command and its collection leaves invoke's classes as they are; only
    tasks.py (plain `invoke`) installs the replacements."""
    code = ("import invoke; before = dict(vars(invoke.Config)), dict(vars(invoke.Program)); "
            "import patchcheck.cli.program as p, patchcheck.cli.collection; p.program(); "
            "assert (dict(vars(invoke.Config)), dict(vars(invoke.Program))) == before")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert {name for _, name, _ in invoke_compat.PLAIN_INVOKE_PATCHES} == \
        {"parse_tasks", "load_project", "load_runtime", "merge"}
