"""Progress for long runs: rich on a terminal, plain lines when not a TTY or under CI."""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class CaseProgress:
    def __init__(self, total: int, label: str = "cases") -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._rich: Progress | None = None
        if interactive():
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
            self._task = self._rich.add_task(label, total=total)

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
            if self._rich:
                self._rich.update(self._task, advance=1, description=line[:60])
            else:
                print(f"[{self.done}/{self.total}] {line}", file=sys.stderr, flush=True)
