"""Machine-type ordering and filters, build pairs, case lists and shards."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from patchcheck.errors import UsageError
from patchcheck.qemu import machine_types
from patchcheck.result.model import Case
from patchcheck.run import plan as matrix
from patchcheck.scenarios.pds.scenario import SCENARIO

Q35_72 = [f"pc-q35-{v}" for v in ("4.0", "4.0.1", "4.1", "4.2", "5.0", "5.1", "5.2", "6.0",
                                   "6.1", "6.2", "7.0", "7.1", "7.2")]
Q35_100 = Q35_72 + [f"pc-q35-{v}" for v in ("8.0", "8.1", "8.2", "9.0", "9.1", "9.2", "10.0")]
FORCE = "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"


def names(machines: list[str]) -> list[str]:
    return [m.removeprefix("pc-q35-") for m in machines]


# --- ordering -------------------------------------------------------------------------

def test_order_is_numeric() -> None:
    shuffled = list(Q35_100)
    random.Random(7).shuffle(shuffled)
    ordered = machine_types.order(shuffled)
    assert ordered == Q35_100
    assert names(machine_types.order(["pc-q35-10.0", "pc-q35-9.2", "pc-q35-4.1", "pc-q35-4.0.1",
                               "pc-q35-4.0"])) == ["4.0", "4.0.1", "4.1", "9.2", "10.0"]


def test_order_drops_other_machines_and_duplicates() -> None:
    given = ["pc-i440fx-7.2", "q35", "pc-q35-7.2", "pc-q35-7.2", "pc", "microvm", "pc-q35-6.0",
             "pc-q35-7.2-custom", "none"]
    assert machine_types.order(given) == ["pc-q35-6.0", "pc-q35-7.2"]


@pytest.mark.parametrize("bad", ["q35", "pc-q35-7", "pc-i440fx-7.2", "pc-q35-7.x", "7.2"])
def test_q35_version_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        machine_types.q35_version(bad)


def test_q35_version() -> None:
    assert machine_types.q35_version("pc-q35-4.0.1") == (4, 0, 1)
    assert machine_types.q35_version("pc-q35-10.0") == (10, 0)


# --- filters --------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("", [m.removeprefix("pc-q35-") for m in Q35_100]),
    ("6.0,7.2", ["6.0", "7.2"]),
    ("7.2, 6.0", ["6.0", "7.2"]),
    ("pc-q35-6.0,pc-q35-10.0", ["6.0", "10.0"]),
    ("6.0,6.0", ["6.0"]),
    ("6.0,3.1", ["6.0"]),  # a type the builds lack is left out, not an error
    ("5.2..7.2", ["5.2", "6.0", "6.1", "6.2", "7.0", "7.1", "7.2"]),
    ("5.2 .. 6.0", ["5.2", "6.0"]),
    ("pc-q35-9.1..pc-q35-10.0", ["9.1", "9.2", "10.0"]),
    ("..4.1", ["4.0", "4.0.1", "4.1"]),
    ("9.2..", ["9.2", "10.0"]),
    ("..", [m.removeprefix("pc-q35-") for m in Q35_100]),
    ("6.0..6.0", ["6.0"]),
    ("4.0..4.0.1,10.0", ["4.0", "4.0.1", "10.0"]),
    ("6.0..7.0,6.1..6.2", ["6.0", "6.1", "6.2", "7.0"]),
    ("9.0..11.0", ["9.0", "9.1", "9.2", "10.0"]),
])
def test_select(spec: str, expected: list[str]) -> None:
    assert names(machine_types.select(Q35_100, spec)) == expected


@pytest.mark.parametrize("spec, message", [
    ("3.1", "matches none"),
    ("11.0..", "matches none"),
    ("1.0..2.0", "matches none"),
    ("7.2..5.2", "start is after its end"),
    ("10.0..9.2", "start is after its end"),
    ("seven", "not a pc-q35"),
    ("6.0,pc-i440fx-7.2", "not a pc-q35"),
    ("5.2..x", "not a pc-q35"),
])
def test_select_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        machine_types.select(Q35_100, spec)


def test_select_on_nothing() -> None:
    with pytest.raises(UsageError, match="matches none"):
        machine_types.select([], "6.0")
    assert machine_types.select([], "") == []


@pytest.mark.parametrize("spec", ["", "6.0", "6.0,7.2", "5.2..7.2", "..6.0", "8.0..",
                                  "pc-q35-6.0..pc-q35-10.0", " 6.0 , 7.2 ", "4.0.1", ".."])
def test_check_filter_accepts(spec: str) -> None:
    machine_types.check_filter(spec)


@pytest.mark.parametrize("spec", ["garbage", "6", "6.x", "7.2..5.2", "6.0..7.2..8.0",
                                  "6.0;rm -rf /", "pc-i440fx-7.2", "6.0,,foo", "q35-6.0"])
def test_check_filter_rejects(spec: str) -> None:
    with pytest.raises(UsageError):
        machine_types.check_filter(spec)


# --- pairs ----------------------------------------------------------------------------

BUILDS = {"7.2-none": "debian:bookworm", "7.2-v2": "debian:bookworm",
          "10.0-none": "debian:trixie"}


def test_pairs_all() -> None:
    got = matrix.pairs(BUILDS, ["all"])
    assert len(got) == 9 == len(set(got))
    assert got[0] == ("7.2-none", "7.2-none")


def test_pairs_same_tree_and_cross() -> None:
    same = matrix.pairs(BUILDS, ["same-tree"])
    cross = matrix.pairs(BUILDS, ["cross"])
    assert same == [("7.2-none", "7.2-none"), ("7.2-none", "7.2-v2"), ("7.2-v2", "7.2-none"),
                    ("7.2-v2", "7.2-v2"), ("10.0-none", "10.0-none")]
    assert set(cross) == {("7.2-none", "10.0-none"), ("7.2-v2", "10.0-none"),
                          ("10.0-none", "7.2-none"), ("10.0-none", "7.2-v2")}
    assert sorted(same + cross) == sorted(matrix.pairs(BUILDS, ["all"]))
    assert matrix.pairs(BUILDS, ["same-tree", "cross"]) == same + cross


def test_pairs_explicit_and_deduplicated() -> None:
    assert matrix.pairs(BUILDS, ["7.2-none->7.2-v2"]) == [("7.2-none", "7.2-v2")]
    assert matrix.pairs(BUILDS, [" 7.2-v2 -> 10.0-none "]) == [("7.2-v2", "10.0-none")]
    got = matrix.pairs(BUILDS, ["7.2-none->7.2-v2", "same-tree", "all"])
    assert got[0] == ("7.2-none", "7.2-v2")
    assert len(got) == 9 == len(set(got))


@pytest.mark.parametrize("selector, message", [
    ("7.2-none->8.0-v9", "no build named '8.0-v9'"),
    ("nobody->7.2-v2", "no build named 'nobody'"),
    ("everything", "use all, same-tree, cross"),
    ("", "use all, same-tree, cross"),
])
def test_pairs_errors(selector: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        matrix.pairs(BUILDS, [selector])


# --- boundary and cases -----------------------------------------------------------------

@pytest.mark.parametrize("machines, expected", [
    (Q35_72, ["6.0", "6.1", "7.2"]),
    (Q35_100, ["6.0", "6.1", "10.0"]),
    (["pc-q35-5.2", "pc-q35-6.0"], ["6.0"]),
    (["pc-q35-6.2", "pc-q35-7.0"], ["6.2", "7.0"]),
    (["pc-q35-6.1"], ["6.1"]),
    ([], []),
])
def test_boundary(machines: list[str], expected: list[str]) -> None:
    assert names(SCENARIO.boundary(machines)) == expected


def test_machines_for() -> None:
    sel = machine_types.order(Q35_72)
    assert matrix.machines_for("all", sel) == sel
    assert names(matrix.machines_for("newest", sel)) == ["7.2"]
    assert names(matrix.machines_for("boundary", sel, SCENARIO.boundary)) == ["6.0", "6.1", "7.2"]
    assert names(matrix.machines_for("boundary", sel)) == ["7.2"]  # a scenario without turns
    assert names(matrix.machines_for("6.0,pc-q35-7.2,9.2", sel)) == ["6.0", "7.2"]


MACHINES = {"7.2-none": Q35_72, "7.2-v2": Q35_72, "10.0-none": Q35_100}


def test_cases_counts_and_order() -> None:
    got = matrix.cases(MACHINES, BUILDS, ["all"], {"synthetic": "all", "none": "boundary"},
                       boundary=SCENARIO.boundary)
    # 8 pairs share the 13 types of 7.2 (13 synthetic + 3 boundary cases each);
    # 10.0-none->10.0-none has all 20 types (20 + 3)
    assert len(got) == 8 * (13 + 3) + (20 + 3) == len(set(got))
    assert all(isinstance(c, Case) for c in got)
    keys = [(machine_types.q35_version(c.machine), c.source, c.destination, c.guest) for c in got]
    assert keys == sorted(keys)
    assert {c.machine for c in got if c.guest == "none" and c.source.startswith("7.2")} == \
        {"pc-q35-6.0", "pc-q35-6.1", "pc-q35-7.2"}
    newer = {(c.source, c.destination) for c in got
             if machine_types.q35_version(c.machine) > (7, 2)}
    assert newer == {("10.0-none", "10.0-none")}  # only types common to the pair


def test_cases_newest_common_type_per_pair() -> None:
    got = matrix.cases(MACHINES, BUILDS, ["10.0-none->10.0-none", "7.2-none->10.0-none"],
                       {"synthetic": "newest"})
    assert {(c.source, c.destination, c.machine) for c in got} == {
        ("10.0-none", "10.0-none", "pc-q35-10.0"), ("7.2-none", "10.0-none", "pc-q35-7.2")}


def test_cases_force_native() -> None:
    got = matrix.cases(MACHINES, BUILDS, ["7.2-none->7.2-v2"], {"synthetic": "all"},
                       machine_filter="5.2..6.1", force=[FORCE])
    plain = [c for c in got if not c.globals]
    forced = [c for c in got if c.globals]
    assert names([c.machine for c in plain]) == ["5.2", "6.0", "6.1"]
    assert forced == [Case("pc-q35-6.1", "7.2-none", "7.2-v2", "synthetic", (FORCE,))]
    assert forced[0].name != plain[-1].name  # the junit names stay unique
    assert forced[0].name.endswith("+acpi-pci-hotplug-with-bridge-support=off")


def test_cases_force_native_one_per_guest() -> None:
    got = matrix.cases(MACHINES, BUILDS, ["same-tree"], {"synthetic": "boundary", "none": "newest"},
                       force=[FORCE])
    forced = [c for c in got if c.globals]
    assert len(forced) == 5 * 2  # five same-tree pairs, two guests
    assert {c.machine for c in forced if c.source.startswith("7.2")} == {"pc-q35-7.2"}
    assert {c.machine for c in forced if c.source.startswith("10.0")} == {"pc-q35-10.0"}
    assert len({c.id for c in got}) == len(got)


def test_cases_forced_only_where_the_scenario_says() -> None:
    got = matrix.cases(MACHINES, BUILDS, ["same-tree"], {"none": "newest"}, force=[FORCE],
                       forced=lambda src, dst: src == "7.2-none")
    forced = [(c.source, c.destination) for c in got if c.globals]
    assert forced and all(src == "7.2-none" for src, _ in forced)
    assert len([c for c in got if not c.globals]) == 5  # the plain cases are all there


def test_cases_skip_pairs_without_common_types() -> None:
    machines = {"a": ["pc-q35-6.0"], "b": ["pc-q35-7.2"]}
    got = matrix.cases(machines, {"a": "x", "b": "y"}, ["all"], {"synthetic": "all"})
    assert {(c.source, c.destination) for c in got} == {("a", "a"), ("b", "b")}


def test_cases_filter_matching_nothing() -> None:
    with pytest.raises(UsageError, match="matches none"):
        matrix.cases(MACHINES, BUILDS, ["all"], {"synthetic": "all"}, machine_filter="3.0")


# --- shards ---------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 7, 200])
def test_shards_partition_the_cases(n: int) -> None:
    every = matrix.cases(MACHINES, BUILDS, ["all"], {"synthetic": "all", "none": "boundary"},
                         force=[FORCE])
    shards = [matrix.shard(every, k, n) for k in range(1, n + 1)]
    flat = [c for s in shards for c in s]
    assert len(flat) == len(every) == len(set(flat))
    assert set(flat) == set(every)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    assert matrix.shard(every, 1, n) == shards[0]  # deterministic


@pytest.mark.parametrize("k, n", [(0, 3), (4, 3), (1, 0), (-1, 2), (2, 1)])
def test_shard_rejects(k: int, n: int) -> None:
    with pytest.raises(UsageError, match="--shard"):
        matrix.shard([], k, n)


def test_source_groups_share_one_linux_boot_per_source_type_and_globals() -> None:
    from patchcheck.run.schedule import groups as source_groups

    cases = [Case("pc-q35-6.0", s, d, g, gl) for s in ("a", "b") for d in ("a", "b")
             for g in ("synthetic", "linux") for gl in ((), ("x=1",))]
    groups = source_groups(cases, {"linux"}, "linux")
    assert sorted(c.id for g in groups for c in g) == sorted(c.id for c in cases)  # each once
    linux = [g for g in groups if g[0].guest == "linux"]
    assert groups[:len(linux)] == linux  # the long groups first
    assert sorted((g[0].source, g[0].globals, [c.destination for c in g]) for g in linux) == [
        ("a", (), ["a", "b"]), ("a", ("x=1",), ["a", "b"]),
        ("b", (), ["a", "b"]), ("b", ("x=1",), ["a", "b"])]
    assert all(len(g) == 1 for g in groups[len(linux):])


def test_parallel_yields_each_result_of_an_item_as_it_comes_and_raises_errors() -> None:
    from patchcheck.jobs import parallel

    got = sorted(parallel([1, 2, 3], lambda n: [n * 10 + i for i in range(n)], 2))
    assert got == [(1, 10), (2, 20), (2, 21), (3, 30), (3, 31), (3, 32)]

    def fails(n: int) -> Iterator[int]:
        yield n
        if n == 2:
            raise RuntimeError("engine gone")
    with pytest.raises(RuntimeError, match="engine gone"):
        list(parallel([1, 2], fails, 1))
