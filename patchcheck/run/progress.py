"""Progress for long runs: rich on a terminal, plain lines when not a TTY or under CI."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class CaseProgress:
    """`total`: how many, or a function that says it once known (cases that start while
    builds still run: the whole list is known only after the last build)."""

    def __init__(self, total: int | Callable[[], int | None], label: str = "cases") -> None:
        self._total = total if callable(total) else (lambda: total)
        self.done = 0
        self._lock = threading.Lock()
        self._rich: Progress | None = None
        if interactive():
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
            self._task = self._rich.add_task(label, total=self._total())

    @property
    def total(self) -> int | None:
        return self._total()

    def __enter__(self) -> CaseProgress:
        if self._rich:
            self._rich.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._rich:
            self._rich.stop()

    def advance(self, line: str) -> None:
        with self._lock:
            self.done += 1
            total = self.total
            if self._rich:
                self._rich.update(self._task, advance=1, description=line[:60], total=total)
            else:
                print(f"[{self.done}/{total if total is not None else '?'}] {line}",
                      file=sys.stderr, flush=True)
