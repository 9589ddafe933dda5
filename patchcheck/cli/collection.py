"""patchcheck's tasks: parse options, call the package, exit with its code. `invoke` in the
checkout (tasks.py) and the installed `patchcheck` command (patchcheck.cli.program) run this
collection; importing it changes nothing of invoke's.

Run `invoke --list` (or `patchcheck --list`) for the tasks and `--help TASK` for options.
"""

from __future__ import annotations

from invoke import Collection, Context, Exit, task

from patchcheck.cli.invoke_compat import fail
from patchcheck.commands import sequence as sequence_commands
from patchcheck.commands import tasks as commands
from patchcheck.errors import UsageError
from patchcheck.exit_codes import CHECK_NO_VERDICT
from patchcheck.scenarios import registry as scenarios


def _known_fixes() -> str:
    """'name: fix, fix; name: fix' over the registered scenarios, for --help."""
    return "; ".join(f"{name}: {', '.join(scenarios.get(name).fixes())}"
                     for name in scenarios.names())


SCENARIO_HELP = (f"the bug: {' or '.join(scenarios.names())} "
                 "(default: patchcheck.matrix.scenario)")


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def _exit(code: int) -> None:
    if code:
        raise Exit(code=code)


def _scenario(c: Context, name: str) -> None:
    """`--scenario NAME`: the run's patchcheck.matrix.scenario; an unknown name is the
    option's error (the configuration file did not say it)."""
    if not name:
        return
    if name not in scenarios.REGISTRY:
        fail(UsageError(f"--scenario '{name}': not a known scenario "
                        f"(known: {', '.join(scenarios.names())})"))
    c.config["patchcheck"].setdefault("matrix", {})["scenario"] = name


@task(help={"generation": "only this builder generation (bookworm, trixie, ...); default: all"})
def images(c: Context, generation: str = "") -> None:
    """Build the builder images (rebuilt only when their Dockerfile changes)."""
    _exit(commands.guarded(commands.images, c.config, generation))


@task(help={"suite": "Debian suite to create debian:<suite> for; default: every generation"})
def base(c: Context, suite: str = "") -> None:
    """Create missing debian:<suite> base images (pull, or debootstrap from the host's mirror)."""
    _exit(commands.guarded(commands.base, c.config, suite))


@task(help={
    "source": "source spec: git:<url-or-path>@<ref> or debian:<suite>[=<version>]",
    "fix": f"fix state: none, reverted, a known fix of the scenario ({_known_fixes()}), or a "
           "patch/mbox file (default: none)",
    "name": "a build of the scenario or the configuration (patchcheck.builds), instead of "
            "--source",
    "refresh": "look for a newer Debian source package instead of the newest imported one",
    "scenario": "the bug whose fixes and builds are meant (default: patchcheck.matrix.scenario)",
})
def build(c: Context, source: str = "", fix: str = "none", name: str = "",
          refresh: bool = False, scenario: str = "") -> None:
    """Build QEMU from SOURCE with fix state FIX in a container; print the binary's path."""
    _scenario(c, scenario)
    _exit(commands.guarded(commands.build, c.config, source, fix, name, refresh))


@task(help={
    "builds": "comma-separated build names (default: patchcheck.matrix.builds)",
    "pairs": "all, same-tree, cross, or SRC->DST, comma-separated (default from config)",
    "machines": "machine types: a list (6.0,7.2) or a range (5.2..7.2); default: all common",
    "guest": "guest actions, comma-separated: synthetic, linux, none (default from config)",
    "accel": "auto, kvm or tcg (auto: KVM only after proving it runs a guest here)",
    "jobs": "cases run in parallel (default: CPUs + 1)",
    "timeout": "seconds before a case is an error (default: 60)",
    "run_id": "name of the run folder under reports/ (default: a timestamp)",
    "shard": "run only the K-th of N deterministic slices of the cases, as K/N",
    "resume": "resume an interrupted run (default: the latest): only its unfinished cases run",
    "scenario": SCENARIO_HELP,
}, optional=["resume"])
def matrix(c: Context, builds: str = "", pairs: str = "", machines: str | None = None,
           guest: str = "", jobs: str = "", timeout: str = "", run_id: str = "", shard: str = "",
           resume: str | bool = False, accel: str = "", scenario: str = "") -> None:
    """Build what is missing, run the migration matrix, write junit.xml and results.json."""
    _scenario(c, scenario)
    _exit(commands.guarded(
        commands.matrix, c.config, builds=_split(builds), pairs=_split(pairs),
        machines=machines, guests=_split(guest), jobs=jobs, timeout=timeout, run_id=run_id,
        shard=shard, resume=resume, accel=accel))


