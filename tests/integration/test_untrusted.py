"""Untrusted code cannot change another verdict (docs/reliability.md, "Untrusted builds").

A patch from outside (a `--fix` file, as `check --patch` gives) whose meson.build code writes,
at configure time, into the compiler cache, the source tree, the container's root and /tmp,
and its lifeline's directory on the host: every write fails or is thrown away, the compiler
cache is byte for byte what it was, and the next trusted build of the 7.2 tree (the tree the
patch was applied to, without it) gives the binary of a build in an empty cache.

Both builds run in a private cache whose compiler cache is a copy of the session's (other
builds of the session, or other processes on a shared cache, must not change it while it is
watched); neither has a build directory to start from, so both configure afresh.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
import shutil
import uuid
from pathlib import Path

from patchcheck.build.builder import Builder
from patchcheck.build.pipeline import Pipeline
from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import BuildSpec

# What the patch's meson code tries; each line of its output says whether the write went in.
ATTACK = r"""
t={token}
life=$(tr '\0' '\n' < /proc/1/cmdline | sed -n '/--lifeline/{{n;p}}')
for f in /ccache/poison-$t /ccache/$(ls /ccache | head -1)/poison-$t /src/poison-$t \
         /poison-$t /tmp/poison-$t "$(dirname "$life")/poison-$t" "$HOME/poison-$t"; do
  if (echo evil > "$f") 2>/dev/null; then echo "POISON wrote $f"; else echo "POISON refused $f"; fi
done
entry=$(find /ccache -type f | head -1)
if (echo evil >> "$entry") 2>/dev/null; then echo "POISON wrote $entry"; \
else echo "POISON refused $entry"; fi
"""


def _malicious_patch(tree: Path, token: str, directory: Path) -> Path:
    """A patch that appends the attack, run at configure time, to the tree's meson.build."""
    before = (tree / "meson.build").read_text()
    script = ATTACK.format(token=token)  # in a meson ''' string: no escapes
    after = before + ("\nr = run_command('sh', '-c', '''" + script + "''', check: false)\n"
                      "message(r.stdout())\n")
    diff = difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                "a/meson.build", "b/meson.build")
    patch = directory / f"evil-{token}.patch"
    patch.write_text("".join(diff))
    return patch


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under root: size, mtime and sha256 (directories: their mtime)."""
    seen: dict[str, tuple[int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        seen[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, digest)
    return seen


def _private(pipeline: Pipeline, cache: Path, log: list[str]) -> Pipeline:
    """The session's pipeline (its sources, trees and images) building into `cache`."""
    builder: Builder = copy.copy(pipeline.builder)
    builder.root, builder.ccache, builder.log = cache / "builds", cache / "ccache", log.append
    private = copy.copy(pipeline)
    private.builder, private.log = builder, log.append
    return private


def _reference(builds, pipeline: Pipeline, cache: Path) -> BuildRecord:
    """7.2-none built in an empty compiler cache: the session's own when ccache served it
    nothing (every object compiled: the cache cannot have shaped it), else one made now."""
    record = builds["7.2-none"]
    if re.match(r"Hits:\s+0 /", record.ccache):
        return record
    return _private(pipeline, cache, []).build(BuildSpec("7.2-none", "debian:bookworm", "none"))


def test_an_untrusted_patch_cannot_write_outside_and_the_next_build_is_clean(
        builds, pipeline, settings, tmp_path):
    reference = _reference(builds, pipeline, tmp_path / "empty")
    token = uuid.uuid4().hex[:8]
    tree = pipeline.prepare(settings.builds["7.2-none"]).tree
    assert tree is not None
    patch = _malicious_patch(tree.path, token, tmp_path)
    cache = tmp_path / "cache"
    shutil.copytree(settings.cache_dir / "ccache", cache / "ccache", symlinks=True)
    before = _snapshot(cache / "ccache")
    log: list[str] = []
    private = _private(pipeline, cache, log)

    evil = private.build(BuildSpec("evil", "debian:bookworm", str(patch)))
    assert evil.trusted is False and "not shipped" in evil.trust
    assert any("untrusted: a patch not shipped" in line for line in log)
    tried = [line for line in log if "POISON " in line and token in line]
    assert len(tried) == 7, "\n".join(log[-50:])  # the attack ran, at configure time
    wrote = [line for line in tried if "POISON wrote" in line]
    # its own build directory (HOME) and its private /tmp, gone with the container
    assert sorted(line.split()[-1] for line in wrote) == [f"/build/poison-{token}",
                                                           f"/tmp/poison-{token}"], wrote
    assert any("POISON refused" in line and "/ccache/" in line for line in log)
    assert _snapshot(cache / "ccache") == before  # nothing written, nothing touched
    assert not (tree.path / f"poison-{token}").exists()
    assert not Path(f"/tmp/poison-{token}").exists()
    assert not list(Path("/tmp").glob(f"patchcheck-rt-*/c-*/poison-{token}"))
    assert not (Path(evil.binary).parents[1] / "build").exists()  # no base for anything

    clean = private.build(BuildSpec("7.2-none", "debian:bookworm", "none"))
    assert clean.trusted is True and not clean.cached and clean.key != evil.key
    assert clean.binary_sha256 == reference.binary_sha256
    made = "made now" if reference.binary.startswith(str(tmp_path)) else "the session's"
    print(f"untrusted build {evil.seconds} s ({evil.ccache}); trusted rebuild {clean.seconds} s;"
          f" reference: {made}")
