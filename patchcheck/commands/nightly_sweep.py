"""`invoke nightly.sweep`: each tracked branch (master) swept against each tracked release
tag (`latest-stable:N`), both as they are, and what changed since the previous night's sweep
of the same pair: its regressions (failing now, passing then) and fixes. The previous
night's run of each pair is kept in reports/sweep-nightly.json."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from patchcheck import paths
from patchcheck.commands.nightly import tracked_refs
from patchcheck.commands.sweep import SweepOptions, run_sweep
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.errors import UsageError
from patchcheck.exit_codes import EXIT_OK
from patchcheck.result.cells import SweepResults
from patchcheck.result.model import write_json
from patchcheck.run.matrix import new_run_id
from patchcheck.tree import fixes
from patchcheck.verdict.sweep import SweepVerdict

RELEASE = re.compile(r"^v\d+\.\d+\.\d+$")
HISTORY = "sweep-nightly.json"


def pairs(labels: dict[str, str]) -> list[tuple[str, str]]:
    """(tag, branch) for every release tag and every other ref tracked."""
    tags = [label for label in labels if RELEASE.match(label)]
    branches = [label for label in labels if not RELEASE.match(label)]
    if not tags or not branches:
        raise UsageError("nightly.sweep: the tracked refs need a branch and a release tag "
                         "(e.g. patchcheck.nightly.refs: [master, latest-stable:1]); have "
                         f"{', '.join(labels)}")
    return [(tag, branch) for tag in tags for branch in branches]


def previous(reports: Path, pair: str) -> SweepResults | None:
    """The previous night's sweep of this pair (None on the first night, or when it is gone)."""
    try:
        run = json.loads((reports / HISTORY).read_text()).get(pair, "")
        return SweepResults.read(paths.run_dir(reports, run) / "results.json") if run else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UsageError):
        return None


def remember(reports: Path, pair: str, run_id: str) -> None:
    path = reports / HISTORY
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    known[pair] = run_id
    write_json(path, known)


def changes(verdict: SweepVerdict, before: SweepResults | None) -> list[str]:
    if before is None:
        return ["first night: nothing to compare with"]
    d = verdict.diff
    if d is None or not (d.regressions or d.fixes):
        return ["no change since the previous night"]
    return ([f"regression: {f.title}: {f.ranges}: {f.error}" for f in d.regressions]
            + [f"fixed: {f.title}: {f.ranges}: {f.error}" for f in d.fixes])


def nightly_sweep(settings: Settings, remote: str, refs: tuple[str, ...], run_id: str,
                  machines: str | None, log: Callable[[str], None] = print) -> int:
    remote = remote or settings.nightly.remote
    if not remote:
        raise UsageError("nightly.sweep: no remote (set patchcheck.nightly.remote or --remote)")
    if run_id:
        paths.check_run_id(run_id)
    labels = tracked_refs(settings, remote, refs or settings.nightly.refs)
    run_id = run_id or f"nightly-sweep-{new_run_id()}"
    worst = EXIT_OK
    for tag, branch in pairs(labels):
        pair = f"{tag}..{branch}"
        before = previous(settings.reports_dir, pair)
        sides = (BuildSpec(tag, f"git:{remote}@{labels[tag]}", fixes.AS_IS),
                 BuildSpec(branch, f"git:{remote}@{labels[branch]}", fixes.AS_IS))
        this = paths.check_run_id(f"{run_id}-{paths.slug(f'{tag}-to-{branch}')}")
        code, verdict = run_sweep(settings, sides, SweepOptions(machines=machines), this,
                                  before, log)
        for line in changes(verdict, before):
            log(f"{pair}: {line}")
        remember(settings.reports_dir, pair, this)
        worst = max(worst, code)
    return worst