images_ns = Collection("images")
images_ns.add_task(images, name="build", default=True)
images_ns.add_task(base)
@task(help={
    "repo": "a local QEMU git clone (used offline)",
    "commit": "the commit to test: any rev as your repository means it (HEAD, a branch, "
              "HEAD~1), also one not reachable from a branch",
    "patch": "the fix as a patch file or git format-patch mbox, judged on the commit with "
             "any known fix reverted (default: the fix the commit carries, else v2)",
    "scenario": SCENARIO_HELP,
})
def check(c: Context, repo: str = "", commit: str = "HEAD", patch: str = "",
          scenario: str = "") -> None:
    """Reviewer check of one commit: exit 0 the fix works, 1 it does not, 125 untestable,
    128 no verdict (git bisect run aborts), 2 bad input."""
    _scenario(c, scenario)
    _exit(commands.guarded(commands.check, c.config, repo, commit, patch,
                           no_verdict=CHECK_NO_VERDICT))


@task(help={
    "repo": "a QEMU git repository (your clone)",
    "range": "BASE..TIP: the series' commits (BASE itself is the reference build)",
    "machines": "machine-type filter (default: the scenario's boundary types)",
    "scenario": SCENARIO_HELP,
})
def series(c: Context, repo: str = "", range: str = "", machines: str = "",
           scenario: str = "") -> None:
    """Every commit of a range built as it is and checked; exit 0 all as the model says,
    1 one deviates, 125 some commit does not build."""
    _scenario(c, scenario)
    _exit(commands.guarded(sequence_commands.series, c.config, repo, range, machines))


@task(help={
    "repo": "a QEMU git repository (your clone)",
    "good": "the older end (an ancestor of --bad)",
    "bad": "the newer end",
    "case": "the case to watch: MACHINE:SOURCE->DESTINATION[GUEST], SELF = the commit "
            "under test, e.g. 'pc-q35-6.0:7.2-v2->SELF[synthetic]'",
    "run_id": "report folder name (default: bisect-<timestamp>)",
    "scenario": SCENARIO_HELP,
})
def bisect(c: Context, repo: str = "", good: str = "", bad: str = "", case: str = "",
           run_id: str = "", scenario: str = "") -> None:
    """The first commit between --good and --bad where the case changes outcome (git bisect
    run, in patchcheck's own worktree); resumes an interrupted bisection."""
    _scenario(c, scenario)
    _exit(commands.guarded(sequence_commands.bisect, c.config, c.config, repo, good, bad,
                           case, run_id))


@task(help={
    "remote": "QEMU git remote (URL or path) to track (default: patchcheck.nightly.remote)",
    "ref": "a ref to track; give it once per ref (default: patchcheck.nightly.refs); "
           "latest-stable:N = the N newest vX.Y.Z tags",
    "fix": "fix state of the with-fix builds (default: patchcheck.nightly.fix)",
    "shard": "run only the K-th of N slices (history is then written by nightly.history)",
    "run_id": "run folder name (default: nightly-<timestamp>)",
    "build_only": "only build what changed (the pipeline's build stage)",
    "no_history": "do not append this run to reports/history.json",
    "machines": "machine-type filter, as for matrix",
    "scenario": SCENARIO_HELP,
    "export_to": "with --build-only: write the builds to this file (an artifact for the shards)",
    "import_from": "take every build from this file (written by --export-to); build nothing",
}, iterable=["ref"])
def nightly(c: Context, remote: str = "", ref: list[str] | None = None, fix: str = "",
            shard: str = "", run_id: str = "", build_only: bool = False,
            no_history: bool = False, machines: str | None = None, scenario: str = "",
            export_to: str = "", import_from: str = "") -> None:
    """Nightly: build the tracked refs without and with the fix, run the full matrix, and say
    what changed since the previous run."""
    _scenario(c, scenario)
    _exit(commands.guarded(commands.nightly, c.config, remote, tuple(ref or ()), fix, shard,
                           run_id, build_only, not no_history, machines,
                           artifact_out=export_to, artifact_in=import_from))


