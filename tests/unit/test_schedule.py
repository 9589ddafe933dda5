"""patchcheck.run.schedule (which cases may run as builds finish) and jobs.parallel over a lazy,
slow source of work (the builds happen inside it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from patchcheck.jobs import parallel
from patchcheck.result.model import Case
from patchcheck.run import plan as matrix
from patchcheck.run.schedule import Schedule, build_order

BUILDS = ["a", "b", "c"]
GUESTS = {"synthetic": "all", "linux": "boundary"}
MACHINES = {"a": ["pc-q35-6.0", "pc-q35-7.2"], "b": ["pc-q35-6.0", "pc-q35-7.2"],
            "c": ["pc-q35-6.0", "pc-q35-7.2", "pc-q35-10.0"]}


def boundary(machines: object) -> list[str]:
    return ["pc-q35-6.0"]


def schedule(first: tuple[str, ...] = (), shared: tuple[str, ...] = ("linux",)) -> Schedule:
    def cases_of(src: str, dst: str) -> list[Case]:
        return matrix.pair_cases(src, dst, MACHINES[src], MACHINES[dst], GUESTS,
                                 boundary=boundary)
    return Schedule(matrix.pairs(dict.fromkeys(BUILDS, "x"), ["all"]), cases_of, shared,
                    "linux", first)


def every_case() -> list[Case]:
    return matrix.cases(MACHINES, dict.fromkeys(BUILDS, "x"), ["all"], GUESTS,
                        boundary=boundary)


def ids(groups: list[list[Case]]) -> list[str]:
    return [c.id for g in groups for c in g]


def test_the_first_cases_builds_are_made_first() -> None:
    assert build_order(["a", "b", "c"], ("c", "a", "pc-q35-6.0")) == ["c", "a", "b"]
    assert build_order(["a", "b", "c"], ()) == ["a", "b", "c"]
    assert build_order(["a", "b"], ("z", "b", "pc-q35-6.0")) == ["b", "a"]  # z not asked for


def test_a_pairs_cases_go_out_once_both_builds_exist_and_linux_when_its_source_is_settled(
        ) -> None:
    s = schedule()
    after_a = s.release({"a"}, set())
    assert {(c.source, c.destination) for c in sum(after_a, [])} == {("a", "a")}
    assert all(c.guest == "synthetic" for c in sum(after_a, []))  # linux waits for a->b, a->c
    after_b = s.release({"a", "b"}, set())
    assert {(c.source, c.destination) for c in sum(after_b, [])} == {
        ("a", "b"), ("b", "a"), ("b", "b")}
    assert s.release({"a", "b"}, set()) == []  # nothing twice
    after_c = s.release({"a", "b", "c"}, set())
    linux = [g for g in after_c if g[0].guest == "linux"]
    assert after_c[:len(linux)] == linux  # the long groups first
    assert sorted((g[0].source, len(g)) for g in linux) == [("a", 3), ("b", 3), ("c", 3)]
    released = ids(after_a + after_b + after_c)
    assert sorted(released) == sorted(c.id for c in every_case())  # each case exactly once
    assert len(released) == len(set(released))


def test_a_failed_build_releases_nothing_of_its_pairs_and_holds_nothing_back() -> None:
    s = schedule()
    first = s.release({"a"}, {"b"})
    assert {(c.source, c.destination) for c in sum(first, [])} == {("a", "a")}
    last = s.release({"a", "c"}, {"b"})
    pairs = {(c.source, c.destination) for c in sum(first + last, [])}
    assert not any("b" in p for p in pairs)
    linux_a = [g for g in last if g[0].guest == "linux" and g[0].source == "a"]
    assert [[c.destination for c in g] for g in linux_a] == [["a", "c"]]


def test_the_first_case_goes_out_first() -> None:
    s = schedule(first=("b", "a", "pc-q35-7.2"))
    got = s.release({"a", "b"}, set())
    assert (got[0][0].source, got[0][0].destination, got[0][0].machine) == \
        ("b", "a", "pc-q35-7.2")


def test_cases_of_a_shared_action_go_out_as_one_group_per_source_among_those_released(
        ) -> None:
    s = schedule(shared=("linux", "synthetic"))
    after_ab = s.release({"a", "b"}, set())
    synthetic = [g for g in after_ab if g[0].guest == "synthetic"]
    # one group per (source, machine type): a and b on 6.0 and 7.2, each to both destinations
    assert sorted((g[0].source, g[0].machine, [c.destination for c in g]) for g in synthetic) \
        == [(src, m, ["a", "b"]) for src in "ab" for m in ("pc-q35-6.0", "pc-q35-7.2")]
    after_c = s.release({"a", "b", "c"}, set())
    later = [g for g in after_c if g[0].guest == "synthetic"]
    # what c completes: a->c and b->c (one destination each), c to every destination
    assert sorted((g[0].source, g[0].machine, len(g)) for g in later) == [
        ("a", "pc-q35-6.0", 1), ("a", "pc-q35-7.2", 1), ("b", "pc-q35-6.0", 1),
        ("b", "pc-q35-7.2", 1), ("c", "pc-q35-10.0", 1), ("c", "pc-q35-6.0", 3),
        ("c", "pc-q35-7.2", 3)]
    released = ids(after_ab + after_c)
    assert sorted(released) == sorted(c.id for c in every_case())  # each case exactly once
    assert all(len({(c.source, c.machine, c.guest, c.globals) for c in g}) == 1
               for g in after_ab + after_c)


def test_the_first_case_leads_its_shared_group() -> None:
    s = schedule(first=("b", "b", "pc-q35-7.2"), shared=("linux", "synthetic"))
    got = s.release({"a", "b"}, set())
    assert [(c.source, c.destination, c.machine) for c in got[0]] == [
        ("b", "b", "pc-q35-7.2"), ("b", "a", "pc-q35-7.2")]


def test_parallel_runs_the_work_given_while_the_source_of_work_still_waits() -> None:
    """The generator gives one item, then waits until that item has run: a pool that took
    the whole list first would wait for ever (here: the 10 s timeout)."""
    ran = threading.Event()

    def work() -> Iterator[int]:
        yield 1
        assert ran.wait(10), "the first item did not run while the source waited"
        yield 2

    def func(n: int) -> list[int]:
        ran.set()
        return [n * 10]
    assert sorted(r for _, r in parallel(work(), func, 2)) == [10, 20]


def test_what_the_source_of_work_raises_comes_after_the_results_given_before() -> None:
    def work() -> Iterator[int]:
        yield 1
        yield 2
        raise RuntimeError("the build engine went away")

    got: list[int] = []
    with pytest.raises(RuntimeError, match="engine went away"):
        for _, r in parallel(work(), lambda n: [n], 1):
            got.append(r)
    assert sorted(got) == [1, 2]
