"""Configuration, exit codes, verdicts, and the small pure helpers of images.py and build.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.config import Config

from patchcheck.build import builder as build
from patchcheck.build import configure
from patchcheck.build import record as record_mod
from patchcheck.config import settings as config
from patchcheck.engine import images
from patchcheck.engine.images import ImageRule
from patchcheck.errors import BuildFailed, InfraError, PatchcheckError, UsageError
from patchcheck.exit_codes import (
    CHECK_NO_VERDICT,
    EXIT_DEVIATION,
    EXIT_INFRA,
    EXIT_OK,
    EXIT_USAGE,
    exit_code_for_error,
)
from patchcheck.result.model import CaseResult
from patchcheck.result.outcome import Observed
from patchcheck.scenarios import registry as scenarios
from patchcheck.verdict.decision import Semantics, decide
from patchcheck.verdict.judge import judge

pytestmark = pytest.mark.usefixtures("isolated_env")

PROJECT = Path(__file__).resolve().parents[2]
MakeResult = Callable[..., CaseResult]
P, F, E, S = Observed.PASSED, Observed.FAILED, Observed.ERROR, Observed.SKIPPED


# --- configuration --------------------------------------------------------------------

def invoke_config() -> Config:
    """The project's invoke.yaml through invoke itself (no system/user config files)."""
    cfg = Config(project_location=PROJECT, lazy=True)
    cfg.load_project()
    return cfg


@pytest.fixture
def yaml_tree() -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "invoke.yaml").read_text())["patchcheck"]


