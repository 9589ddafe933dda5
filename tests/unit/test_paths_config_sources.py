"""The safe-name pattern and the stays-inside check (patchcheck.paths), where a configuration
value came from (patchcheck.config.origin), and git's reason in a clone error."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchcheck import paths
from patchcheck.cli.invoke_compat import PatchcheckConfig
from patchcheck.config import origin as configsource
from patchcheck.config import settings as config
from patchcheck.errors import ConfigError, UsageError, error_line
from patchcheck.report.regenerate import run_dir_of
from patchcheck.result.model import Case
from patchcheck.source import gitcmd
from patchcheck.source.specs import _clone_error

from .test_bad_input_table import _snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")


# --- paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["7.2-none", "10.0-v2", "shard-1", "nightly-20261202-050909-a1b2c3",
                                  "merged-x", "a", "v8.0.0-rc1+local", "x" * 128])
def test_safe_names(name: str) -> None:
    assert paths.check_name(name, "--run-id") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "-x", "_x",
                                  "a b", "a\nb", "a:b", "x" * 129, "caf\u00e9", "a\\b", "*"])
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UsageError, match="not a valid name"):
        paths.check_name(name, "--run-id")


def test_latest_is_no_run_id() -> None:
    with pytest.raises(UsageError, match="reserved"):
        paths.check_run_id("latest")


def test_inside_follows_symbolic_links(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "run-1").mkdir(parents=True)
    (reports / "latest").symlink_to("run-1")
    (reports / "out").symlink_to(tmp_path)
    assert paths.inside(reports, "latest") == reports / "latest"
    assert paths.run_dir(reports, "run-2") == reports / "run-2"
    with pytest.raises(UsageError, match="outside"):
        paths.inside(reports, "out", "x")
    with pytest.raises(UsageError, match="outside"):
        paths.inside(reports, "..", "x")


@pytest.mark.parametrize("pattern, ok", [("shard-*", True), ("run-?", True), ("[ab]*", True),
                                         (".*", False), ("../*", False), ("a/*", False)])
def test_run_id_patterns(pattern: str, ok: bool) -> None:
    if ok:
        assert paths.check_pattern(pattern, "--run") == pattern
    else:
        with pytest.raises(UsageError):
            paths.check_pattern(pattern, "--run")


@pytest.mark.parametrize("text", ["pc-q35-6.0:7.2-none->7.2-v2[synthetic]",
                                  "pc-q35-7.2:a->b[linux]+acpi-pci-hotplug-with-bridge-support=off",
                                  "", "../../x", ".hidden", "\u00e9t\u00e9", "y" * 300])
def test_slug_is_always_safe(text: str) -> None:
    assert paths.is_safe(paths.slug(text))


def test_case_directories_keep_their_names() -> None:
    """Runs written before paths.slug stay resumable: the same directory names."""
    case = Case("pc-q35-6.0", "7.2-none", "7.2-v2", "synthetic",
                ("ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",))
    assert case.slug == "pc-q35-6.0_7.2-none-_7.2-v2_synthetic__acpi-pci-hotplug-with-bridge-support_off"
    assert paths.slug("a" * 200) != paths.slug("a" * 201)  # shortened names stay distinct


def test_run_dir_of(tmp_path: Path) -> None:
    assert run_dir_of(tmp_path, "") == tmp_path / "latest"
    assert run_dir_of(tmp_path, "latest") == tmp_path / "latest"
    assert run_dir_of(tmp_path, "shard-1") == tmp_path / "shard-1"
    assert run_dir_of(tmp_path, "elsewhere/shard-1") == Path("elsewhere/shard-1")
    for bad in ("..", ".x", "a b"):
        with pytest.raises(UsageError, match="--run"):
            run_dir_of(tmp_path, bad)


# --- configuration sources --------------------------------------------------------------

def _config(tmp_path: Path, runtime: str = "", user: str = "") -> PatchcheckConfig:
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "invoke.yaml").write_text("patchcheck:\n  matrix:\n    jobs: 0\n    ram_mib: 128\n")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if user:
        (home / ".invoke.yaml").write_text(user)
    cfg = PatchcheckConfig(project_location=str(project), user_prefix=f"{home}/.", lazy=True)
    cfg.load_user(merge=False)
    cfg.load_project(merge=False)
    if runtime:
        (tmp_path / "run.yaml").write_text(runtime)
        cfg.set_runtime_path(str(tmp_path / "run.yaml"))
        cfg.load_runtime(merge=False)
    return cfg


def test_source_is_the_last_file_that_sets_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path, runtime="# comment\npatchcheck:\n  matrix:\n    jobs: lots\n")
    assert configsource.source_of(cfg, ("patchcheck", "matrix", "jobs")) == \
        f"{tmp_path}/run.yaml:4:11"
    assert configsource.source_of(cfg, ("patchcheck", "matrix", "ram_mib")) == \
        f"{tmp_path}/project/invoke.yaml:4:14"
    assert configsource.source_of(cfg, ("patchcheck", "nightly")) == \
        f"{tmp_path}/run.yaml:3:3"  # the nearest parent that is set: `patchcheck`
    assert configsource.source_of({"patchcheck": {}}, ("patchcheck",)) == ""


def test_source_of_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PATCHCHECK_MATRIX_JOBS", "abc")
    cfg = _config(tmp_path)
    cfg.merge()
    cfg.load_shell_env()
    assert cfg["patchcheck"]["matrix"]["jobs"] == "abc"  # text: config.load checks it
    with pytest.raises(ConfigError) as caught:
        config.load(cfg)
    assert str(caught.value) == ("configuration: INVOKE_PATCHCHECK_MATRIX_JOBS: matrix.jobs "
                                 "must be an integer, not 'abc'")


def test_a_bad_value_names_its_file_line_and_column(tmp_path: Path) -> None:
    cfg = _config(tmp_path, runtime="patchcheck:\n  matrix:\n    guests: 3\n")
    cfg.merge()
    with pytest.raises(ConfigError, match=rf"{tmp_path}/run.yaml:3:13: matrix.guests must be"):
        config.load(cfg)


def test_merge_conflict_blames_the_odd_source(tmp_path: Path) -> None:
    cfg = _config(tmp_path, user="patchcheck:\n  matrix: 5\n")
    error = configsource.merge_conflict(cfg)
    assert error is not None
    assert str(error) == (f"configuration: {tmp_path}/home/.invoke.yaml:2:11: "
                          "patchcheck.matrix must be a mapping, not 5")
    assert configsource.merge_conflict(_config(tmp_path / "ok")) is None


@pytest.mark.parametrize("value, expected", [(True, True), ("false", False), ("0", False),
                                             ("", False), ("Yes", True), ("on", True)])
def test_booleans_from_text(value: object, expected: bool) -> None:
    settings = config.load({"patchcheck": {"matrix": {"semantics": value}}})
    assert settings.matrix.semantics is expected


@pytest.mark.parametrize("tree, message", [
    ({"patchcheck": {"matrix": {"semantics": "maybe"}}}, "matrix.semantics must be true or false"),
    ({"patchcheck": {"builds": {"../x": {"source": "debian:bookworm"}}}}, "build name '../x'"),
    ({"patchcheck": {"builds": {"a b": {"source": "debian:bookworm"}}}}, "build name 'a b'"),
])
def test_more_malformed_configuration(tree: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(tree)


def test_error_line_is_one_line() -> None:
    assert error_line(UsageError("a\n  b\n")) == "patchcheck: error: a; b"


# --- git's reason --------------------------------------------------------------------------

def _clone_failure(url: str, dest: Path) -> gitcmd.GitError:
    try:
        gitcmd.out(dest.parent, "clone", "--mirror", "--", url, str(dest))
    except gitcmd.GitError as exc:
        return exc
    raise AssertionError("the clone should have failed")


def test_clone_error_keeps_the_reason(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    exc = _clone_failure(str(plain), tmp_path / "m1.git")
    assert _clone_error(str(plain), exc) == (f"cannot clone '{plain}': it is not a git "
                                             f"repository (git: repository '{plain}' does not exist)")
    exc = _clone_failure(f"file://{tmp_path}/nowhere", tmp_path / "m2.git")
    assert "'" + f"{tmp_path}/nowhere' does not appear to be a git repository" in \
        gitcmd.reason(exc)


@pytest.mark.parametrize("stderr, reason", [
    ("fatal: repository '/tmp' does not exist\n", "repository '/tmp' does not exist"),
    ("warning: x\nerror: one\nfatal: two\n", "one; two"),
    ("just words\n", "just words"),
    ("", "git exited with status 128"),
])
def test_git_reason(stderr: str, reason: str) -> None:
    assert gitcmd.reason(gitcmd.GitError(["clone"], 128, stderr)) == reason


def test_snapshot_sees_what_the_table_must_catch(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    before = _snapshot(tmp_path, (tmp_path / "reports",))
    (tmp_path / "reports" / "inside").write_text("x")
    assert _snapshot(tmp_path, (tmp_path / "reports",)) == before
    (tmp_path / "escape").mkdir()
    assert _snapshot(tmp_path, (tmp_path / "reports",)) != before


# --- names read from a tree: subproject wraps -----------------------------------------------

def test_a_wrap_directory_cannot_leave_the_tree(tmp_path: Path) -> None:
    """A wrap's `directory` (and `patch_directory`) is the tree's word: `_place` removes and
    fills that directory, so it must be inside the tree."""
    from patchcheck.source.subprojects.complete import _place
    from patchcheck.source.subprojects.pins import parse_wrap

    tree, victim, content = tmp_path / "tree", tmp_path / "victim", tmp_path / "content"
    for d in (tree, victim, content):
        d.mkdir()
    (victim / "keep").write_text("x")
    wrap = parse_wrap("subprojects/evil.wrap", "[wrap-git]\nurl = https://example.invalid/x\n"
                      "revision = 0123\ndirectory = ../../victim\n")
    with pytest.raises(UsageError, match="outside"):
        _place(tree, wrap, content)
    assert (victim / "keep").is_file()
    from patchcheck.source.subprojects.store import SubprojectStore

    escaping = parse_wrap("subprojects/x.wrap", "[wrap-git]\nurl = https://example.invalid/x\n"
                          "revision = ../../../victim\n")
    with pytest.raises(UsageError, match="outside"):
        SubprojectStore(tmp_path / "cache").entry(escaping)


@pytest.mark.parametrize("text, reason", [
    ("Hit:1 x\nE: Failed to fetch z\nE: Some index files failed to download.\n",
     "Failed to fetch z; Some index files failed to download."),
    ("Reading package lists...\nE: Unable to find a source package for qemu=9.9\n",
     "Unable to find a source package for qemu=9.9"),
    ("a\nb\n", "b"),
    ("", "failed without output"),
])
def test_apt_reason(text: str, reason: str) -> None:
    from patchcheck.source.fetch import apt_reason

    assert apt_reason(text) == reason


def test_engine_reason_is_the_innermost_cause() -> None:
    from patchcheck.engine.docker import engine_reason

    try:
        try:
            raise FileNotFoundError(2, "No such file or directory")
        except OSError as inner:
            raise RuntimeError("Error while fetching server API version: ('Connection "
                               "aborted.', ...)") from inner
    except RuntimeError as exc:
        assert engine_reason(exc) == "No such file or directory"
    assert engine_reason(RuntimeError("one\ntwo")) == "one"
