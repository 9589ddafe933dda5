"""The destination verdict, the retried lost guest and source reuse (patchcheck.run.migrate),
on scripted QEMUs (tests/fakes.py): no Docker, no QEMU.

Each case runs the real PDS scenario: its synthetic action writes the source's recorded
root port through HMP port I/O, the source is migrated, and every destination follows its
script (loads, rejects the stream, is killed, hangs, stays paused). Everything asserted
is what the run recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from patchcheck.qemu.machine import Machine
from patchcheck.result.model import Case, CaseResult
from patchcheck.result.outcome import Observed
from patchcheck.run.migrate import run_cases
from patchcheck.scenarios.pds.scenario import SCENARIO
from patchcheck.scenarios.pds.slot import SlotState, SyntheticAction, read_slot_state

from ..fakes import (
    BAD_CONFIG_LOG,
    HANGS,
    KILLED,
    KILLED_FOR_MEMORY,
    LOADS,
    OOM,
    REJECTS,
    REJECTS_OTHER,
    STAYS_PAUSED,
    Dest,
    FakeHosts,
    FakeQemu,
    Src,
    build_record,
)

PASSED, FAILED, ERROR = Observed.PASSED, Observed.FAILED, Observed.ERROR
OTHER, FLAKY = Observed.FAILED_OTHER, Observed.FLAKY
BUILDS = {"7.2-none": build_record("7.2-none"), "7.2-v1": build_record("7.2-v1", "v1", True),
          "7.2-v2": build_record("7.2-v2", "v2", True)}
UNFIXED = Case("pc-q35-6.0", "7.2-none", "7.2-none", "synthetic")  # the model: fails
FIXED = Case("pc-q35-6.0", "7.2-none", "7.2-v2", "synthetic")  # the model: passes
TIMEOUT = 0.5  # seconds; only a QEMU that hangs reaches the deadline
LOST = "no heartbeat on the destination console"
CUT_STREAM_LOG = "qemu-system-x86_64: load of migration failed: Input/output error\n"
BAD_CONFIG = BAD_CONFIG_LOG.splitlines()[0]  # the line a rejected case's message quotes
# The synthetic action's Slot Control/Status writes (power on, power off, ack), as replayed
SYNTHETIC_WRITES = ["o /h 0xcfc 0x100", "o /h 0xcfc 0x700", "o /h 0xcfe 0x18"]


def _scratch(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return scratch


def _one(tmp_path: Path, hosts: FakeHosts, case: Case = UNFIXED,
         action: SyntheticAction | None = None) -> CaseResult:
    """One case, with its own source and destination QEMU."""
    [result] = run_cases([case], BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                         lambda _: tmp_path / "logs", timeout=TIMEOUT, action=action)
    return result


def _all_shut_down(hosts: FakeHosts) -> bool:
    return all(qemu.closed and not qemu.running() for qemu in hosts.launched)


# --- the verdict, from the destination alone -------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    dest: Dest
    observed: Observed
    message: str  # in the case's message ("" for a pass: none at all)
    destination_status: str
    source_status: str = "completed"
    source: Src = Src()
    error: str = ""  # in destination_error


VERDICTS = {
    "loads": Verdict(LOADS, PASSED, "", "migration completed, running"),
    "loads at once": Verdict(Dest(polls=0), PASSED, "", "migration completed, running"),
    # the trap: the source says completed, the destination rejected the stream and exited 1
    "rejected": Verdict(REJECTS, FAILED, BAD_CONFIG, "exited (1)",
                        error="load of migration failed: Invalid argument"),
    "rejected at once": Verdict(replace(REJECTS, polls=0), FAILED, BAD_CONFIG, "exited (1)",
                                source_status="active"),  # the source had not noticed yet
    "rejected, source failed": Verdict(REJECTS, FAILED, BAD_CONFIG, "exited (1)",
                                       source_status="failed", source=Src(("failed",))),
    "killed": Verdict(KILLED, ERROR, "destination QEMU crashed or was killed (exit -9)",
                      "exited (-9)"),
    "killed, shell status": Verdict(Dest(exit=137), ERROR, "crashed or was killed (exit 137)",
                                    "exited (137)"),
    "container removed": Verdict(Dest(exit=-1), ERROR, "crashed or was killed (exit -1)",
                                 "exited (-1)"),
    "exit 0 while loading": Verdict(Dest(exit=0), ERROR, "crashed or was killed (exit 0)",
                                    "exited (0)"),
    # only status 1 is a rejection, whatever the log says
    "exit 2 with a load error": Verdict(replace(REJECTS, exit=2), ERROR, "(exit 2)", "exited (2)",
                                        error="Bad config data: i=0x6e"),
    "hangs in inmigrate": Verdict(HANGS, ERROR,
                                  "timeout waiting for the destination to load the migration", ""),
    # rejected with another error than the bug's: never a reproduction
    "rejected elsewhere": Verdict(REJECTS_OTHER, OTHER, "i=0x6a", "exited (1)",
                                  error="i=0x6a"),
    # a destination that did not run on, without the bug's error: not the bug either
    "stays paused": Verdict(STAYS_PAUSED, OTHER, "destination: migration completed, state paused",
                            "migration completed, paused"),
    "its migration failed": Verdict(Dest(migration="failed", runs=False), OTHER,
                                    "destination: migration failed, state paused",
                                    "migration failed, paused"),
    # the kernel killed a QEMU for memory (the launcher said so): an error that says so, never a
    # verdict; also when the destination of a source killed while it sends rejects the cut
    # stream (exit 1, another error than the bug's: failed-other without the reason)
    "destination killed for memory": Verdict(
        KILLED_FOR_MEMORY, ERROR, f"destination QEMU was {OOM}; destination QEMU crashed or "
        "was killed (exit 137)", "exited (137)"),
    "source killed for memory while it sends": Verdict(
        replace(REJECTS_OTHER, polls=0, log=CUT_STREAM_LOG), ERROR,
        f"source QEMU was {OOM}; qemu-system-x86_64: load of migration failed: Input/output "
        "error", "exited (1)", source_status="active", source=Src(killed_sending=OOM),
        error="Input/output error"),
    "source never finishes": Verdict(HANGS, ERROR, "timeout waiting for the migration to finish",
                                     "", source_status="", source=Src(("active",))),
}


@pytest.mark.parametrize("row", VERDICTS.values(), ids=VERDICTS.keys())
def test_destination_verdict(tmp_path: Path, row: Verdict) -> None:
    hosts = FakeHosts([row.dest], [row.source])
    result = _one(tmp_path, hosts)
    assert (result.observed, result.expected) == (row.observed, FAILED)
    assert row.message in result.message if row.message else result.message == ""
    assert result.destination_status == row.destination_status
    assert result.source_status == row.source_status  # recorded, never the verdict
    assert row.error in result.destination_error
    [source], [dest] = hosts.named("source"), hosts.named("destination")
    assert source.commands.count("migrate") == 1
    assert dest.binary == BUILDS["7.2-none"].binary and "-incoming" in dest.args
    lived = row.destination_status.startswith("migration")
    assert dest.commands.count("cont") == int(lived)  # the verdict is taken after `cont`
    assert _all_shut_down(hosts)
    log = Path(result.logs["destination"]).read_text()
    assert log.startswith(f"fake destination {dest.binary} in {dest.rundir.name}\n")
    assert (BAD_CONFIG in log) == (row.dest.log == BAD_CONFIG_LOG)
    assert Path(result.logs["reproduce"]).exists() and Path(result.logs["source"]).exists()


def test_the_guest_action_runs_on_the_source_and_is_replayed(tmp_path: Path) -> None:
    hosts = FakeHosts([REJECTS])
    result = _one(tmp_path, hosts)
    [source], [dest] = hosts.named("source"), hosts.named("destination")
    writes = [c for c in source.monitor.commands if c.startswith("o ") and "0xcf8" not in c]
    assert writes == SYNTHETIC_WRITES and dest.monitor.commands == []
    assert "-S" in source.args and source.binary == BUILDS["7.2-none"].binary
    assert SlotState(**result.guest_state) == read_slot_state(source.monitor)
    assert result.guest_state["slot_control"] == 0x0700
    for write in SYNTHETIC_WRITES:
        assert f"#   (qemu) {write}" in result.reproduce
    assert result.source_migration == 1 and result.earlier_attempts == []


# --- a guest that did not survive: tried once more from the same source ------------------------


class Sharing(SyntheticAction):
    """The synthetic action on a source migrated again (shares_source); its check of the
    destination's guest answers from a script (None: the guest survived). `exit_on_check`:
    the destination's exit status when the first check runs (it exits meanwhile)."""

    shares_source = True
    stays_paused = False  # its guest runs on: `again` resumes it before each migration

    def __init__(self, problems: Sequence[str | None] = (), exit_on_check: int | None = None
                 ) -> None:
        super().__init__()
        self.problems = list(problems)
        self.exit_on_check = exit_on_check
        self.checked: list[Machine] = []

    def again(self, machine: Machine) -> SlotState:
        machine.qmp("cont")  # out of postmigrate, as a guest that runs on
        return read_slot_state(machine)

    def verify_destination(self, machine: Machine, rundir: Path, timeout: float) -> str | None:
        self.checked.append(machine)
        if self.exit_on_check is not None and len(self.checked) == 1:
            assert isinstance(machine, FakeQemu)
            machine.exit(self.exit_on_check)
        return self.problems.pop(0) if self.problems else None


