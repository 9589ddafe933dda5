"""The minimal build: which device set a tree gets, which options each tree keeps, and what
the build record says; real `configure --help` texts of the two default trees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config

from patchcheck.build.builder import Builder
from patchcheck.build.configure import DEVICES, device_configuration, device_options, supported_options
from patchcheck.build.record import BINARY, RECORD, BuildRecord
from patchcheck.config import settings as config_mod
from patchcheck.engine.runtime import ContainerSpec
from patchcheck.errors import UsageError
from patchcheck.source.specs import Tree
from patchcheck.tree.fixes import FixResult
from patchcheck.tree.prepared import PreparedTree

from .. import fakes

PROJECT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT / "tests" / "fixtures"
FAKE_QEMU = FIXTURES / "fake-qemu"
HELP = {v: (FIXTURES / "configure-help" / f"qemu-{v}.txt").read_text() for v in ("7.2", "10.0")}
# QEMU 4.2 .. 5.2: --without-default-devices, but no --with-devices-ARCH
HELP_NO_WITH_DEVICES = "\n".join(line for line in HELP["7.2"].splitlines()
                                 if "--with-devices-ARCH" not in line)
# before 4.1: neither
HELP_NEITHER = "\n".join(line for line in HELP_NO_WITH_DEVICES.splitlines()
                         if "--without-default-devices" not in line)


def project_settings() -> config_mod.Settings:
    cfg = Config(project_location=str(PROJECT))
    cfg.load_project()
    return config_mod.load(cfg)


def test_trees_with_both_options_get_the_minimal_device_set():
    for version in ("7.2", "10.0"):
        assert device_configuration(["CONFIG_Q35=y"], HELP[version]) == (device_options(),
                                                                         "minimal")


def test_older_trees_fall_back_to_the_default_device_set_and_say_why():
    assert device_configuration(["CONFIG_Q35=y"], HELP_NO_WITH_DEVICES) == (
        [], "default (configure lacks --with-devices-x86_64)")
    assert device_configuration(["CONFIG_Q35=y"], HELP_NEITHER) == (
        [], "default (configure lacks --without-default-devices and --with-devices-x86_64)")


def test_no_device_list_is_the_default_device_set():
    assert device_configuration([], HELP["7.2"]) == ([], "default")


def test_default_configuration_is_minimal_and_known_to_both_default_trees():
    settings = project_settings()
    assert settings.minimal
    assert {"CONFIG_Q35=y", "CONFIG_PCIE_PORT=y", "CONFIG_USB_XHCI_NEC=y"} <= set(settings.devices)
    assert "--without-default-features" in settings.minimal_configure
    wanted = [*settings.configure, *settings.minimal_configure]
    # 10.0's configure parses --disable-download without listing it in --help
    script = {"7.2": "", "10.0": '  --disable-download) download="disabled";\n'}
    kept = {v: supported_options(wanted, HELP[v], script[v]) for v in ("7.2", "10.0")}
    # per-tree differences are exactly what "drop unknown options" drops
    assert set(wanted) - set(kept["7.2"]) == {"--disable-rust", "--disable-download"}
    assert set(wanted) - set(kept["10.0"]) == {"--with-git-submodules=ignore"}
    assert supported_options(["--disable-download"], HELP["10.0"]) == []  # not in --help
    for v in ("7.2", "10.0"):  # what the scenario needs stays enabled in both trees
        assert {"--enable-tcg", "--enable-kvm", "--without-default-features",
                "--disable-debug-info"} <= set(kept[v])


def test_full_configuration_has_the_default_devices_and_no_minimal_options(tmp_path):
    settings = project_settings()
    full = settings.full_configuration()
    assert not full.minimal and full.configure == settings.configure
    minimal = Builder(None, tmp_path, settings.configure, devices=settings.devices,
                      minimal_configure=settings.minimal_configure)
    reference = Builder(None, tmp_path, full.configure, devices=full.devices,
                        minimal_configure=full.minimal_configure)
    assert reference.configure == list(settings.configure)
    assert minimal.configure == [*settings.configure, *settings.minimal_configure]
    assert minimal._keyed != reference._keyed


@pytest.mark.parametrize("line", ["Q35", "CONFIG_Q35", "CONFIG_Q35=m", "config_q35=y"])
def test_bad_device_lines_are_one_clear_error(line):
    with pytest.raises(UsageError, match="build.devices entry"):
        config_mod.load({"patchcheck": {"build": {"devices": [line]}}})


def test_device_list_from_a_comma_separated_string():
    settings = config_mod.load({"patchcheck": {"build": {
        "devices": "CONFIG_Q35=y, CONFIG_PCIE_PORT=y", "minimal_configure": "--disable-docs"}}})
    assert settings.devices == ("CONFIG_Q35=y", "CONFIG_PCIE_PORT=y")
    assert settings.minimal_configure == ("--disable-docs",)


# --- the build record, with a fake container runtime -----------------------------------

class FakeRuntime(fakes.FakeRuntime):
    """configure --help prints the tree's options; ninja writes a binary; -machine help lists
    two q35 types."""

    def __init__(self, help_text: str) -> None:
        super().__init__()
        self.help_text = help_text
        self.device_files: list[bool] = []

    def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
        if argv[-1] == "--help":
            return 0, self.help_text
        if argv[0] == "ninja":
            build = next(Path(m.source) for m in spec.mounts if m.target == "/build")
            self.device_files.append((build / f"{DEVICES}.mak").is_file())
            (build / BINARY).write_bytes(b"fake qemu " + json.dumps(argv).encode())
        if argv[-2:] == ["-machine", "help"]:
            return 0, "pc-q35-7.2  Standard PC (Q35 + ICH9, 2009)\npc-q35-6.0  ...\n"
        return 0, ""


def fake_prepared_tree(tmp_path: Path) -> PreparedTree:
    tree = Tree("git:fake-qemu@main", FAKE_QEMU, "0" * 40, "7.2.0")
    fix = FixResult(state="none", patch=None, applied="unchanged", has_fix=False)
    return PreparedTree(tree, FAKE_QEMU, fix, "1" * 40)


@pytest.mark.parametrize(("help_text", "devices", "expected"), [
    (HELP["7.2"], ["CONFIG_Q35=y"], "minimal"),
    (HELP_NO_WITH_DEVICES, ["CONFIG_Q35=y"], "default (configure lacks --with-devices-x86_64)"),
    (HELP["7.2"], [], "default"),
], ids=["minimal", "fallback", "full"])
def test_build_record_says_which_device_set_was_built(tmp_path, help_text, devices, expected):
    runtime = FakeRuntime(help_text)
    builder = Builder(runtime, tmp_path, ["--disable-docs", "--disable-rust"], devices=devices,
                      minimal_configure=["--without-default-features"], log=lambda line: None)
    record = builder.build("fake", fake_prepared_tree(tmp_path), "bookworm", "img", "sha256:1")
    assert record.devices == expected
    configure = next(c for c in runtime.commands
                     if c[0] == "/src/configure" and c[-1] != "--help")
    assert record.configure == configure
    assert "--disable-rust" not in configure  # unknown to 7.2's configure: dropped
    assert ("--without-default-features" in configure) == bool(devices)
    assert ("--without-default-devices" in configure) == (expected == "minimal")
    assert runtime.device_files == [expected == "minimal"]
    assert ("patchcheck-devices.mak" in record.reproduce) == (expected == "minimal")
    # the record, as results.json's builds carry it, round-trips with the device set
    again = BuildRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.devices == expected
    assert record.machines == ["pc-q35-6.0", "pc-q35-7.2"]


def test_a_record_without_a_field_is_damaged(tmp_path):
    """Every version writes every field: a record that lacks one (here the device set) is
    damaged, not an old one to complete; in the cache it is a miss that rebuilds."""
    runtime = FakeRuntime(HELP["7.2"])
    builder = Builder(runtime, tmp_path, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                      log=lambda line: None)
    tree = fake_prepared_tree(tmp_path)
    record = builder.build("fake", tree, "bookworm", "img", "sha256:1")
    data = record.to_dict()
    del data["devices"]
    with pytest.raises(ValueError, match="devices"):
        BuildRecord.from_dict(data)
    path = Path(record.binary).parent.parent / RECORD
    path.write_text(json.dumps(data))
    assert builder.cached("fake", tree, "sha256:1") is None
    again = builder.build("fake", tree, "bookworm", "img", "sha256:1")
    assert not again.cached and again.devices == "minimal"
    assert json.loads(path.read_text())["devices"] == "minimal"


def test_environment_selects_the_full_configuration(monkeypatch):
    from patchcheck.cli.invoke_compat import PatchcheckConfig  # settings from the environment as text

    monkeypatch.setenv("INVOKE_PATCHCHECK_BUILD_DEVICES", "")
    monkeypatch.setenv("INVOKE_PATCHCHECK_MATRIX_BUILDS", "7.2-none,7.2-v2")
    cfg = PatchcheckConfig(project_location=str(PROJECT))
    cfg.load_project()
    cfg.load_shell_env()
    settings = config_mod.load(cfg)
    assert settings.devices == () and not settings.minimal
    assert settings.matrix.builds == ("7.2-none", "7.2-v2")


# --- optimisation per part of QEMU: the compiler wrapper ------------------------------------

RULES = ["libqemu-*:-O1", "*:-O0"]


def _wrapped(rules: list[str], *args: str) -> list[str]:
    """What the wrapper runs for a compiler run with these arguments (the compiler: echo)."""
    import subprocess

    from patchcheck.build.builder import CC_WRAPPER, wrapper_env

    env = {"PATH": "/usr/bin:/bin", **wrapper_env(rules, "echo")}
    del env["CC"]
    done = subprocess.run([str(CC_WRAPPER), *args], env=env, capture_output=True,
                          text=True, check=True, timeout=10)
    return done.stdout.split()


def test_wrapper_appends_the_first_matching_rule_after_qemus_own_flags():
    target = "libqemu-x86_64-softmmu.fa.p/target_i386_tcg_translate.c.o"
    common = "libcommon.fa.p/hw_pci_pcie.c.o"
    base = ["-O2", "-D_FORTIFY_SOURCE=2", "-c", "../src/x.c"]
    assert _wrapped(RULES, *base, "-o", target) == [*base, "-o", target, "-O1"]
    assert _wrapped(RULES, *base, "-o", common) == [*base, "-o", common, "-O0"]
    # meson's configure checks compile "testfile.c" to other names: the catch-all rule
    assert _wrapped(RULES, "testfile.c", "-o", "output.obj")[-1] == "-O0"
    # flags are words; a rule that matches nothing adds nothing; no -o: only "*" matches
    assert _wrapped(["libqemu-*:-O1 -fno-inline"], "-o", target)[-2:] == ["-O1", "-fno-inline"]
    assert _wrapped(["libqemu-*:-O1"], "-c", "x.c", "-o", common) == ["-c", "x.c", "-o", common]
    assert _wrapped(RULES, "--version") == ["--version", "-O0"]


def test_minimal_build_compiles_through_the_wrapper_and_records_its_rules(tmp_path):
    runtime = FakeRuntime(HELP["7.2"])
    seen: list[Any] = []
    start = runtime.start
    runtime.start = lambda spec: (seen.append(spec), start(spec))[1]  # type: ignore[method-assign]
    builder = Builder(runtime, tmp_path, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                      minimal_configure=["--extra-cflags=-pipe"], minimal_optimize=RULES,
                      minimal_pch="qemu/osdep.h", log=lambda line: None)
    record = builder.build("fake", fake_prepared_tree(tmp_path), "bookworm", "img", "sha256:1")
    assert record.optimize == RULES and record.pch == "qemu/osdep.h"
    spec = seen[0]
    assert spec.env["CC"] == "/patchcheck/cc" and spec.env["PATCHCHECK_CC"] == "ccache gcc"
    assert spec.env["PATCHCHECK_OPTIMIZE"].splitlines() == RULES
    wrapper = next(m for m in spec.mounts if m.target == "/patchcheck/cc")
    assert wrapper.read_only and Path(wrapper.source).name == "cc-minimal"
    assert spec.env["PATCHCHECK_PCH"] == "qemu/osdep.h"
    assert spec.env["PATCHCHECK_PCH_FILE"] == "/src/include/qemu/osdep.h"
    assert spec.env["PATCHCHECK_PCH_DIR"].startswith("/build/")  # kept with the build
    # the reproducer builds the same way, with the plain compiler
    assert "CC=/patchcheck/cc" in record.reproduce and "PATCHCHECK_CC=gcc" in record.reproduce
    assert "PATCHCHECK_PCH=qemu/osdep.h" in record.reproduce
    # other rules are another build; the full configuration has neither wrapper nor rules
    other = Builder(runtime, tmp_path, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                    minimal_configure=["--extra-cflags=-pipe"], minimal_optimize=["*:-O1"])
    full = Builder(runtime, tmp_path, ["--disable-docs"], minimal_optimize=RULES,
                   minimal_pch="qemu/osdep.h")
    no_pch = Builder(runtime, tmp_path, ["--disable-docs"], devices=["CONFIG_Q35=y"],
                     minimal_configure=["--extra-cflags=-pipe"], minimal_optimize=RULES)
    assert other._keyed != builder._keyed != no_pch._keyed
    assert full.optimize == [] and full.pch == ""


def test_default_rules_compile_the_target_library_at_O1_and_the_rest_at_O0():
    settings = project_settings()
    assert settings.minimal_optimize == ("libqemu-*:-O1", "*:-O0")
    assert not any(o.startswith("--extra-cflags") and "-O" in o
                   for o in settings.minimal_configure)  # the wrapper's flags decide


@pytest.mark.parametrize("rule", ["-O1", ":-O1", "libqemu-*:", "  : "])
def test_bad_optimisation_rules_are_one_clear_error(rule):
    with pytest.raises(UsageError, match="build.minimal_optimize entry"):
        config_mod.load({"patchcheck": {"build": {"minimal_optimize": [rule]}}})


def test_a_tree_without_the_header_is_built_without_a_precompiled_one(tmp_path):
    import shutil

    old = tmp_path / "old-qemu"
    shutil.copytree(FAKE_QEMU, old, ignore=shutil.ignore_patterns("include"))
    tree = Tree("git:old-qemu@main", old, "0" * 40, "2.4.0")
    prepared = PreparedTree(tree, old, FixResult(state="none", patch=None, applied="unchanged",
                                                 has_fix=False), "2" * 40)
    runtime = FakeRuntime(HELP["7.2"])
    seen: list[Any] = []
    start = runtime.start
    runtime.start = lambda spec: (seen.append(spec), start(spec))[1]  # type: ignore[method-assign]
    builder = Builder(runtime, tmp_path / "cache", ["--disable-docs"], devices=["CONFIG_Q35=y"],
                      minimal_optimize=RULES, minimal_pch="qemu/osdep.h", log=lambda line: None)
    record = builder.build("old", prepared, "bookworm", "img", "sha256:1")
    assert record.pch == "" and "PATCHCHECK_PCH" not in seen[0].env
    assert seen[0].env["PATCHCHECK_OPTIMIZE"].splitlines() == RULES  # the rules still apply
