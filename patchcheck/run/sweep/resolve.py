"""The loop that gives every member of a group an answer for every destination, with as few
migrations as the failures allow (patchcheck.run.sweep.attribute says how a failure is
given to a member). Destinations whose members left to try are the same share one source
and its stream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from patchcheck.result.cells import CellOutcome
from patchcheck.run.sweep.attribute import Answer, Fault, Migrate, locate
from patchcheck.run.sweep.members import Member


@dataclass
class _Work:
    """Members still to answer, and the destinations they are still to be answered for."""

    members: tuple[Member, ...]
    destinations: tuple[str, ...]
    alone: bool = False  # a member refused in a group, tried by itself


@dataclass
class Resolver:
    migrate: Migrate
    # Destinations whose members left are the same share one source and its stream (false:
    # each destination its own source, the reference it is tested against)
    share: bool = True
    answers: list[Answer] = field(default_factory=list)
    migrations: int = 0
    _queue: list[_Work] = field(default_factory=list)
    _tries: dict[str, int] = field(default_factory=dict)

    def run(self, members: Sequence[Member], destinations: Sequence[str]) -> list[Answer]:
        for destination in (destinations if not self.share else ()):
            self._push(tuple(members), (destination,))
        if self.share:
            self._push(tuple(members), tuple(destinations))
        while self._queue:
            work = self._queue.pop(0)
            trial = self.migrate(work.members, work.destinations)
            self.migrations += 1
            for m in work.members:
                self._tries[m.ident] = self._tries.get(m.ident, 0) + 1
            if trial.source is not None:
                self._fault(work, trial.source, work.destinations)
                continue
            for destination in work.destinations:
                fault = trial.destinations.get(destination)
                if fault is None:
                    for m in work.members:
                        self._answer(m, destination, CellOutcome.PASSED)
                else:
                    self._fault(work, fault, (destination,))
        return self.answers

    def _push(self, members: tuple[Member, ...], destinations: tuple[str, ...],
              alone: bool = False) -> None:
        if not members or not destinations:
            return
        for work in self._queue if self.share else ():  # the same members elsewhere: one source
            if work.members == members and work.alone == alone:
                work.destinations = (*work.destinations,
                                     *(d for d in destinations if d not in work.destinations))
                return
        self._queue.append(_Work(members, destinations, alone))

    def _fault(self, work: _Work, fault: Fault, destinations: tuple[str, ...]) -> None:
        found = locate(work.members, fault)
        if found is None:
            if len(work.members) == 1:
                self._give(work.members[0], destinations, fault)
            else:  # it names nobody: halves, until one member carries it
                half = len(work.members) // 2
                self._push(work.members[:half], destinations)
                self._push(work.members[half:], destinations)
            return
        culprit, part = found
        rest = tuple(m for m in work.members if m is not culprit)
        if fault.outcome == CellOutcome.NOT_STARTED and rest and not work.alone:
            self._push((culprit,), destinations, alone=True)  # a conflict, or its own?
        elif part is not None and part.role != "device":
            blocked = Fault(CellOutcome.BLOCKED,
                            (f"its {part.role} {part.type} failed: {fault.line}", *fault.lines),
                            fault.instance)
            self._give(culprit, destinations, blocked)
        else:
            self._give(culprit, destinations, fault)
        self._push(rest, destinations)

    def _give(self, m: Member, destinations: tuple[str, ...], fault: Fault) -> None:
        for destination in destinations:
            self._answer(m, destination, fault.outcome, fault.lines, fault.instance)

    def _answer(self, m: Member, destination: str, outcome: CellOutcome,
                lines: tuple[str, ...] = (), instance: str = "") -> None:
        self.answers.append(Answer(m, destination, outcome, lines, instance,
                                   self._tries.get(m.ident, 0)))