@dataclass(frozen=True)
class Retry:
    problems: tuple[str | None, ...]
    dests: tuple[Dest, ...]
    observed: Observed
    message: str
    earlier: int  # attempts set aside
    sources: tuple[Src, ...] = ()
    exit_on_check: int | None = None


RETRIES = {
    # a pass after a lost guest is flaky (never a pass); a heartbeat timeout is an error
    "lost once, then survives": Retry((LOST,), (LOADS, LOADS), FLAKY, "second attempt", 1),
    "lost twice": Retry((LOST, LOST), (LOADS, LOADS), ERROR, LOST, 1),
    "lost, then rejected": Retry((LOST,), (LOADS, REJECTS), FAILED, BAD_CONFIG, 1),
    "lost, and the source died": Retry((LOST,), (LOADS,), ERROR, LOST, 0,
                                       sources=(Src(dies_after=1),)),
    "lost as it exited 1": Retry((LOST,), (LOADS, LOADS), FLAKY, "second attempt", 1,
                                 exit_on_check=1),
    "killed while checked": Retry((LOST,), (LOADS,), ERROR,
                                  "destination QEMU was killed, or its container removed, while "
                                  f"the guest was checked: {LOST}", 0, exit_on_check=-9),
    "killed while checked, shell status": Retry((LOST,), (LOADS,), ERROR, "while the guest was "
                                                "checked", 0, exit_on_check=137),
}


