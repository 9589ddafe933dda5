"""Work on threads that an interrupted run does not wait for: one background task
(`in_background`), and a pool whose results stream back as they come (`parallel`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
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


def parallel(items: Iterable[T], func: Callable[[T], Iterable[R]], jobs: int
             ) -> Iterator[tuple[T, R]]:
    """Run func over items on `jobs` daemon threads; func gives an item's results one by
    one, and each is yielded as (item, result) as soon as it is there.

    `items` may be lazy and slow (a generator that builds QEMU before it gives the cases
    that need the build): a thread of its own takes them, so the workers run what is there
    while it waits. What the generator raises reaches the caller, after the work given out
    before it.

    Daemon threads, not a ThreadPoolExecutor: when the run is interrupted, the caller stops
    consuming, removes the QEMU containers and returns at once; a case still in flight must
    not hold the process open (an executor's workers are joined at exit).
    """
    todo: queue.Queue[tuple[T] | None] = queue.Queue()  # None: no more work
    done: queue.Queue[tuple[str, Any, BaseException | None]] = queue.Queue()
    stopped = threading.Event()

    def feeder() -> None:
        count, error = 0, None
        try:
            for item in items:
                if stopped.is_set():
                    break
                todo.put((item,))
                count += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            error = exc
        for _ in range(jobs):
            todo.put(None)
        done.put(("fed", count, error))

    def worker() -> None:
        while True:
            entry = todo.get()
            if entry is None or stopped.is_set():
                return
            item = entry[0]
            try:
                for result in func(item):
                    done.put(("result", (item, result), None))
                done.put(("finished", item, None))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                done.put(("finished", item, exc))

    jobs = max(1, jobs)
    threading.Thread(target=feeder, name="feeder", daemon=True).start()
    for _ in range(jobs):
        threading.Thread(target=worker, daemon=True).start()
    try:
        fed: int | None = None
        fed_error: BaseException | None = None
        finished = 0
        while fed is None or finished < fed:
            kind, payload, error = done.get()
            if kind == "fed":
                fed, fed_error = payload, error
            elif kind == "finished":
                finished += 1
                if error is not None:
                    raise error
            else:
                yield payload
        if fed_error is not None:
            raise fed_error
    finally:
        stopped.set()  # the workers stop after the item each is running; the feeder too
