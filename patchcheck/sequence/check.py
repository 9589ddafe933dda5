"""`invoke check`: a reviewer's one-commit check, usable under `git bisect run`.

Builds the commit without and with the fix (a given patch or mbox; or, when the commit
already carries a known fix, with that fix reverted for the "without" build), runs a small
matrix (the boundary machine types, the scenario's check guest action, all four directions) and prints the
verdict and a Tested-by-style summary. The verdict and the exit code are
patchcheck.verdict.decision's, read back from the run's results.json and probe.json: the same
decision `invoke matrix` made for the run.
"""

from __future__ import annotations

from collections.abc import Callable

from patchcheck.build.pipeline import Pipeline
from patchcheck.config.settings import BuildSpec, Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed, UsageError
from patchcheck.exit_codes import CHECK_CANNOT_TEST
from patchcheck.run.matrix import new_run_id, small_matrix
from patchcheck.scenarios import registry as scenarios
from patchcheck.source import gitcmd
from patchcheck.source.commits import check_clean
from patchcheck.source.specs import GitSources, GitSpec, Tree
from patchcheck.tree import fixes
from patchcheck.tree import prepare as trees
from patchcheck.verdict.decision import CHECK, decide_dir
from patchcheck.verdict.reply import reply


def fix_states(settings: Settings, tree: Tree, patch: str) -> tuple[str, str, str]:
    """(without, with, note): the fix states of the two builds. "Without" is always the
    commit with any known fix of the scenario reverted (the tree that has the bug); "with"
    is that tree plus the given patch, or, without a patch, the fix the commit carries
    (else the scenario's first known fix) on it. FixStateUnknown when the commit's fix
    state cannot be told."""
    known = fixes.known_fixes(settings.matrix.scenario)
    prepared = trees.prepare(tree, "none", settings.cache_dir, known)
    carried = prepared.fix.patch if prepared.fix.applied == "reverted" else None
    if patch:
        base = (f"the commit with {carried} (which it carries) reverted" if carried else
                "the commit, which carries no known fix")
        return "none", f"{fixes.ON_BUG}{patch}", f"patch {patch}, applied to {base}"
    if carried:
        return "none", carried, f"{carried}, already in the commit"
    if not known.patches:
        raise UsageError(f"scenario {known.scenario} knows no fix: give --patch")
    first = known.patches[0].name
    return "none", first, f"{first} (the {known.scenario} scenario's fix), applied to the commit"


def check(settings: Settings, runtime: Runtime, repo: str, commit: str, patch: str,
          log: Callable[[str], None] = print) -> int:
    if patch:  # a missing or malformed file is the user's input: exit 2, before any work
        fixes.resolve(patch, fixes.known_fixes(settings.matrix.scenario))
    check_clean(repo, (commit,))  # uncommitted changes on the HEAD asked for: in no commit
    tree = GitSources(settings.cache_dir).resolve(GitSpec(repo, commit))
    print(f"commit: {tree.commit} ({commit}, QEMU {tree.qemu_version})")
    source = str(GitSpec(repo, tree.commit))  # the commit resolved once: never again
    pipeline = Pipeline(runtime, settings, log)
    try:
        without, with_fix, note = fix_states(settings, tree, patch)
        print(f"fix: {note}")  # asserted before any build: also for a commit that cannot be built
        builds = {"without": BuildSpec("without", source, without),
                  "with": BuildSpec("with", source, with_fix)}
        for b in builds.values():
            pipeline.build(b)  # build up front: a commit that cannot be built is "untestable"
    except (BuildFailed, UsageError) as exc:
        print(f"cannot test {commit}: {exc}")
        return CHECK_CANNOT_TEST
    run_id = f"check-{_short(repo, commit)}-{new_run_id()}"
    run, run_dir = small_matrix(settings, runtime, builds, ("all",),
                                {check_guest(settings): "boundary"}, run_id, log, task=CHECK)
    decision = decide_dir(run, run_dir)
    print()
    print(reply(run, f"{commit} ({tree.commit[:12]})", note, decision, _identity(repo)))
    return decision.check_exit


def check_guest(settings: Settings) -> str:
    """The guest action a check (and a series) runs: the scenario's choice, else its first."""
    scen = scenarios.get(settings.matrix.scenario)
    return scen.defaults.check_guest or next(iter(scen.actions()))


def _short(repo: str, commit: str) -> str:
    return "".join(c for c in commit if c.isalnum())[:12]


def _identity(repo: str) -> str:
    name, email = (gitcmd.run(repo, "config", "--get", key, user=True).stdout.strip()
                   for key in ("user.name", "user.email"))
    return f"{name or 'Your Name'} <{email or 'you@example.com'}>"