@pytest.mark.parametrize("row", RETRIES.values(), ids=RETRIES.keys())
def test_lost_guest_is_tried_once_more_from_the_same_source(tmp_path: Path, row: Retry) -> None:
    hosts = FakeHosts(row.dests, row.sources)
    action = Sharing(row.problems, row.exit_on_check)
    result = _one(tmp_path, hosts, FIXED, action)
    assert (result.observed, result.expected) == (row.observed, PASSED)
    assert row.message in result.message if row.message else result.message == ""
    dests = hosts.named("destination")
    assert len(hosts.named("source")) == 1 and len(dests) == len(row.dests)  # all used
    assert len(result.earlier_attempts) == row.earlier
    assert result.source_migration == len(dests)
    assert action.checked == [d for d in dests if "cont" in d.commands]  # the guest: after a pass
    assert _all_shut_down(hosts)
    logs, kept = tmp_path / "logs", tmp_path / "logs" / "attempt-1"
    assert Path(result.logs["destination"]) == logs / "destination.log"
    assert dests[-1].rundir.name in (logs / "destination.log").read_text()
    if not row.earlier:
        assert not kept.exists()
        return
    assert result.earlier_attempts[0] == \
        f"error: the destination's guest did not run on: {LOST} (logs: {kept})"
    assert sorted(p.name for p in kept.iterdir()) == ["destination.log", "reproduce.sh",
                                                      "source.log"]
    assert dests[0].rundir.name in (kept / "destination.log").read_text()


