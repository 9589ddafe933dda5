"""Which cases may run now: a pair's cases as soon as its two builds exist.

`invoke matrix` builds one build after another (each build uses every CPU). A pair's cases
depend only on its two builds (their machine types, patchcheck.run.plan.pair_cases), so they
run while later builds still compile. Cases whose guest action shares one source QEMU
across destinations (patchcheck.run.migrate.run_cases) go out as one group per source build,
machine type and -globals, among the cases given out together. The Linux guest's cases are
held until every pair of their source build is settled: one boot serves every destination.
The scenario's first case (`Defaults.first`: its own pair on its own machine type) has its
builds made first and goes out first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from patchcheck.result.model import Case
from patchcheck.run.plan import case_order

Pair = tuple[str, str]


def build_order(names: Sequence[str], first: Sequence[str]) -> list[str]:
    """The builds in the order they are made: the first case's two first, then the rest
    as configured."""
    head = [n for n in first[:2] if n in names]
    return list(dict.fromkeys([*head, *names]))


def groups(cases: Sequence[Case], shared: Collection[str], held: str = "") -> list[list[Case]]:
    """Cases as units of work: the cases of a `shared` guest action that share source
    build, machine type and -globals form one group (one source QEMU, migrated to each
    destination in turn); every other case is a group of its own. The `held` action's
    groups come first: they are the longest (a Linux boot), and started last they would
    leave one job running alone at the end."""
    units: dict[Any, list[Case]] = {}
    for case in cases:
        key = (case.guest, case.source, case.machine, case.globals) \
            if case.guest in shared else case.id
        units.setdefault(key, []).append(case)
    return sorted(units.values(), key=lambda g: g[0].guest != held)


@dataclass
class Schedule:
    pairs: Sequence[Pair]
    cases_of: Callable[[str, str], list[Case]]  # a pair's cases, once both builds exist
    shared: Collection[str] = ()  # guest actions whose cases share a source QEMU
    # The guest action whose cases wait for every pair of their source build (its source
    # is expensive: a Linux boot serves every destination at once).
    held: str = ""
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
                if case.guest == self.held:
                    self._held.setdefault(case.source, []).append(case)
                else:
                    fresh.append(case)
        for source in list(self._held):
            if all(p in self._done for p in self.pairs if p[0] == source):
                fresh += self._held.pop(source)
        self.released += fresh
        units = groups(sorted(fresh, key=case_order), self.shared, self.held)
        return sorted((sorted(g, key=self._other) for g in units),
                      key=lambda g: self._other(g[0]))

    def _other(self, case: Case) -> bool:
        """False (sorts first) for the scenario's first case (and so for its group)."""
        return tuple(self.first) != (case.source, case.destination, case.machine)