@task(help={
    "builds": "the two sides A,B: configured build names or debian-pkg:<suite>[=<version>] "
              "(default: patchcheck.sweep.builds)",
    "machines": "machine types: names, q35, i440fx, or a range of one family "
                "(pc-q35-5.2..7.2); default: every pc-q35 and pc-i440fx type both know",
    "devices": "PCI device types, comma-separated (default: every type both sides have)",
    "against": "an earlier sweep (run id or results.json): list regressions and fixes since",
    "run_id": "name of the run folder under reports/ (default: sweep-<timestamp>)",
    "scenario": "the scenario whose builds --builds names (its fix states; default: "
                "patchcheck.matrix.scenario)",
    "base": "what a patch changes: A = this rev of --repo (or a source spec such as "
            "debian:trixie), B = A with --patch applied",
    "patch": "with --base: the patch (a patch file or git format-patch mbox)",
    "repo": "with --base: a local QEMU git clone",
    "guest": "linux: also boot a Linux guest with each group's devices before it migrates",
})
def sweep(c: Context, builds: str = "", machines: str | None = None, devices: str = "",
          against: str = "", run_id: str = "", scenario: str = "", base: str = "",
          patch: str = "", repo: str = "", guest: str = "") -> None:
    """Migrate every PCI device type between two QEMUs, A->B, B->A and A->A, on every machine
    type both know; exit 0 nothing unexpected, 1 an unknown failure or a regression, 3 no
    answer."""
    _scenario(c, scenario)
    from patchcheck.commands.sweep import SweepOptions
    from patchcheck.commands.sweep import sweep as run_sweep

    _exit(commands.guarded(run_sweep, c.config, SweepOptions(
        _split(builds), machines, _split(devices), against, run_id, base, patch, repo, guest)))


@task(name="sweep", help={
    "remote": "QEMU git remote (default: patchcheck.nightly.remote)",
    "ref": "a ref to track (repeatable; default: patchcheck.nightly.refs): branches are swept "
           "against the release tags (latest-stable:N)",
    "run_id": "run folder prefix (default: nightly-sweep-<timestamp>)",
    "machines": "machine types, as for sweep",
}, iterable=["ref"])
def nightly_sweep(c: Context, remote: str = "", ref: list[str] | None = None, run_id: str = "",
                  machines: str | None = None) -> None:
    """Sweep each tracked branch against each tracked release tag and say what changed since
    the previous night (exit 1 on a regression, or on an unknown finding the first night)."""
    from patchcheck.commands.nightly_sweep import nightly_sweep as run_nightly

    _exit(commands.guarded(run_nightly, c.config, remote, tuple(ref or ()), run_id, machines))


@task(help={"run": "the (merged) run to append to reports/history.json (default: latest)"})
def history(c: Context, run: str = "") -> None:
    """Append a run to reports/history.json and print what changed since the previous one."""
    _exit(commands.guarded(commands.history, c.config, run))


@task(help={"run": "run id under reports/ (default: latest) or a run directory",
            "open": "print the path of the run's index.html"})
def report(c: Context, run: str = "", open: bool = False) -> None:
    """Regenerate junit.xml, index.html and summary.md from a run's results.json (no re-run)."""
    _exit(commands.guarded(commands.report, c.config, run, open))


@task(help={"run": "a shard's run id or directory; give it once per shard",
            "out": "run id (under reports/) of the merged run (default: merged-<timestamp>)"},
      iterable=["run"])
def merge(c: Context, run: list[str], out: str = "") -> None:
    """Merge shard runs into one results.json, junit.xml and report:
    invoke report.merge --run shard-1 --run shard-2 [--out nightly]"""
    _exit(commands.guarded(commands.merge, c.config, list(run), out))


@task(help={"older_than": "also remove cache entries not used for this many days",
            "all": "remove every cache entry (builds, worktrees, imports, mirrors, ccache)"})
def clean(c: Context, older_than: str = "", all: bool = False) -> None:
    """Report the caches' sizes; remove half-written entries, containers of dead runs, and
    with --older-than/--all, cache entries."""
    _exit(commands.guarded(commands.clean, c.config, older_than, all))


@task(help={"builds": "comma-separated build names (default: patchcheck.matrix.builds); the "
                      "tree's without-fix build is added",
            "machines": "6.0,7.2 or 5.2..7.2 (default: newest <= 6.0 and newest)",
            "scenario": SCENARIO_HELP})
