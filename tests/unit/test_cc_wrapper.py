"""The compiler wrapper of minimal builds (patchcheck/cc-minimal) with the real gcc and ninja
on a small tree: the precompiled header changes no object, is not used where it is not
valid, and leaves ninja (dependencies) and ccache (command line) a true view of what an
object was compiled from."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from patchcheck.build.builder import CC_WRAPPER, wrapper_env
from patchcheck.build.incremental import PCH_DIR, drop_stale_pch

pytestmark = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("ninja")),
                                reason="needs gcc and ninja")

PCH = "qemu/osdep.h"
TREE = {
    # like QEMU's: the build directory's config-host.h, the C library, more of the tree
    "include/qemu/osdep.h": ('#include "config-host.h"\n#include <stdio.h>\n'
                             '#include "qemu/inner.h"\n'
                             "#ifdef EXTRA_WIDTH\n#define WIDTH 8\n#else\n#define WIDTH 4\n#endif\n"),
    "include/qemu/inner.h": "#define INNER 1\n",
    # includes the header first: the precompiled one is used
    "a.c": '#include "qemu/osdep.h"\nint a(void) { return INNER + WIDTH + CONFIG_X; }\n',
    # defines a macro the header tests before including it: GCC must not use it
    "b.c": '#define EXTRA_WIDTH 1\n#include "qemu/osdep.h"\nint b(void) { return WIDTH; }\n',
    # includes it from another header: a precompiled header cannot be used there
    "c.h": '#include "qemu/osdep.h"\n',
    "c.c": '#include "c.h"\nint c(void) { return INNER; }\n',
}
SOURCES = ("a", "b", "c")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel, text in TREE.items():
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_text(text)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "config-host.h").write_text("#define CONFIG_X 2\n")
    return tmp_path


def env(root: Path, pch: bool) -> dict[str, str]:
    wrapped = wrapper_env(["*:-O0"], "gcc", PCH if pch else "")
    if pch:
        wrapped.update(PATCHCHECK_PCH_FILE=str(root / "src" / "include" / PCH),
                       PATCHCHECK_PCH_DIR=str(root / "build" / PCH_DIR))
    return {"PATH": os.environ["PATH"], **wrapped}


def compile_one(root: Path, name: str, pch: bool, *extra: str) -> subprocess.CompletedProcess:
    """A compile as meson writes it, run in the build directory through the wrapper."""
    obj = f"{name}.o"
    argv = [str(CC_WRAPPER), "-iquote", ".", "-iquote", str(root / "src" / "include"), "-O2",
            "-Winvalid-pch", *extra, "-MD", "-MQ", obj, "-MF", f"{obj}.d", "-o", obj, "-c",
            str(root / "src" / f"{name}.c")]
    return subprocess.run(argv, cwd=root / "build", env=env(root, pch), capture_output=True,
                          text=True, timeout=60, check=True)


def test_objects_are_byte_identical_with_and_without_the_precompiled_header(tree):
    without = {}
    for name in SOURCES:
        compile_one(tree, name, pch=False)
        without[name] = (tree / "build" / f"{name}.o").read_bytes()
    used = {}
    for name in SOURCES:
        done = compile_one(tree, name, True, "-H")
        used[name] = any(line.startswith("! ") and line.endswith(".gch")  # -H: "! X.gch"
                         for line in done.stderr.splitlines())
        assert (tree / "build" / f"{name}.o").read_bytes() == without[name], name
    assert used == {"a": True, "b": False, "c": False}
    gch = list((tree / "build" / PCH_DIR).glob("*/*/qemu/osdep.h.gch"))
    assert len(gch) == 1  # one set of flags: one precompiled header


def test_an_invalid_precompiled_header_is_said_and_the_header_read_instead(tree):
    compile_one(tree, "a", True)
    done = compile_one(tree, "b", True)
    assert "not used because `EXTRA_WIDTH' is defined" in done.stderr


def test_other_compiler_runs_pass_through_unchanged(tree):
    stub = tree / "echo-cc"
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    run_env = {**env(tree, True), "PATCHCHECK_CC": str(stub)}
    for argv in (["-o", "qemu-system-x86_64", "a.o", "-lglib-2.0"], ["--version"],
                 ["-E", "-x", "c", "-", "-o", "out.i"]):
        done = subprocess.run([str(CC_WRAPPER), *argv], env=run_env, capture_output=True,
                              text=True, timeout=10, check=True)
        assert done.stdout.split() == [*argv, "-O0"]
    assert not (tree / "build" / PCH_DIR).exists()


NINJA = """rule cc
  command = {wrapper} -iquote . -iquote {include} -O2 -MD -MQ $out -MF $out.d -o $out -c $in
  depfile = $out.d
  deps = gcc
build a.o: cc {src}/a.c
build b.o: cc {src}/b.c
build c.o: cc {src}/c.c
"""


def ninja(root: Path, *args: str) -> str:
    done = subprocess.run(["ninja", *args], cwd=root / "build", env=env(root, True),
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_ninja_and_ccache_see_the_headers_inside_the_precompiled_one(tree):
    src = tree / "src"
    (tree / "build" / "build.ninja").write_text(NINJA.format(
        wrapper=CC_WRAPPER, include=src / "include", src=src))
    ninja(tree, "-j", "3")  # three compiles of one flag set at once: one header made
    first = (tree / "build" / "a.o").read_bytes()
    dirs = sorted((tree / "build" / PCH_DIR).glob("*/*/qemu"))
    assert len(dirs) == 1
    assert str(src / "include" / "qemu" / "inner.h") in ninja(tree, "-t", "deps", "a.o")
    assert "no work to do" in ninja(tree, "-n")

    # the fix of an incremental build changes a header inside the precompiled one
    (src / "include" / "qemu" / "inner.h").write_text("#define INNER 40\n")
    later = os.stat(tree / "build" / "a.o").st_mtime + 10
    os.utime(src / "include" / "qemu" / "inner.h", (later, later))
    assert "a.o" in ninja(tree, "-n")  # ninja knows a.o read inner.h through the .gch
    dropped = drop_stale_pch(tree / "build", ["include/qemu/inner.h", "a.c"], str(src))
    assert [d.parent.parent.name for d in dirs] == dropped
    assert not dirs[0].exists()
    ninja(tree)
    rebuilt = (tree / "build" / "a.o").read_bytes()
    assert rebuilt != first
    # a new content hash in the -iquote path: ccache cannot take an object of the old header
    assert sorted((tree / "build" / PCH_DIR).glob("*/*/qemu")) != dirs
    compile_one(tree, "a", pch=False)
    assert (tree / "build" / "a.o").read_bytes() == rebuilt  # as compiled without it
    assert drop_stale_pch(tree / "build", ["a.c"], str(src)) == []  # not inside the header
