"""`invoke series` and `invoke bisect`: their options checked before any engine is
contacted, then the package's series and bisect (commands.py is the same for the other
tasks)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from patchcheck import paths
from patchcheck.commands.tasks import _git_repository, log
from patchcheck.config.settings import Settings, plain
from patchcheck.engine.registry import container_runtime
from patchcheck.errors import UsageError
from patchcheck.scenarios import registry as scenarios
from patchcheck.source.commits import History, check_clean, parse_range
from patchcheck.source.specs import GitSources


def _repo(repo: str, task: str) -> str:
    if not repo:
        raise UsageError(f"{task}: give --repo PATH (a QEMU git repository)")
    if not Path(repo).is_dir():
        raise UsageError(f"{task}: --repo {repo} is not a directory")
    _git_repository(repo, f"{task}: --repo")
    return str(Path(repo).resolve())


def series(settings: Settings, repo: str, range_text: str, machines: str = "") -> int:
    from patchcheck.run.matrix import new_run_id
    from patchcheck.sequence.series import run_series

    repo = _repo(repo, "series")
    base, tip = parse_range(range_text)
    check_clean(repo, (base, tip))
    History(GitSources(settings.cache_dir), repo).between(base, tip)  # no commits: exit 2
    with container_runtime(settings, new_run_id()) as runtime:
        return run_series(settings, runtime, repo, range_text, log, machines)


def bisect(settings: Settings, config: Any, repo: str, good: str, bad: str, case_text: str,
           run_id: str = "") -> int:
    from patchcheck.run.matrix import new_run_id
    from patchcheck.sequence.bisect import bisect as run_bisect
    from patchcheck.sequence.casespec import parse

    repo = _repo(repo, "bisect")
    if not good or not bad:
        raise UsageError("bisect: give --good REV (the older end) and --bad REV (the newer)")
    scen = scenarios.get(settings.matrix.scenario)
    guests = [*scen.actions(), *(["linux"] if scen.linux_guest else [])]
    case = parse(case_text, settings.builds, guests)
    run_id = run_id or f"bisect-{new_run_id()}"
    paths.check_run_id(run_id)
    check_clean(repo, (good, bad))
    History(GitSources(settings.cache_dir), repo).ordered(good, bad)  # swapped: exit 2
    tree = plain(config["patchcheck"])  # for the predicate's process, which runs elsewhere
    tree.update(cache_dir=str(settings.cache_dir.resolve()),
                reports_dir=str(settings.reports_dir.resolve()))
    tree.setdefault("matrix", {})["scenario"] = settings.matrix.scenario
    return run_bisect(settings, tree, partial(container_runtime, settings), repo, good, bad,
                      case, run_id, log)


def bench_sequence(settings: Settings, config: Any) -> int:
    from patchcheck.bench.sequence import bench_sequence as run_bench
    from patchcheck.exit_codes import EXIT_OK

    tree = plain(config["patchcheck"])
    tree.update(reports_dir=str(settings.reports_dir.resolve()))
    tree.setdefault("matrix", {})["scenario"] = settings.matrix.scenario
    run_bench(settings, tree, partial(container_runtime, settings), log)
    return EXIT_OK
