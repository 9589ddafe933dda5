"""Builds and settings -> the list of cases: machine types x pairs x guest actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from patchcheck.errors import UsageError
from patchcheck.qemu.machine_types import as_type, order, q35_version, select
from patchcheck.result.model import Case


def pairs(builds: Mapping[str, str], selectors: Sequence[str]) -> list[tuple[str, str]]:
    """Ordered (source, destination) build pairs. `builds` maps build name -> source spec.

    Selectors: "all", "same-tree" (both builds from one source), "cross" (from different
    sources), or an explicit "A->B".
    """
    names = list(builds)
    every = [(a, b) for a in names for b in names]
    chosen: list[tuple[str, str]] = []
    for sel in selectors:
        if sel == "all":
            chosen += every
        elif sel == "same-tree":
            chosen += [(a, b) for a, b in every if builds[a] == builds[b]]
        elif sel == "cross":
            chosen += [(a, b) for a, b in every if builds[a] != builds[b]]
        elif "->" in sel:
            a, _, b = (s.strip() for s in sel.partition("->"))
            for n in (a, b):
                if n not in builds:
                    raise UsageError(f"pair '{sel}': no build named '{n}' "
                                     f"(builds: {', '.join(names)})")
            chosen.append((a, b))
        else:
            raise UsageError(f"pair selector '{sel}': use all, same-tree, cross or SRC->DST")
    seen: set[tuple[str, str]] = set()
    return [p for p in chosen if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


Boundary = Callable[[Sequence[str]], list[str]]  # a scenario's turning machine types


def newest(machines: Sequence[str]) -> list[str]:
    return list(machines[-1:])


def machines_for(selector: str, machines: Sequence[str], boundary: Boundary = newest
                 ) -> list[str]:
    """`all`, `boundary` (the scenario's turning types), `newest`, or a list of types."""
    if selector == "all":
        return list(machines)
    if selector == "boundary":
        return order(boundary(machines))
    if selector == "newest":
        return newest(machines)
    return [m for m in machines if m in {as_type(s) for s in selector.split(",")}]


def cases(
    build_machines: Mapping[str, Sequence[str]],
    build_sources: Mapping[str, str],
    pair_selectors: Sequence[str],
    guests: Mapping[str, str],
    machine_filter: str = "",
    force: Sequence[str] = (),
    boundary: Boundary = newest,
    forced: Callable[[str, str], bool] = lambda source, destination: True,
) -> list[Case]:
    """Every case, in a stable order. `guests` maps action -> machine selector
    (all | boundary | newest | a list of types; `boundary` says which types the scenario's
    behaviour turns on); `force` are -globals for one extra case per pair on the newest
    common type, for the pairs `forced` accepts."""
    out: list[Case] = []
    for src, dst in pairs(build_sources, pair_selectors):
        out += pair_cases(src, dst, build_machines[src], build_machines[dst], guests,
                          machine_filter, force if forced(src, dst) else (), boundary)
    if not out:
        raise UsageError(f"--machines '{machine_filter}' matches none of the machine types "
                         "common to any pair")
    return sorted(out, key=case_order)


def case_order(case: Case) -> tuple[object, ...]:
    """The matrix's stable order: machine type, then pair, guest action and -globals."""
    return (q35_version(case.machine), case.source, case.destination, case.guest, case.globals)


def pair_cases(src: str, dst: str, src_machines: Sequence[str], dst_machines: Sequence[str],
               guests: Mapping[str, str], machine_filter: str = "", force: Sequence[str] = (),
               boundary: Boundary = newest) -> list[Case]:
    """One pair's cases: they depend on its two builds' machine types alone, so they can
    run as soon as both builds exist (patchcheck.run.schedule)."""
    common = order(set(src_machines) & set(dst_machines))
    try:
        selected = select(common, machine_filter) if common else []
    except UsageError:
        selected = []  # this pair has no type in the filter; other pairs may
    if not selected:
        return []
    out = [Case(machine, src, dst, guest) for guest, selector in guests.items()
           for machine in machines_for(selector, selected, boundary)]
    if force:
        out += [Case(selected[-1], src, dst, guest, tuple(force)) for guest in guests]
    return sorted(out, key=case_order)


def shard(items: Sequence[Case], k: int, n: int) -> list[Case]:
    """The K-th (1-based) of N deterministic slices."""
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {k}/{n}: expected K/N with 1 <= K <= N")
    return [c for i, c in enumerate(items) if i % n == k - 1]
