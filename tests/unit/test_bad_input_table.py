"""Bad input through the CLI, without a Docker engine (issue 18): names that become paths,
configuration sources, remote and repository paths.

Each row runs `invoke` (or the installed `patchcheck` command) as a new user would, in a copy
of the project (tasks.py, invoke.yaml) nested in a temporary directory, with a private HOME,
TMPDIR and cache, and DOCKER_HOST pointing at a socket that does not exist (a row that
reached the engine would exit 3).
Each asserts the exit code, exactly one line on stderr naming the problem, no traceback,
that nothing was written outside reports_dir and cache_dir (every file of the temporary
directory is compared before and after), and that reports_dir did not change either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DEMO_RUN = PROJECT / "tests" / "fixtures" / "reports" / "demo3"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}


@dataclass
class Layout:
    """root/a/b/project (cwd, reports_dir = project/reports), root/a/b/cache, root/home,
    root/files (inputs), root/plain (a directory that is no git repository), root/repo (a
    git repository), root/tmp (TMPDIR)."""

    root: Path

    def __post_init__(self) -> None:
        self.project = self.root / "a" / "b" / "project"
        self.reports = self.project / "reports"
        self.cache = self.root / "a" / "b" / "cache"
        self.home = self.root / "home"
        self.files = self.root / "files"
        self.plain = self.root / "plain"
        self.repo = self.root / "repo"
        self.tmp = self.root / "tmp"

    def create(self) -> None:
        for d in (self.reports, self.home, self.files, self.plain, self.tmp):
            d.mkdir(parents=True)
        for name in ("tasks.py", "invoke.yaml"):
            shutil.copy(PROJECT / name, self.project / name)
        for run in ("demo3", "shard-1", "shard-2"):
            shutil.copytree(DEMO_RUN, self.reports / run)
        (self.plain / "README").write_text("not a repository\n")
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        (self.repo / "VERSION").write_text("7.2.0\n")
        git = ["git", "-C", str(self.repo)]
        subprocess.run([*git, "add", "VERSION"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "v"], check=True,
                       env={**os.environ, **IDENTITY})

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("INVOKE_", "GIT_", "DOCKER_", "XDG_"))}
        return {**keep, "HOME": str(self.home), "TMPDIR": str(self.tmp),
                "INVOKE_PATCHCHECK_CACHE_DIR": str(self.cache), "GIT_CONFIG_NOSYSTEM": "1",
                "DOCKER_HOST": f"unix://{self.root}/no-docker.sock",
                "PYTHONDONTWRITEBYTECODE": "1"}

    def fill(self, text: str) -> str:
        return text.format(files=self.files, plain=self.plain, repo=self.repo, root=self.root)


Setup = Callable[[Layout], None]


def write(name: str, text: str, where: str = "files") -> Setup:
    def setup(layout: Layout) -> None:
        path = getattr(layout, where) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return setup


def append_to_project_yaml(text: str) -> Setup:
    def setup(layout: Layout) -> None:
        with (layout.project / "invoke.yaml").open("a") as f:
            f.write(text)
    return setup


def second_commit(dirty: bool = False) -> Setup:
    """One more commit in root/repo (HEAD~1 exists then); `dirty`: and an uncommitted
    change to a tracked file on top."""
    def setup(layout: Layout) -> None:
        (layout.repo / "VERSION").write_text("7.2.1\n")
        git = ["git", "-C", str(layout.repo)]
        subprocess.run([*git, "commit", "-q", "-am", "w"], check=True,
                       env={**os.environ, **IDENTITY})
        if dirty:
            (layout.repo / "VERSION").write_text("7.2.2\n")
    return setup


@dataclass
class Row:
    id: str
    args: list[str]
    expect: list[str]  # substrings of the one stderr line
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    setup: Setup | None = None
    program: str = "invoke"  # or "patchcheck": the installed command (its own invoke.yaml)


BROKEN_YAML = "patchcheck:\n  matrix: [unclosed\n   jobs: 2\n"
USER_SYNTAX_ERROR = "patchcheck:\n  matrix: [\n"

ROWS = [
    # --- the issue's rows ---------------------------------------------------------------
    Row("run-id escapes reports", ["matrix", "--run-id", "../../escape"],
        ["--run-id '../../escape'", "not a valid name"]),
    Row("nested run-id", ["matrix", "--run-id", "a/b"], ["--run-id 'a/b'", "not a valid name"]),
    Row("-f YAML syntax error", ["-f", "{files}/broken.yaml", "matrix"],
        ["{files}/broken.yaml:3:8:", "expected ',' or ']'"],
        setup=write("broken.yaml", BROKEN_YAML)),
    Row("env int not a number", ["matrix"], ["INVOKE_PATCHCHECK_MATRIX_JOBS", "matrix.jobs",
                                             "'abc'"],
        env={"INVOKE_PATCHCHECK_MATRIX_JOBS": "abc"}),
    Row("git source not a repository", ["build", "--source", "git:{plain}@HEAD"],
        ["cannot clone '{plain}'", "not a git repository", "does not exist"]),
    Row("unknown build name", ["build", "--name", "no-such-build"],
        ["no build named 'no-such-build' is configured", "7.2-none", "10.0-v2"]),
    Row("unknown scenario", ["matrix", "--scenario", "nope"],
        ["--scenario 'nope'", "not a known scenario", "aer, pds"]),
    Row("a build of another scenario", ["build", "--scenario", "aer", "--name", "7.2-v2"],
        ["no build named '7.2-v2'", "10.0-compat"]),
    Row("a fix of another scenario", ["build", "--scenario", "aer", "--source", "debian:bookworm",
                                      "--fix", "v2"],
        ["fix 'v2'", "compat"]),
    # --- series and bisect (issue 16) ---------------------------------------------------
    Row("series range without commits", ["series", "--repo", "{repo}", "--range", "HEAD..HEAD"],
        ["range HEAD..HEAD", "has no commits"]),
    Row("series range that is no range", ["series", "--repo", "{repo}", "--range", "HEAD"],
        ["--range 'HEAD'", "expected BASE..TIP"]),
    Row("bisect good and bad swapped", ["bisect", "--repo", "{repo}", "--good", "HEAD",
                                        "--bad", "HEAD~1", "--case", "6.0:SELF->SELF[synthetic]"],
        ["--good HEAD is newer than --bad HEAD~1", "swapped"], setup=second_commit()),
    Row("bisect case that does not parse", ["bisect", "--repo", "{repo}", "--good", "HEAD~1",
                                            "--bad", "HEAD", "--case", "6.0 SELF"],
        ["--case '6.0 SELF'", "expected MACHINE:SOURCE->DESTINATION[GUEST]"],
        setup=second_commit()),
    Row("bisect with uncommitted changes", ["bisect", "--repo", "{repo}", "--good", "HEAD~1",
                                            "--bad", "HEAD", "--case", "6.0:SELF->SELF[synthetic]"],
        ["has uncommitted changes", "commit or stash them"], setup=second_commit(dirty=True)),
    # --- names as paths ---------------------------------------------------------------
    Row("run-id latest is reserved", ["matrix", "--run-id", "latest"], ["reserved"]),
    Row("hidden run-id", ["matrix", "--run-id", ".hidden"], ["--run-id '.hidden'"]),
    Row("run-id too long", ["matrix", "--run-id", "r" * 200], ["not a valid name"]),
    Row("run-id with a space", ["matrix", "--run-id", "my run"], ["--run-id 'my run'"]),
    Row("shard run-id escapes", ["matrix", "--shard", "1/2", "--run-id", "../shard-1"],
        ["--run-id '../shard-1'"]),
    Row("resume outside reports", ["matrix", "--resume", "../../escape"],
        ["--resume '../../escape'"]),
    Row("report run ..", ["report", "--run", ".."], ["--run '..'"]),
    Row("merge --out escapes", ["report.merge", "--run", "shard-1", "--out", "../../escape"],
        ["--out '../../escape'"]),
    Row("merge --out nested", ["report.merge", "--run", "shard-1", "--out", "merged/x"],
        ["--out 'merged/x'"]),
    Row("merge --out is an input", ["report.merge", "--run", "shard-*", "--out", "shard-1"],
        ["--out shard-1 is one of the runs being merged"]),
    Row("merge pattern hidden", ["report.merge", "--run", ".*"], ["'.*' is not a valid run-id"]),
    Row("nightly run-id escapes", ["nightly", "--remote", "{repo}", "--run-id", "../n"],
        ["--run-id '../n'"]),
    Row("configured build name escapes", ["-f", "{files}/names.yaml", "matrix"],
        ["{files}/names.yaml:3:", "build name '../x'"],
        setup=write("names.yaml", 'patchcheck:\n  builds:\n    "../x": {source: "debian:bookworm"}\n')),
    # --- configuration sources --------------------------------------------------------
    Row("-f file missing", ["-f", "{files}/missing.yaml", "matrix"],
        ["{files}/missing.yaml", "no such file"]),
    Row("-f unknown suffix", ["-f", "{files}/settings.txt", "matrix"],
        ["{files}/settings.txt", "not a configuration file"],
        setup=write("settings.txt", "patchcheck: {}\n")),
    Row("-f a directory", ["-f", "{files}/dir.yaml/", "matrix"], ["dir.yaml"],
        setup=write("dir.yaml/x", "")),
    Row("-f holds a list", ["-f", "{files}/list.yaml", "matrix"],
        ["{files}/list.yaml", "must hold a mapping"], setup=write("list.yaml", "- a\n- b\n")),
    Row("-f mapping set to a number", ["-f", "{files}/scalar.yaml", "matrix"],
        ["{files}/scalar.yaml:2:11:", "patchcheck.matrix must be a mapping"],
        setup=write("scalar.yaml", "patchcheck:\n  matrix: 5\n")),
    Row("-f bad value", ["-f", "{files}/jobs.yaml", "matrix"],
        ["{files}/jobs.yaml:3:11:", "matrix.jobs must be an integer, not 'lots'"],
        setup=write("jobs.yaml", "patchcheck:\n  matrix:\n    jobs: lots\n")),
    Row("-f JSON syntax error", ["-f", "{files}/bad.json", "matrix"], ["{files}/bad.json:1:"],
        setup=write("bad.json", '{"patchcheck": {"matrix": ')),
    Row("-f Python syntax error", ["-f", "{files}/bad.py", "matrix"], ["{files}/bad.py:1:"],
        setup=write("bad.py", 'patchcheck = {"matrix": {\n')),
    Row("INVOKE_RUNTIME_CONFIG missing", ["matrix"], ["{files}/gone.yaml", "no such file"],
        env={"INVOKE_RUNTIME_CONFIG": "{files}/gone.yaml"}),
    Row("user file: a mapping set to a number", ["matrix"],
        ["{root}/home/.invoke.yaml:2:11:", "patchcheck.matrix must be a mapping"],
        setup=write(".invoke.yaml", "patchcheck:\n  matrix: 5\n", where="home")),
    Row("user file: build without a source", ["build", "--name", "mine"],
        ["{root}/home/.invoke.yaml:3:11:", "builds.mine needs a source"],
        setup=write(".invoke.yaml", "patchcheck:\n  builds:\n    mine: {fix: v2}\n",
                    where="home")),
    Row("user file syntax error, patchcheck command", ["matrix"],
        ["{root}/home/.invoke.yaml:3:1:", "expected the node content"],
        setup=write(".invoke.yaml", USER_SYNTAX_ERROR, where="home"), program="patchcheck"),
    Row("project invoke.yaml syntax error", ["matrix"],
        ["project/invoke.yaml:", "expected the node content"],
        setup=append_to_project_yaml("  oops: [\n")),
    Row("env bool not a bool", ["matrix"], ["INVOKE_PATCHCHECK_MATRIX_SEMANTICS", "'maybe'"],
        env={"INVOKE_PATCHCHECK_MATRIX_SEMANTICS": "maybe"}),
    Row("env number too small", ["matrix"], ["INVOKE_PATCHCHECK_MATRIX_RAM_MIB", ">= 16"],
        env={"INVOKE_PATCHCHECK_MATRIX_RAM_MIB": "8"}),
    Row("QEMU memory limit below any engine's", ["matrix"],
        ["INVOKE_PATCHCHECK_MATRIX_QEMU_MEMORY_MIB", "0 (no limit) or >= 6, not 4"],
        env={"INVOKE_PATCHCHECK_MATRIX_QEMU_MEMORY_MIB": "4"}),
    Row("sweep QEMU memory limit not a number", ["sweep"],
        ["INVOKE_PATCHCHECK_SWEEP_QEMU_MEMORY_MIB", "must be an integer, not 'lots'"],
        env={"INVOKE_PATCHCHECK_SWEEP_QEMU_MEMORY_MIB": "lots"}),
    Row("task option not a number", ["matrix", "--timeout", "soon"], ["--timeout 'soon'"]),
    Row("unknown task option", ["matrix", "--nope"], ["No idea what '--nope' is"]),
    Row("unknown task", ["no-such-task"], ["No idea what 'no-such-task' is"]),
    Row("bench.probe repeat zero", ["bench.probe", "--repeat", "0"],
        ["--repeat '0'", "a whole number >= 1"]),
    # --- remote and repository paths --------------------------------------------------
    Row("git source missing", ["build", "--source", "git:{root}/nowhere@HEAD"],
        ["'{root}/nowhere' does not exist"]),
    Row("git file:// URL missing", ["build", "--source", "git:file://{root}/nowhere@HEAD"],
        ["cannot clone", "does not appear to be a git repository"]),
    Row("git source as an option", ["build", "--source", "git:--upload-pack=x@HEAD"],
        ["must not start with '-'"]),
    Row("check --repo not a repository", ["check", "--repo", "{plain}", "--commit", "HEAD"],
        ["--repo {plain} is not a git repository"]),
    Row("nightly remote not a repository", ["nightly", "--remote", "{plain}"],
        ["cannot clone '{plain}'", "not a git repository"]),
    Row("nightly remote missing", ["nightly", "--remote", "{root}/nowhere"],
        ["'{root}/nowhere' does not exist"]),
    Row("Docker engine missing keeps the reason", ["matrix", "--run-id", "fine"],
        ["Docker engine not reachable at unix://{root}/no-docker.sock", "No such file or directory"],
        code=3),
    Row("unknown container engine", ["matrix"],
        ["INVOKE_PATCHCHECK_RUNTIME", "runtime 'rkt' is not a known container engine "
         "(known: docker, podman)"], env={"INVOKE_PATCHCHECK_RUNTIME": "rkt"}),
    Row("engine socket not a unix socket", ["matrix"],
        ["INVOKE_PATCHCHECK_RUNTIME_HOST", "is not a unix socket"],
        env={"INVOKE_PATCHCHECK_RUNTIME_HOST": "tcp://127.0.0.1:2375"}),
    Row("Podman service missing keeps the reason", ["matrix", "--run-id", "fine"],
        ["Podman engine not reachable at unix://{root}/no-podman.sock",
         "No such file or directory", "podman system service"], code=3,
        env={"INVOKE_PATCHCHECK_RUNTIME": "podman",
             "CONTAINER_HOST": "unix://{root}/no-podman.sock"}),
]


# The `patchcheck` command reads every configuration file itself (patchcheck.cli.program):
# the configuration rows again through it.
PATCHCHECK_ROWS = ("-f YAML syntax error", "-f file missing", "-f unknown suffix",
                   "-f mapping set to a number", "env int not a number", "env bool not a bool",
                   "user file: a mapping set to a number", "unknown task option",
                   "unknown scenario")
ROWS += [replace(r, id=f"{r.id}, patchcheck command", program="patchcheck")
         for r in ROWS if r.id in PATCHCHECK_ROWS]


def _snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    """Every file and directory under root, except those under `skip`: path -> (size, mtime)."""
    found: dict[str, tuple[int, int]] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        stat = path.lstat()
        found[str(path.relative_to(root))] = (stat.st_size if path.is_file() else 0,
                                              stat.st_mtime_ns if path.is_file() else 0)
    return found


PROGRAMS = {"invoke": [sys.executable, "-m", "invoke"],
            "patchcheck": [sys.executable, "-m", "patchcheck.cli.program"]}


def _run(layout: Layout, row: Row) -> subprocess.CompletedProcess[str]:
    env = {**layout.env(), **{k: layout.fill(v) for k, v in row.env.items()}}
    return subprocess.run([*PROGRAMS[row.program], *map(layout.fill, row.args)],
                          cwd=layout.project, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    if row.setup:
        row.setup(layout)
    outside = _snapshot(tmp_path, (layout.reports, layout.cache))
    reports = _snapshot(layout.reports, ())
    result = _run(layout, row)
    assert result.returncode == row.code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("patchcheck: error: "), lines[0]
    for part in row.expect:
        assert layout.fill(part) in lines[0], lines[0]
    assert _snapshot(tmp_path, (layout.reports, layout.cache)) == outside
    assert _snapshot(layout.reports, ()) == reports
    assert not (tmp_path.parent / "escape").exists()


def test_user_file_syntax_error_under_plain_invoke_is_invokes_own(tmp_path: Path) -> None:
    """invoke reads ~/.invoke.yaml before it imports tasks.py: its own error (README,
    "Bad input"), which names the file; nothing of patchcheck's runs."""
    layout = Layout(tmp_path)
    layout.create()
    write(".invoke.yaml", USER_SYNTAX_ERROR, where="home")(layout)
    result = _run(layout, Row("plain invoke", ["matrix"], []))
    assert result.returncode != 0
    assert f"{layout.home}/.invoke.yaml" in result.stderr, result.stderr
    assert "patchcheck: error" not in result.stderr


def test_the_table_has_the_issue_rows_and_ten_more() -> None:
    assert len(ROWS) >= 6 + 10
    assert len({r.id for r in ROWS}) == len(ROWS)