# --- several cases of one source --------------------------------------------------------------


@dataclass(frozen=True)
class Reuse:
    dests: tuple[Dest, ...]
    observed: tuple[Observed, ...]
    source_migrations: tuple[int, ...]
    launches: str  # S: a source made, D: a destination, in order
    sources: tuple[Src, ...] = ()


REUSES = {
    "one source for three": Reuse((REJECTS, LOADS, STAYS_PAUSED), (FAILED, PASSED, OTHER),
                                  (1, 2, 3), "SDDD"),
    "a fresh source after an error": Reuse((LOADS, KILLED, LOADS), (PASSED, ERROR, PASSED),
                                           (1, 2, 1), "SDDSD"),
    "after a hang too": Reuse((HANGS, LOADS, LOADS), (ERROR, PASSED, PASSED), (1, 1, 2), "SDSDD"),
    "a source that died between cases": Reuse((LOADS, LOADS, LOADS), (PASSED, PASSED, PASSED),
                                              (1, 2, 1), "SDDSD", (Src(dies_after=2),)),
}


def _cases() -> list[Case]:
    return [replace(UNFIXED, destination=name) for name in ("7.2-none", "7.2-v1", "7.2-v2")]


def _logdir(tmp_path: Path) -> Callable[[Case], Path]:
    return lambda case: tmp_path / "logs" / case.slug


@pytest.mark.parametrize("row", REUSES.values(), ids=REUSES.keys())
def test_cases_of_one_source(tmp_path: Path, row: Reuse) -> None:
    hosts = FakeHosts(row.dests, row.sources)
    cases = _cases()
    results = list(run_cases(cases, BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                             _logdir(tmp_path), timeout=TIMEOUT, action=Sharing()))
    assert tuple(r.observed for r in results) == row.observed
    assert tuple(r.source_migration for r in results) == row.source_migrations
    assert "".join(q.name[0].upper() for q in hosts.launched) == row.launches
    assert [d.binary for d in hosts.named("destination")] == \
        [BUILDS[c.destination].binary for c in cases]
    for source in hosts.named("source"):  # each performs the action once, then `again` reads
        writes = [c for c in source.monitor.commands if c.startswith("o ") and "cf8" not in c]
        assert writes == SYNTHETIC_WRITES
    assert _all_shut_down(hosts)
    assert [r.guest_state for r in results] == [results[0].guest_state] * len(results)
    for case, result in zip(cases, results, strict=True):
        assert Path(result.logs["destination"]).parent == tmp_path / "logs" / case.slug


def test_a_died_source_is_closed_not_quit_and_an_errored_one_is_quit(tmp_path: Path) -> None:
    hosts = FakeHosts((LOADS, KILLED, LOADS), (Src(dies_after=1),))
    results = list(run_cases(_cases(), BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                             _logdir(tmp_path), timeout=TIMEOUT, action=Sharing()))
    assert [r.observed for r in results] == [PASSED, ERROR, PASSED]
    died, errored, last = hosts.named("source")
    assert (died.code, "quit" in died.commands) == (-9, False)  # found dead: only closed
    assert (errored.code, errored.commands[-1]) == (0, "quit")  # after the ERROR: quit
    assert last.commands[-1] == "quit" and _all_shut_down(hosts)


class Single(SyntheticAction):
    shares_source = stays_paused = False


def test_several_cases_need_an_action_that_shares_its_source(tmp_path: Path) -> None:
    hosts = FakeHosts([LOADS, LOADS])
    with pytest.raises(ValueError, match="shares its source"):
        list(run_cases(_cases()[:2], BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                       _logdir(tmp_path), timeout=TIMEOUT, action=Single()))
    assert hosts.launched == []


# --- a paused source: its stream taken once, given to every destination ----------------------


