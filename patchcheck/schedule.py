"""Which cases may run now: a pair's cases as soon as its two builds exist.

`invoke matrix` builds one build after another (each build uses every CPU). A pair's cases
depend only on its two builds (their machine types, patchcheck.matrix.pair_cases), so they
run while later builds still compile. Cases whose guest action shares one source QEMU
across destinations (the Linux guest: one boot, then a migration to each destination,
patchcheck.migrate.run_cases) are held until every pair of their source build is settled,
and go out as one group. The scenario's first case (`Defaults.first`: its own pair on its
own machine type) has its builds made first and goes out first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .matrix import case_order
from .results import Case

Pair = tuple[str, str]


def build_order(names: Sequence[str], first: Sequence[str]) -> list[str]:
    """The builds in the order they are made: the first case's two first, then the rest
    as configured."""
    head = [n for n in first[:2] if n in names]
    return list(dict.fromkeys([*head, *names]))


def groups(cases: Sequence[Case], grouped: str) -> list[list[Case]]:
    """Cases as units of work: the `grouped` action's cases that share source build,
    machine type and -globals form one group; every other case is a group of its own.
    The shared groups come first: they are the longest, and started last they would
    leave one job running alone at the end."""
    units: dict[Any, list[Case]] = {}
    for case in cases:
        key = (case.source, case.machine, case.globals) if case.guest == grouped else case.id
        units.setdefault((case.guest == grouped, key), []).append(case)
    return sorted(units.values(), key=lambda g: g[0].guest != grouped)


@dataclass
class Schedule:
    pairs: Sequence[Pair]
    cases_of: Callable[[str, str], list[Case]]  # a pair's cases, once both builds exist
    grouped: str = ""  # the guest action whose cases share a source QEMU
    first: Sequence[str] = ()  # (source build, destination build, machine type)
    released: list[Case] = field(default_factory=list)
    _done: set[Pair] = field(default_factory=set)
    _held: dict[str, list[Case]] = field(default_factory=dict)

    def release(self, built: Collection[str], failed: Collection[str]) -> list[list[Case]]:
        """The groups that can run now that `built` exist and `failed` will not: those of
        pairs whose builds both exist, once each (a pair with a failed build gives none)."""
        fresh: list[Case] = []
        settled = set(built) | set(failed)
        for pair in self.pairs:
            if pair in self._done or not set(pair) <= settled:
                continue
            self._done.add(pair)
            if not set(pair) <= set(built):
                continue
            for case in self.cases_of(*pair):
                if case.guest == self.grouped:
                    self._held.setdefault(case.source, []).append(case)
                else:
                    fresh.append(case)
        for source in list(self._held):
            if all(p in self._done for p in self.pairs if p[0] == source):
                fresh += self._held.pop(source)
        self.released += fresh
        return sorted(groups(sorted(fresh, key=case_order), self.grouped), key=self._first)

    def _first(self, group: list[Case]) -> bool:
        """False (sorts first) for the scenario's first case."""
        c = group[0]
        return tuple(self.first) != (c.source, c.destination, c.machine)
