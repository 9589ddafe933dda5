"""`invoke check`: a reviewer's one-commit check, usable under `git bisect run`.

Builds the commit without and with the fix (a given patch or mbox; or, when the commit
already carries a known fix, with that fix reverted for the "without" build), runs a small
matrix (the boundary machine types, the scenario's check guest action, all four directions) and prints the
verdict and a Tested-by-style summary. The verdict and the exit code are
patchcheck.decision's, read back from the run's results.json and probe.json: the same
decision `invoke matrix` made for the run.
"""

from __future__ import annotations

from collections.abc import Callable

import git

from . import fixes, scenarios, trees
from .config import BuildSpec, Settings
from .decision import Decision, decide_run, read_semantics
from .errors import BuildFailed, UsageError
from .matrix import order
from .minirun import small_matrix
from .outcome import CHECK_CANNOT_TEST
from .pipeline import Pipeline
from .results import RunResults
from .run import new_run_id
from .runtime import Runtime
from .sources import GitSources, GitSpec


def fix_states(settings: Settings, spec: GitSpec, patch: str) -> tuple[str, str, str]:
    """(without, with, note): the fix states of the two builds. Without a patch: the fix the
    commit already carries (reverted for the build without it), else the scenario's first
    known fix."""
    known = fixes.known_fixes(settings.matrix.scenario)
    if patch:
        fixes.resolve(patch, known)  # a missing or malformed file: a usage error, before builds
        return "none", patch, f"patch {patch}"
    tree = GitSources(settings.cache_dir).resolve(spec)
    prepared = trees.prepare(tree, "none", settings.cache_dir, known)
    if prepared.fix.applied == "reverted" and prepared.fix.patch:
        return "none", prepared.fix.patch, f"{prepared.fix.patch}, already in the commit"
    if not known.patches:
        raise UsageError(f"scenario {known.scenario} knows no fix: give --patch")
    first = known.patches[0].name
    return "none", first, f"{first} (the {known.scenario} scenario's fix), applied to the commit"


def check(settings: Settings, runtime: Runtime, repo: str, commit: str, patch: str,
          log: Callable[[str], None] = print) -> int:
    spec = GitSpec(repo, commit)
    without, with_fix, note = fix_states(settings, spec, patch)
    print(f"fix: {note}")  # asserted before any build: also for a commit that cannot be built
    source = str(spec)
    builds = {"without": BuildSpec("without", source, without),
              "with": BuildSpec("with", source, with_fix)}
    pipeline = Pipeline(runtime, settings, log)
    try:
        for b in builds.values():
            pipeline.build(b)  # build up front: a commit that cannot be built is "untestable"
    except (BuildFailed, UsageError) as exc:
        print(f"cannot test {commit}: {exc}")
        return CHECK_CANNOT_TEST
    run_id = f"check-{_short(repo, commit)}-{new_run_id()}"
    run, run_dir = small_matrix(settings, runtime, builds, ("all",),
                                {check_guest(settings): "boundary"}, run_id, log)
    decision = decide_run(run, read_semantics(run_dir))
    commit = f"{commit} ({str(run.builds.get('with', {}).get('commit', ''))[:12]})"
    print()
    print(summary(run, repo, commit, note, decision))
    return decision.check_exit


def check_guest(settings: Settings) -> str:
    """The guest action a check (and a series) runs: the scenario's choice, else its first."""
    scen = scenarios.get(settings.matrix.scenario)
    return scen.defaults.check_guest or next(iter(scen.actions()))


def _short(repo: str, commit: str) -> str:
    return "".join(c for c in commit if c.isalnum())[:12]


def summary(run: RunResults, repo: str, commit: str, note: str, decision: Decision) -> str:
    """A paragraph for a qemu-devel reply, and the Tested-by line when it is deserved."""
    build = run.builds.get("with", {})
    types = order({c.machine for c in run.cases})
    words = scenarios.get(str(run.settings.get("scenario", ""))).words
    failing = [c for c in run.cases if c.observed.value == "failed"
               and not (c.destination if words.fix_side == "destination" else c.source).has_fix]
    error = next(iter(failing[0].destination_error.splitlines()), "") if failing else ""
    lines = [f"Tested {commit} (QEMU {build.get('qemu_version', '?')}) with {note}:",
             f"{words.reproducer} ({_guests(run)} guest action, "
             f"{run.settings.get('accel', 'tcg')}), "
             f"all four directions between the builds without and with the fix, on "
             f"{', '.join(types)}."]
    if failing:
        lines.append(f"Without the fix at the {words.fix_side} it fails ({len(failing)} "
                     f"case{'s' if len(failing) != 1 else ''}): "
                     f"{error.split(': ', 1)[-1]}")
    lines += decision.words
    if decision.tested_by:
        lines += ["", f"Tested-by: {_identity(repo)}"]
    return "\n".join(lines)


def _guests(run: RunResults) -> str:
    return ", ".join(sorted({c.guest for c in run.cases})) or "no"


def _identity(repo: str) -> str:
    try:
        reader = git.Repo(repo).config_reader()
        name = reader.get_value("user", "name", "")
        email = reader.get_value("user", "email", "")
    except Exception:  # noqa: BLE001 - no repository or no identity: a placeholder
        name = email = ""
    return f"{name or 'Your Name'} <{email or 'you@example.com'}>"
