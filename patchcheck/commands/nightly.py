"""`invoke nightly`: track refs of a QEMU remote, build what changed, run the full matrix,
keep a history of runs and say what changed since the previous night."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.errors import UsageError
from patchcheck.locks import file_lock
from patchcheck.paths import slug
from patchcheck.result.model import RunResults, write_json
from patchcheck.source import gitcmd
from patchcheck.source.specs import GitSources, version_tuple

HISTORY = "history.json"
_STABLE_TAG = re.compile(r"^v\d+\.\d+\.\d+$")


def tracked_refs(settings: Settings, remote: str, refs: Sequence[str]) -> dict[str, str]:
    """label -> ref for each tracked ref; `latest-stable:N` expands to the N newest vX.Y.Z tags."""
    mirror = GitSources(settings.cache_dir).mirror(remote)
    gitcmd.ok(mirror, "fetch", "--prune", "origin")  # offline: what the mirror has
    out: dict[str, str] = {}
    for ref in refs:
        if ref.startswith("latest-stable"):
            _, _, count = ref.partition(":")
            names = gitcmd.out(mirror, "for-each-ref", "--format=%(refname:lstrip=2)",
                               "refs/tags/").split()
            tags = sorted((name for name in names if _STABLE_TAG.match(name)),
                          key=lambda name: version_tuple(name[1:]))
            for tag in tags[-int(count or 1):]:
                out[tag] = tag
        else:
            out[slug(ref)] = ref
    if not out:
        raise UsageError("nightly: no refs to track (set patchcheck.nightly.refs)")
    return out


def nightly_builds(remote: str, refs: dict[str, str], fix: str) -> dict[str, BuildSpec]:
    builds = {}
    for label, ref in refs.items():
        source = f"git:{remote}@{ref}"
        for state in ("none", fix):
            name = slug(f"{label}-{_fix_label(state)}")
            builds[name] = BuildSpec(name, source, state)
    return builds


def _fix_label(state: str) -> str:
    """none, v2, ...; a patch file by its name without directory and suffix."""
    return Path(state).stem if "/" in state or "." in state else state


def nightly_settings(settings: Settings, builds: dict[str, BuildSpec]) -> Settings:
    matrix = dataclasses.replace(settings.matrix, builds=tuple(builds))
    return dataclasses.replace(settings, builds=builds, matrix=matrix)


def record_history(reports_dir: Path, run_dir: Path, log: Callable[[str], None] = print
                   ) -> list[str]:
    """Append the run to reports/history.json; return the changes since the previous entry."""
    run = RunResults.load(run_dir / "results.json")
    entry = {
        "run_id": run.run_id, "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commits": {name: b.get("commit", "") for name, b in sorted(run.builds.items())},
        "partial": run.partial,
        "cases": {c.case.id: c.observed.value for c in run.cases},
        "deviating": sorted(c.case.id for c in run.cases if c.deviates),
    }
    path = reports_dir / HISTORY
    with file_lock(reports_dir / f".{HISTORY}.lock"):
        history: list[dict[str, Any]] = []
        if path.is_file():
            try:
                history = json.loads(path.read_text())
            except ValueError:
                raise UsageError(f"{path} is corrupt; move it away to start a new history") \
                    from None
        history = [h for h in history if h.get("run_id") != run.run_id]
        changes = compare(history[-1], entry) if history else ["first run: nothing to compare"]
        entry["changes"] = changes
        history.append(entry)
        write_json(path, history)
    (run_dir / "changes.md").write_text("# Changes since the previous run\n\n"
                                        + "\n".join(f"- {c}" for c in changes) + "\n")
    for line in changes:
        log(f"change: {line}")
    return changes


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changes = []
    for name, commit in after["commits"].items():
        old = before.get("commits", {}).get(name)
        if old and old != commit:
            changes.append(f"build {name}: {old[:12]} -> {commit[:12]}")
    old_cases, new_cases = before.get("cases", {}), after["cases"]
    for cid in sorted(set(old_cases) & set(new_cases)):
        if old_cases[cid] != new_cases[cid]:
            changes.append(f"flipped {cid}: {old_cases[cid]} -> {new_cases[cid]}")
    added = sorted(set(new_cases) - set(old_cases))
    removed = sorted(set(old_cases) - set(new_cases))
    if added:
        changes.append(f"{len(added)} new cases (e.g. {added[0]})")
    if removed:
        changes.append(f"{len(removed)} cases gone (e.g. {removed[0]})")
    return changes or ["no change"]