REPLAYS = {
    "one stream for three": Reuse((REJECTS, LOADS, STAYS_PAUSED), (FAILED, PASSED, OTHER),
                                   (1, 2, 3), "SDDD"),
    "a fresh source after an error": Reuse((LOADS, KILLED, LOADS), (PASSED, ERROR, PASSED),
                                            (1, 2, 1), "SDDSD"),
    "a source whose migration fails": Reuse((LOADS, LOADS, LOADS), (ERROR, PASSED, PASSED),
                                             (1, 1, 2), "SDSDD", (Src(("active", "failed")),)),
}


@pytest.mark.parametrize("row", REPLAYS.values(), ids=REPLAYS.keys())
def test_a_paused_sources_stream_serves_every_destination(tmp_path: Path, row: Reuse) -> None:
    hosts = FakeHosts(row.dests, row.sources)
    cases = _cases()
    results = list(run_cases(cases, BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                             _logdir(tmp_path), timeout=TIMEOUT))  # synthetic: stays paused
    assert tuple(r.observed for r in results) == row.observed
    assert tuple(r.source_migration for r in results) == row.source_migrations
    assert "".join(q.name[0].upper() for q in hosts.launched) == row.launches
    sources, dests = hosts.named("source"), hosts.named("destination")
    for source in sources:  # one action, one migration (into patchcheck's socket), then quit
        writes = [c for c in source.monitor.commands if c.startswith("o ") and "cf8" not in c]
        assert writes == SYNTHETIC_WRITES
        assert source.commands.count("migrate") == 1 and source.commands[-1] == "quit"
    for dest, result in zip(dests, results, strict=True):
        if result.observed != ERROR or dest.received is not None:
            assert dest.received == Src().stream  # the bytes the source sent, whole
    assert [r.source_status for r in results if r.observed != ERROR] == \
        ["completed"] * sum(r.observed != ERROR for r in results)
    assert _all_shut_down(hosts)
    states = {str(r.guest_state) for r in results if r.observed != ERROR}
    assert len(states) == 1 and "slot_status" in states.pop()


def test_one_case_of_a_paused_source_migrates_directly(tmp_path: Path) -> None:
    hosts = FakeHosts([LOADS])
    result = _one(tmp_path, hosts, FIXED)
    assert result.observed == PASSED
    (dest,) = hosts.named("destination")
    assert dest.received is None  # the source's own migration, nothing taken in between


def test_an_interrupted_run_starts_no_further_case_of_a_group(tmp_path: Path) -> None:
    """Hosts.close() (the run is ending): the group's next case does not start, and its
    directories go (the run's scratch directory can then be removed)."""
    hosts = FakeHosts((LOADS, LOADS, LOADS))
    results = run_cases(_cases(), BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                        _logdir(tmp_path), timeout=TIMEOUT)
    first = next(results)
    hosts.close()
    assert list(results) == [] and first.observed == PASSED
    assert len(hosts.named("destination")) == 1
    assert list(_scratch(tmp_path).iterdir()) == []


# --- RAM --------------------------------------------------------------------------------------


class Hungry(SyntheticAction):
    min_ram_mib = 128  # as the Linux guest: it does not boot with less


@pytest.mark.parametrize("action, ram", [(SyntheticAction(), "32M"), (Hungry(), "128M")],
                         ids=["the matrix's RAM", "the guest's floor"])
def test_both_qemus_get_the_matrix_ram_or_the_guest_s_floor(tmp_path: Path,
                                                            action: SyntheticAction,
                                                            ram: str) -> None:
    hosts = FakeHosts([LOADS])
    [result] = run_cases([FIXED], BUILDS, hosts, SCENARIO, _scratch(tmp_path),
                         lambda _: tmp_path / "logs", ram_mib=32, timeout=TIMEOUT,
                         action=action)
    assert result.observed == PASSED
    assert [q.args[q.args.index("-m") + 1] for q in hosts.launched] == [ram, ram]
    assert f"-m {ram}" in (tmp_path / "logs" / "reproduce.sh").read_text()