def test_load_project_invoke_yaml(yaml_tree: dict[str, Any], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = config.load(invoke_config())
    # the scenario's builds, then the configuration's own (none by default)
    scenario = scenarios.get(yaml_tree["matrix"]["scenario"])
    assert yaml_tree["builds"] == {} and yaml_tree["matrix"]["builds"] == []
    assert set(settings.builds) == set(scenario.defaults.builds)
    for name, (source, fix) in scenario.defaults.builds.items():
        assert settings.builds[name] == config.BuildSpec(name, source, fix)
    assert settings.configure == tuple(yaml_tree["build"]["configure"])
    assert settings.matrix.builds == tuple(scenario.defaults.builds)
    assert settings.matrix.pairs == tuple(yaml_tree["matrix"]["pairs"])
    assert dict(settings.matrix.guests) == dict(scenario.defaults.guests)
    assert settings.matrix.accel == "tcg" and settings.matrix.ram_mib >= 16
    assert [r.generation for r in settings.image_rules] == \
        [r["generation"] for r in yaml_tree["images"]["rules"]]
    assert settings.image_rules[-1].max_version is None  # a catch-all rule ends the list
    if not yaml_tree.get("cache_dir"):
        assert settings.cache_dir == tmp_path / "xdg" / "patchcheck"
    # every configured source parses and every fix state is known or a file
    from patchcheck.source import specs as sources
    from patchcheck.tree import fixes

    for spec in settings.builds.values():
        sources.parse_spec(spec.source)
        assert spec.fix in (*fixes.known_fixes(settings.matrix.scenario).names, *fixes.NO_FIX)


def test_load_with_invoke_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PATCHCHECK_CACHE_DIR", str(tmp_path / "var-cache"))
    monkeypatch.setenv("INVOKE_PATCHCHECK_MATRIX_RAM_MIB", "256")
    cfg = invoke_config()
    cfg.load_shell_env()
    settings = config.load(cfg)
    assert settings.cache_dir == tmp_path / "var-cache"
    assert settings.matrix.ram_mib == 256


def test_load_minimal_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = config.load({"patchcheck": {}})
    assert settings.image_rules == (ImageRule("bookworm"),)
    assert settings.configure == ()
    defaults = scenarios.get().defaults  # an empty configuration runs the default scenario
    assert set(settings.builds) == set(defaults.builds)
    m = settings.matrix
    assert (m.builds, m.pairs, m.machines, dict(m.guests)) == \
        (tuple(defaults.builds), ("all",), "", dict(defaults.guests))
    assert (m.ram_mib, m.timeout, m.accel, m.jobs, m.force_global) == \
        (32, 60.0, "tcg", 0, True)
    assert settings.nightly.fix == ""  # the scenario's first known fix
    assert settings.cache_dir == tmp_path / "patchcheck"
    assert settings.reports_dir == Path("reports")


def test_load_variants() -> None:
    settings = config.load({"patchcheck": {
        "cache_dir": "~/pc-cache",
        "builds": {"a": {"source": "debian:bookworm"}, "b": {"source": "debian:trixie",
                                                            "fix": "v2"}},
        "matrix": {"builds": "a, b", "pairs": "a->b", "guests": {"synthetic": "boundary"},
                   "timeout": "30", "machines": "6.0..7.2"},
        "images": {"rules": [{"max_version": "8.0", "generation": "bookworm"},
                             {"max_version": 9, "generation": "x"}, {"generation": "trixie"}]},
    }})
    assert settings.cache_dir == Path("~/pc-cache").expanduser()
    assert settings.builds["a"].fix == "none" and settings.builds["b"].fix == "v2"
    assert settings.matrix.builds == ("a", "b") and settings.matrix.pairs == ("a->b",)
    assert settings.matrix.guests == {"synthetic": "boundary"}
    assert settings.matrix.timeout == 30.0 and settings.matrix.machines == "6.0..7.2"
    assert [r.max_version for r in settings.image_rules] == [(8, 0), (9,), None]


@pytest.mark.parametrize("tree, message", [
    ({}, "no 'patchcheck' section"),
    ([], "no 'patchcheck' section"),
    ({"patchcheck": None}, "must be a mapping"),
    ({"patchcheck": ["builds"]}, "must be a mapping"),
    ({"patchcheck": {"images": "bookworm"}}, "patchcheck.images must be a mapping"),
    ({"patchcheck": {"images": {"rules": [{"max_version": "8.0"}]}}}, "needs a generation"),
    ({"patchcheck": {"images": {"rules": ["bookworm"]}}}, "needs a generation"),
    ({"patchcheck": {"images": {"rules": [{"generation": "b", "max_version": "8.x"}]}}},
     "not a version"),
    ({"patchcheck": {"builds": ["7.2-none"]}}, "patchcheck.builds must be a mapping"),
    ({"patchcheck": {"builds": {"a": {"fix": "v1"}}}}, "builds.a needs a source"),
    ({"patchcheck": {"builds": {"a": "debian:bookworm"}}}, "builds.a needs a source"),
    ({"patchcheck": {"build": {"configure": {"--disable-docs": True}}}}, "must be a list"),
    ({"patchcheck": {"build": {"jobs": "many"}}}, "build.jobs must be an integer"),
    ({"patchcheck": {"matrix": "all"}}, "patchcheck.matrix must be a mapping"),
    ({"patchcheck": {"matrix": {"ram_mib": "lots"}}}, "matrix.ram_mib must be an integer"),
    ({"patchcheck": {"matrix": {"ram_mib": 8}}}, "matrix.ram_mib must be >= 16"),
    ({"patchcheck": {"matrix": {"timeout": 0}}}, "matrix.timeout must be >= 1"),
    ({"patchcheck": {"matrix": {"jobs": -2}}}, "matrix.jobs must be >= 0"),
    ({"patchcheck": {"matrix": {"pairs": 5}}}, "matrix.pairs must be a list"),
    ({"patchcheck": {"matrix": {"builds": {"a": 1}}}}, "matrix.builds must be a list"),
    ({"patchcheck": {"matrix": {"guests": 3}}}, "matrix.guests must be a list"),
])
def test_load_malformed(tree: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        config.load(tree)


def test_load_rules_not_a_list() -> None:
    with pytest.raises(UsageError):
        config.load({"patchcheck": {"images": {"rules": 5}}})


def test_parse_version() -> None:
    assert config.parse_version("8.0") == (8, 0)
    assert config.parse_version(10) == (10,)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        config.parse_version("eight")


# --- exit codes -----------------------------------------------------------------------

def test_exit_code_constants() -> None:
    assert (EXIT_OK, EXIT_DEVIATION, EXIT_USAGE, EXIT_INFRA) == (0, 1, 2, 3)


@pytest.mark.parametrize("error, code", [
    (UsageError("bad spec"), EXIT_USAGE),
    (InfraError("docker down"), EXIT_INFRA),
    (BuildFailed("build failed", "/x.log"), EXIT_INFRA),
    (PatchcheckError("x"), EXIT_INFRA),
    (OSError("disk full"), EXIT_INFRA),
])
def test_exit_code_for_error(error: BaseException, code: int) -> None:
    assert exit_code_for_error(error) == code


# --- verdict --------------------------------------------------------------------------

def _words(results: list, task: str = "check") -> str:
    """The words the decision over these cases prints (the verdicts' only words)."""
    decision = decide(judge(results), Semantics())
    return "\n".join(decision.words if task == "check" else decision.lines(task))


def test_verdict_no_cases() -> None:
    assert not judge([]).fix_works
    decision = decide(judge([]), Semantics())
    assert "No case ran" in _words([]) and decision.check_exit == CHECK_NO_VERDICT
    assert decision.matrix_exit == 3 and "No verdict (exit 3)" in _words([], "matrix")


def test_verdict_fix_works(make_result: MakeResult) -> None:
    results = [
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed"),
        make_result("pc-q35-6.0", "7.2-v2", "7.2-none", "failed", "failed"),
        make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed"),
        make_result("pc-q35-6.0", "7.2-v2", "7.2-v2", "passed", "passed"),
        make_result("pc-q35-6.1", "7.2-none", "7.2-none", "passed", "passed"),
    ]
    v = judge(results)
    assert (v.reproduces, v.fixed_passes, v.fixed_fails, v.deviations, v.errors, v.total) == \
        (2, 2, 0, 0, 0, 5)
    assert v.fix_works
    assert _words(results).startswith(
        "With the fix at the destination every case passes (2); without it the reproducer "
        "fails with the bug's error (2).")
    assert _words(results, "matrix").startswith(
        "As expected (exit 0): all 5 cases came out as the model says.")


def test_verdict_fix_does_not_work(make_result: MakeResult) -> None:
    results = [
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed"),
        make_result("pc-q35-6.0", "7.2-none", "7.2-v1", "failed", "passed"),
        make_result("pc-q35-6.0", "7.2-v1", "7.2-v1", "passed", "passed"),
    ]
    v = judge(results)
    assert (v.reproduces, v.fixed_passes, v.fixed_fails, v.deviations) == (1, 1, 1, 1)
    assert not v.fix_works
    assert "The fix did not remove the failure: with it at the destination 1 case(s) still " \
        "fail with the bug's error." in _words(results)
    assert _words(results, "matrix").startswith(
        "Not as expected (exit 1): 3 cases, 1 deviate from the model.")


def test_verdict_nothing_proven(make_result: MakeResult) -> None:
    results = [
        make_result("pc-q35-6.1", "7.2-none", "7.2-none", "passed", "passed"),
        make_result("pc-q35-6.1", "7.2-none", "7.2-v2", "passed", "passed"),
        # the reproducer was expected to fail and did not: a deviation, not a reproduction
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "passed", "failed"),
    ]
    v = judge(results)
    assert v.reproduces == 0 and v.deviations == 1 and not v.fix_works
    assert _words(results).startswith("The reproducer did not fail with the bug's error "
                                      "without the fix: nothing was proven.")


def test_verdict_unexpected_failure_is_not_a_reproduction(make_result: MakeResult) -> None:
    # without the fix on a >= 6.1 type the model expects a pass: failing there is a deviation
    results = [
        make_result("pc-q35-6.1", "7.2-none", "7.2-none", "failed", "passed"),
        make_result("pc-q35-6.1", "7.2-none", "7.2-v2", "passed", "passed"),
    ]
    v = judge(results)
    assert (v.reproduces, v.deviations, v.fix_works) == (0, 1, False)
    assert "nothing was proven" in _words(results)


def test_a_failure_with_another_error_is_never_a_reproduction(make_result: MakeResult) -> None:
    other = make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed-other", "failed")
    other.destination_error = "get_pci_config_device: Bad config data: i=0x6a read: 0"
    results = [other, make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed")]
    v = judge(results)
    assert (v.reproduces, v.deviations, v.fix_works) == (0, 1, False)
    assert v.other == (("pc-q35-6.0:7.2-none->7.2-none[synthetic]",
                        "get_pci_config_device: Bad config data: i=0x6a read: 0"),)
    assert '"get_pci_config_device: Bad config data: i=0x6a read: 0"' in _words(results)


def test_verdict_errors_are_not_deviations(make_result: MakeResult) -> None:
    results = [
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed"),
        make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "passed", "passed"),
        make_result("pc-q35-6.0", "7.2-v2", "7.2-v2", "error", "passed"),
        make_result("pc-q35-6.0", "7.2-v1", "7.2-v2", "skipped", "passed"),
    ]
    v = judge(results)
    assert (v.errors, v.deviations, v.fixed_passes, v.fixed_fails) == (2, 0, 1, 0)
    assert _words(results, "matrix").startswith(
        "No verdict (exit 3): 4 cases, 2 case(s) errored or were skipped.")


def test_verdict_fix_not_shown_when_no_fixed_case_passed(make_result: MakeResult) -> None:
    results = [
        make_result("pc-q35-6.0", "7.2-none", "7.2-none", "failed", "failed"),
        make_result("pc-q35-6.0", "7.2-none", "7.2-v2", "error", "passed"),
    ]
    v = judge(results)
    assert not v.fix_works
    assert "every case passes" not in _words(results)


# --- images: APT mirror, generations, Dockerfile hash --------------------------------

DEB822 = """\
Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://sources-only.example.org/debian
Suites: bookworm
Components: main

# the main archive
Types: deb deb-src
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

LEGACY = """\
# deb http://commented.example.org/debian bookworm main
deb-src http://sources-only.example.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] http://security.debian.org/debian-security bookworm-security main
  deb [arch=amd64] http://legacy.example.org/debian bookworm main
deb http://second.example.org/debian bookworm main
"""  # noqa: E501


def test_host_apt_mirror_deb822(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert images.host_apt_mirror(tmp_path) == "http://mirror.example.org/debian"


def test_host_apt_mirror_legacy(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(LEGACY)
    assert images.host_apt_mirror(tmp_path) == "http://legacy.example.org/debian"


def test_host_apt_mirror_list_d(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "deb http://security.debian.org/debian-security bookworm-security main\n")
    (tmp_path / "sources.list.d" / "extra.list").write_text(
        "deb http://extra.example.org/debian bookworm main\n")
    assert images.host_apt_mirror(tmp_path) == "http://extra.example.org/debian"


def test_host_apt_mirror_none(tmp_path: Path) -> None:
    assert images.host_apt_mirror(tmp_path) is None
    (tmp_path / "sources.list").write_text(
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb-src http://deb.debian.org/debian bookworm main\n")
    assert images.host_apt_mirror(tmp_path) is None


def test_host_apt_mirror_skips_disabled_stanza(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://disabled.example.org/debian\nSuites: bookworm\n"
        "Components: main\nEnabled: no\n\n"
        "Types: deb\nURIs: http://enabled.example.org/debian\nSuites: bookworm\n"
        "Components: main\n")
    assert images.host_apt_mirror(tmp_path) == "http://enabled.example.org/debian"


@pytest.mark.parametrize("version, generation", [
    ((7, 2, 0), "bookworm"),
    ((7, 2, 22), "bookworm"),
    ((8, 0, 5), "bookworm"),
    ((8, 0), "bookworm"),
    ((8, 1, 0), "trixie"),
    ((9, 2, 0), "trixie"),
    ((10, 0, 2), "trixie"),
])
def test_generation_for_default_rules(version: tuple[int, ...], generation: str) -> None:
    rules = config.load(invoke_config()).image_rules
    assert images.generation_for(version, rules) == generation


def test_generation_for_no_rule() -> None:
    rules = (ImageRule("bookworm", (8, 0)),)
    assert images.generation_for((6, 2, 0), rules) == "bookworm"
    with pytest.raises(UsageError, match="no images.rules entry matches QEMU 10.0"):
        images.generation_for((10, 0), rules)


def test_generations_and_dockerfile_hash(tmp_path: Path) -> None:
    shipped = images.generations(PROJECT / "containers")
    assert {"bookworm", "trixie"} <= set(shipped) and shipped == sorted(shipped)
    for gen in ("trixie", "bookworm", "sid-experimental"):
        (tmp_path / f"builder-{gen}.Dockerfile").write_text(f"FROM debian:{gen}\n")
    (tmp_path / "other.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "builder-notes.txt").write_text("x\n")
    assert images.generations(tmp_path) == ["bookworm", "sid-experimental", "trixie"]

    path = tmp_path / "builder-trixie.Dockerfile"
    digest = images.dockerfile_hash(path)
    assert digest == hashlib.sha256(b"FROM debian:trixie\n").hexdigest()
    assert images.dockerfile_hash(path) == digest
    path.write_text("FROM debian:trixie\nRUN true\n")
    assert images.dockerfile_hash(path) != digest


# --- build: configure options, keys, records ------------------------------------------

# Excerpts of real `configure --help` output (Debian bookworm QEMU 7.2, trixie QEMU 10.0).
HELP_72 = """\
Usage: configure [options]
Options: [defaults in brackets after descriptions]

Standard options:
  --help                   print this message
  --prefix=PREFIX          install in PREFIX [/usr/local]
  --target-list=LIST       set target list (default: build all)
  --target-list-exclude=LIST exclude a set of targets from the default target-list
  --with-git=GIT           use specified git [git]
  --with-git-submodules=update   update git submodules (default if .git dir exists)
  --with-git-submodules=validate fail if git submodules are not up to date
  --with-git-submodules=ignore   do not update or check git submodules (default if no .git dir)
  --static                 enable static build [no]
  --enable-debug           enable common debug build options
  --disable-werror         disable compilation abort on warning
  --disable-install-blobs  install provided firmware blobs

Optional features, enabled with --enable-FEATURE and
disabled with --disable-FEATURE, default is enabled if available
(unless built with --without-default-features):

  capstone        Whether and how to find the capstone library
  docs            Documentations build support
  gtk             GTK+ user interface
  gtk-clipboard   clipboard support for GTK (EXPERIMENTAL, MAY HANG)
  guest-agent     Build QEMU Guest Agent
  guest-agent-msi Build MSI package for the QEMU Guest Agent
  sdl             SDL user interface
  slirp           libslirp user mode network backend support
  tools           build support utilities that come with QEMU
  vnc             VNC server
  vnc-jpeg        JPEG lossy compression for VNC server
  xen-pci-passthrough
                  Xen PCI passthrough support
  system          all system emulation targets
  user            supported user emulation targets
  linux-user      all linux usermode emulation targets
"""

HELP_100 = """\
Usage: configure [options]
Options: [defaults in brackets after descriptions]

Standard options:
  --help                   print this message
  --target-list=LIST       set target list (default: build all)
  --target-list-exclude=LIST exclude a set of targets from the default target-list
  --rustc=RUSTC            use Rust compiler RUSTC [rustc]
  --static                 enable static build [no]
  --rust-target-triple=TRIPLE  compilation target for Rust code [autodetect]
  --enable-debug           enable common debug build options
  --disable-debug-info     Enable debug symbols and other information
  --disable-install-blobs  install provided firmware blobs
  --enable-strict-rust-lints

Optional features, enabled with --enable-FEATURE and
disabled with --disable-FEATURE, default is enabled if available
(unless built with --without-default-features):

  capstone        Whether and how to find the capstone library
  docs            Documentations build support
  gtk             GTK+ user interface
  guest-agent     Build QEMU Guest Agent
  rust            Rust support
  sdl             SDL user interface
  slirp           libslirp user mode network backend support
  tools           build support utilities that come with QEMU
  vnc             VNC server
  werror          Treat warnings as errors
  system          all system emulation targets
  user            supported user emulation targets
"""

CONFIGURE = [
    "--target-list=x86_64-softmmu", "--with-git-submodules=ignore", "--disable-docs",
    "--disable-tools", "--disable-guest-agent", "--disable-user", "--disable-gtk",
    "--disable-sdl", "--disable-vnc", "--disable-slirp", "--disable-capstone", "--disable-rust",
    "--disable-werror", "--disable-install-blobs",
]


def test_supported_options_72() -> None:
    kept = configure.supported_options(CONFIGURE, HELP_72)
    assert kept == [o for o in CONFIGURE if o != "--disable-rust"]  # order kept


def test_supported_options_100() -> None:
    kept = configure.supported_options(CONFIGURE, HELP_100)
    # QEMU 10.0 has no --with-git-submodules; --disable-werror is a feature there
    assert kept == [o for o in CONFIGURE if o != "--with-git-submodules=ignore"]


@pytest.mark.parametrize("option, in72, in100", [
    ("--enable-rust", False, True),
    ("--disable-vnc-jpeg", True, False),
    ("--disable-gtk-clipboard", True, False),
    ("--disable-xen-pci-passthrough", True, False),
    ("--disable-linux-user", True, False),
    ("--disable-frobnicator", False, False),
    ("--disable-vnc-j", False, False),  # a prefix of a feature is not the feature
    ("--static", True, True),
    ("--prefix=/opt/qemu", True, False),
    ("--enable-lto", False, False),
])
def test_supported_options_single(option: str, in72: bool, in100: bool) -> None:
    assert configure.supported_options([option], HELP_72) == ([option] if in72 else [])
    assert configure.supported_options([option], HELP_100) == ([option] if in100 else [])


@pytest.mark.parametrize("option, help_text", [
    ("--disable-debug", HELP_100),  # QEMU 10.0's configure rejects it: Unknown option
    ("--disable-Xen", HELP_72),
    ("--target-list-ex", HELP_72),
])
def test_supported_options_no_false_positives(option: str, help_text: str) -> None:
    assert configure.supported_options([option], help_text) == []


def test_supported_options_against_invoke_yaml() -> None:
    options = list(config.load(invoke_config()).configure)
    kept = configure.supported_options(options, HELP_72)
    assert "--target-list=x86_64-softmmu" in kept
    assert set(kept) <= set(options)


def test_build_key() -> None:
    key = build.build_key("a" * 40, ["--disable-docs"], "sha256:1")
    assert len(key) == 24 and all(c in "0123456789abcdef" for c in key)
    assert build.build_key("a" * 40, ["--disable-docs"], "sha256:1") == key
    others = {
        build.build_key("b" * 40, ["--disable-docs"], "sha256:1"),
        build.build_key("a" * 40, ["--disable-docs", "--disable-rust"], "sha256:1"),
        build.build_key("a" * 40, [], "sha256:1"),
        build.build_key("a" * 40, ["--disable-docs"], "sha256:2"),
        build.build_key("a" * 40, ("--disable-x", "--disable-y"), "sha256:1"),
        build.build_key("a" * 40, ("--disable-y", "--disable-x"), "sha256:1"),
        build.build_key("a" * 40, ["--disable-docs sha256:1"], ""),  # no ambiguous joining
    }
    assert key not in others and len(others) == 7
    assert build.build_key("a" * 40, ("--disable-docs",), "sha256:1") == key  # tuple == list


@pytest.fixture
def record_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "builds" / "k"
    (directory / "bin").mkdir(parents=True)
    binary = directory / "bin" / build.BINARY
    binary.write_bytes(b"\x7fELF fake qemu")
    data = {
        "name": "7.2-v2", "key": "k", "source": "debian:bookworm", "commit": "c" * 40,
        "tree_id": "t" * 40, "qemu_version": "7.2.0", "package_version": "1:7.2+dfsg-7",
        "fix": {"state": "v2", "patch": "v2", "applied": "clean", "has_fix": True, "note": ""},
        "generation": "bookworm", "image": "patchcheck-builder:bookworm",
        "image_id": "sha256:abc", "configure": ["/src/configure"], "seconds": 1.5, "ccache": "",
        "binary": str(binary), "binary_sha256": hashlib.sha256(b"\x7fELF fake qemu").hexdigest(),
        "reproduce": "docker run ...", "machines": ["pc-q35-6.0", "pc-q35-7.2"],
        "cached": False, "family": "f", "lineage": "l", "incremental_from": "", "base": "",
        "base_commit": "", "compiled": [], "devices": "minimal", "optimize": [], "pch": "",
        "subprojects": [], "unknown_future_field": 1,
    }
    (directory / build.RECORD).write_text(json.dumps(data))
    return directory


def test_load_record(record_dir: Path) -> None:
    record = record_mod.load_record(record_dir)
    assert record is not None
    assert (record.name, record.has_fix, record.fix_state, record.cached) == \
        ("7.2-v2", True, "v2", False)
    assert record.machines == ["pc-q35-6.0", "pc-q35-7.2"]


@pytest.mark.parametrize("damage", ["binary-changed", "binary-missing", "record-missing",
                                    "truncated", "field-missing", "defaulted-field-missing",
                                    "empty"])
def test_load_record_rejects_damage(record_dir: Path, damage: str) -> None:
    path = record_dir / build.RECORD
    data = json.loads(path.read_text())
    if damage == "binary-changed":
        Path(data["binary"]).write_bytes(b"\x7fELF other qemu")
    elif damage == "binary-missing":
        Path(data["binary"]).unlink()
    elif damage == "record-missing":
        path.unlink()
    elif damage == "truncated":
        path.write_text(path.read_text()[:50])
    elif damage == "field-missing":
        del data["binary_sha256"]
        path.write_text(json.dumps(data))
    elif damage == "defaulted-field-missing":  # every version wrote it: damaged, not old
        del data["base_commit"]
        path.write_text(json.dumps(data))
    elif damage == "empty":
        path.write_text("")
    assert record_mod.load_record(record_dir) is None


def test_load_record_non_object(record_dir: Path) -> None:
    (record_dir / build.RECORD).write_text("null")
    assert record_mod.load_record(record_dir) is None
