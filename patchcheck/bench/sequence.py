"""`invoke bench.sequence`: the goals of commits in sequence, as ratios measured in one run.

- check of a commit whose parent's builds are cached, against the same check with no cached
  build to start from (ccache warm in both): the goal is at most 0.3x;
- bisect over a history of 16 commits with nothing cached, against one cold minimal build
  of the same tree (empty cache, empty ccache): the goal is at most 2.5x.

The history is made on top of the Debian bookworm import (`make_history`: unrelated C
changes, one commit that does not build and its repair, one that applies the scenario's
first known fix); the bisection watches the scenario's `defaults.watch` case. The tests use
the same history.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck.bench.figures import _timed, fresh_cache, machine, record
from patchcheck.config.settings import Settings
from patchcheck.engine.registry import RuntimeFactory
from patchcheck.source import gitcmd

FILES = ["hw/usb/hcd-xhci.c", "hw/pci/pci.c", "hw/pci/pcie_port.c", "hw/core/qdev.c",
         "hw/i386/pc_q35.c", "migration/savevm.c", "hw/pci/pci_bridge.c", "softmmu/vl.c",
         "hw/pci/pcie.c", "hw/usb/bus.c", "hw/pci-bridge/pcie_root_port.c", "hw/core/machine.c",
         "hw/isa/lpc_ich9.c", "hw/pci-host/q35.c"]
# 1-based positions; git bisect's choices over 16 commits (the skip of the commit that does
# not build included) are deterministic: 8, 12, 10 (skipped), 9, 11.
BROKEN_AT, REPAIRED_AT, FIX_AT, COUNT = 10, 11, 12, 16
FIX_SUBJECT = "the fix"  # the subject of the commit that applies the known fix


def make_history(source: Path, target: Path, fix_patch: Path) -> tuple[str, list[str]]:
    """A clone of `source` with COUNT commits on top; (base commit, commits oldest first)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    gitcmd.out(target.parent, "clone", "-q", str(source.absolute()), str(target.absolute()))
    base = gitcmd.out(target, "rev-parse", "HEAD")
    files = iter(FILES)
    xhci = target / "hw/usb/hcd-xhci.c"
    breakage = "\n#error this commit does not build\n"
    for n in range(1, COUNT + 1):
        if n == FIX_AT:
            gitcmd.out(target, "apply", "--index", str(fix_patch))
            gitcmd.out(target, "commit", "-q", "-m", FIX_SUBJECT)
        elif n == BROKEN_AT:
            xhci.write_text(xhci.read_text() + breakage)
            gitcmd.out(target, "commit", "-q", "-am", "xhci: a change that does not build")
        elif n == REPAIRED_AT:
            xhci.write_text(xhci.read_text().replace(breakage, "\n"))
            gitcmd.out(target, "commit", "-q", "-am", "xhci: repair the build")
        else:
            name = next(files)
            path = target / name
            path.write_text(path.read_text() + f"\nint patchcheck_series_{n} = {n};\n")
            gitcmd.out(target, "commit", "-q", "-am", f"{name}: unrelated change {n}")
    return base, gitcmd.out(target, "rev-list", "--reverse", f"{base}..HEAD").split()


def seconds(func: Callable[[], Any]) -> float:
    """How long `func` took (bench._timed, without its result)."""
    return _timed(func)[1]


def bench_sequence(settings: Settings, config_tree: dict[str, Any],
                   runtime_factory: RuntimeFactory, log: Callable[[str], None] = print
                   ) -> dict[str, Any]:
    from patchcheck.build.pipeline import Pipeline
    from patchcheck.config.settings import BuildSpec
    from patchcheck.scenarios.registry import get
    from patchcheck.sequence.bisect import bisect
    from patchcheck.sequence.casespec import parse
    from patchcheck.sequence.check import check

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="bench-seq-", dir=settings.cache_dir.parent))
    caches = {name: fresh_cache(settings, f"bench-seq-{name}-", settings.cache_dir)
              for name in ("cold", "bisect", "parent", "nobase")}
    quiet: Callable[[str], None] = lambda line: None  # noqa: E731
    try:
        with runtime_factory(f"bench-seq-{stamp}") as runtime:
            cold = dataclasses.replace(settings, cache_dir=caches["cold"])
            source = Pipeline(runtime, cold, quiet).resolve("debian:bookworm")
            scenario = get(settings.matrix.scenario)
            base, commits = make_history(source.repo, work / "qemu",
                                         next(iter(scenario.fixes().values())))
            repo = str(work / "qemu")
            # one cold minimal build of the base tree: empty cache, empty ccache
            cold_s = seconds(lambda: Pipeline(runtime, cold, quiet).build(
                BuildSpec("base", "debian:bookworm", "none")))
            # check with the parent's builds cached (its cache's ccache warm from it) ...
            parent = dataclasses.replace(settings, cache_dir=caches["parent"])
            check(parent, runtime, repo, commits[0], "", quiet)
            parent_s = seconds(lambda: check(parent, runtime, repo, commits[1], "", quiet))
            # ... and with no build to start from, the same ccache (warm)
            shutil.rmtree(caches["nobase"] / "ccache", ignore_errors=True)
            shutil.copytree(caches["parent"] / "ccache", caches["nobase"] / "ccache")
            nobase = dataclasses.replace(settings, cache_dir=caches["nobase"])
            nobase_s = seconds(lambda: check(nobase, runtime, repo, commits[1], "", quiet))
        # bisect over the 16 commits with nothing cached at all
        bisect_settings = dataclasses.replace(settings, cache_dir=caches["bisect"])
        tree = {**config_tree, "cache_dir": str(caches["bisect"])}
        bisect_s = seconds(lambda: bisect(bisect_settings, tree, runtime_factory, repo, base,
                                         commits[-1], parse(scenario.defaults.watch),
                                         f"bench-{stamp}-bisect", quiet))
        result = {
            "date": stamp, "engine": settings.runtime, "machine": machine(), "commits": len(commits),
            "cold_build_s": cold_s,
            "check_parent_cached_s": parent_s, "check_no_base_s": nobase_s,
            "check_ratio": round(parent_s / nobase_s, 3), "check_goal": 0.3,
            "bisect_s": bisect_s, "bisect_ratio_to_cold_build": round(bisect_s / cold_s, 3),
            "bisect_goal": 2.5,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for path in caches.values():
            shutil.rmtree(path, ignore_errors=True)
    record(settings.reports_dir / f"bench-sequence-{stamp}.json", result, table(result))
    return result


def table(r: dict[str, Any]) -> str:
    rows = [
        ("machine", f"{r['machine']['cpus']} CPUs, {r['machine']['memory_gib']} GiB"),
        ("check, parent's builds cached", f"{r['check_parent_cached_s']:.1f} s"),
        ("check, no cached base (ccache warm)", f"{r['check_no_base_s']:.1f} s"),
        ("check ratio (goal <= 0.3)", f"{r['check_ratio']:.2f}x"),
        ("one cold minimal build", f"{r['cold_build_s']:.0f} s"),
        (f"bisect over {r['commits']} commits, nothing cached", f"{r['bisect_s']:.0f} s"),
        ("bisect ratio (goal <= 2.5)", f"{r['bisect_ratio_to_cold_build']:.2f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