def probe(c: Context, builds: str = "", machines: str = "", scenario: str = "") -> None:
    """Probe the scenario's device registers without and with each fix: which bits the
    guest can write, against the PCIe specification; probe.json, semantics.xml, probe.md."""
    _scenario(c, scenario)
    _exit(commands.guarded(commands.probe, c.config, builds=_split(builds),
                           machines=_split(machines)))


@task(help={"machines": "machine-type filter for the matrix figures (default: every type)",
            "repeat": "how many warm matrix runs to take the median of (default 3)",
            "first_run": "the cold matrix as on a fresh machine: removes the images patchcheck "
                         "made, so that it makes them again and fetches the sources"})
def bench(c: Context, machines: str = "", repeat: str = "3", first_run: bool = False) -> None:
    """Measure cold (minimal and default devices), incremental and cached builds, case times,
    matrix cold and warm, peak memory; record reports/bench-<date>.json and print the table
    (takes 30-40 min on 2 cores)."""
    _exit(commands.guarded(commands.bench, c.config, machines, repeat, first_run))


@task(name="upstream", help={"repo": "a clone (or URL) of upstream QEMU",
                             "ref": "the upstream ref to build (default v7.2.0)"})
def bench_upstream(c: Context, repo: str = "", ref: str = "v7.2.0") -> None:
    """Measure a cold build of upstream QEMU next to Debian's 7.2 (same configuration, each
    in an empty cache) and the fetch of its subprojects, cold and cached; record
    reports/bench-upstream-<date>.json and print the table."""
    _exit(commands.guarded(commands.bench_upstream, c.config, repo, ref))


@task(name="sequence")
def bench_sequence(c: Context) -> None:
    """Measure a check whose parent's builds are cached against one with no cached base, and a
    bisection over 16 commits against one cold build; record reports/bench-sequence-<date>.json."""
    _exit(commands.guarded(sequence_commands.bench_sequence, c.config, c.config))


@task(name="probe", help={"repeat": "runs of each method, alternated (default 3)",
                          "scenario": SCENARIO_HELP})
def bench_probe(c: Context, repeat: str = "3", scenario: str = "") -> None:
    """Time the register-semantics probe of the default builds by each method (a fresh QEMU
    per experiment, or QEMUs reset between experiments) and check that both give the same
    per-bit results; record reports/bench-probe-<date>.json."""
    _scenario(c, scenario)
    _exit(commands.guarded(commands.bench_probe, c.config, repeat))


@task(name="sweep", help={"no_build": "skip the yardstick (a cold default-device-set build)"})
def bench_sweep(c: Context, no_build: bool = False) -> None:
    """Time a full sweep of Debian's packaged 7.2 against 10.0 against one cold build of 7.2
    with QEMU's default device set (goal: at most 2x its CPU); record
    reports/bench-sweep-<date>.json (exit 1 when over the goal)."""
    _exit(commands.guarded(commands.bench_sweep, c.config, not no_build))


@task(name="trust", help={"repeat": "runs of each figure, alternated (default 3)"})
def bench_trust(c: Context, repeat: str = "3") -> None:
    """Measure what an untrusted build's read-only compiler cache costs: full and fix builds
    trusted against untrusted, and the next trusted build of the same tree after each;
    record reports/bench-trust-<date>.json."""
    _exit(commands.guarded(commands.bench_trust, c.config, repeat))


ns = Collection(build, matrix, check, series, bisect, clean, probe, sweep)
bench_ns = Collection("bench")
bench_ns.add_task(bench, name="run", default=True)
bench_ns.add_task(bench_upstream)
bench_ns.add_task(bench_sequence)
bench_ns.add_task(bench_probe)
bench_ns.add_task(bench_sweep)
bench_ns.add_task(bench_trust)
ns.add_collection(bench_ns)
report_ns = Collection("report")
report_ns.add_task(report, name="show", default=True)
report_ns.add_task(merge)
ns.add_collection(images_ns)
ns.add_collection(report_ns)
nightly_ns = Collection("nightly")
nightly_ns.add_task(nightly, name="run", default=True)
nightly_ns.add_task(history)
nightly_ns.add_task(nightly_sweep)
ns.add_collection(nightly_ns)
ns.configure({"patchcheck": {}})
