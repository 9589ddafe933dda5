"""Work on threads that an interrupted run does not wait for: one background task
(`in_background`), and a pool whose results stream back as they come (`parallel`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_background(name: str, func: Callable[[], R]) -> Callable[[], R]:
    """Start func on a daemon thread (an interrupted run does not wait for it); the function
    returned waits for its result, or raises what it raised."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()

    def result() -> R:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]
    return result


def parallel(items: Sequence[T], func: Callable[[T], Iterable[R]], jobs: int
             ) -> Iterator[tuple[T, R]]:
    """Run func over items on `jobs` daemon threads; func gives an item's results one by
    one, and each is yielded as (item, result) as soon as it is there.

    Daemon threads, not a ThreadPoolExecutor: when the run is interrupted, the caller stops
    consuming, removes the QEMU containers and returns at once; a case still in flight must
    not hold the process open (an executor's workers are joined at exit).
    """
    todo: queue.Queue[T] = queue.Queue()
    done: queue.Queue[tuple[T, R | None, BaseException | None, bool]] = queue.Queue()
    for item in items:
        todo.put(item)

    def worker() -> None:
        while True:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                for result in func(item):
                    done.put((item, result, None, False))
                done.put((item, None, None, True))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                done.put((item, None, exc, True))

    for _ in range(max(1, min(jobs, len(items)))):
        threading.Thread(target=worker, daemon=True).start()
    try:
        finished = 0
        while finished < len(items):
            item, result, error, last = done.get()
            if error is not None:
                raise error
            if last:
                finished += 1
            else:
                yield item, result  # type: ignore[misc]
    finally:
        while not todo.empty():  # stop the workers after the case each is running
            try:
                todo.get_nowait()
            except queue.Empty:
                break
