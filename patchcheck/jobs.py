"""Work on threads that an interrupted run does not wait for: one background task
(`in_background`), a sequence of tasks done ahead of the thread that needs their results
(`InOrder`), and a pool whose results stream back as they come (`parallel`)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K")
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


class InOrder(Generic[K, R]):
    """func(key) for each key, one after the other, on a daemon thread, then `then` (its
    outcome is not kept: a caller that needs it asks again). Calling the object waits for
    one key's result, or raises what func raised for it; `stop()` skips the keys not
    started yet (an interrupted run leaves no work behind)."""

    def __init__(self, name: str, keys: Iterable[K], func: Callable[[K], R],
                 then: Callable[[], object] | None = None) -> None:
        self._order = list(keys)
        self._func = func
        self._then = then
        self._results: dict[int, tuple[bool, Any]] = {}  # index -> (ok, result or exception)
        self._ready = threading.Condition()
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        for i, key in enumerate(self._order):
            if self._stopped.is_set():
                outcome: tuple[bool, Any] = (False, InterruptedError("stopped"))
            else:
                try:
                    outcome = (True, self._func(key))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    outcome = (False, exc)
            with self._ready:
                self._results[i] = outcome
                self._ready.notify_all()
        if self._then is not None and not self._stopped.is_set():
            try:
                self._then()
            except Exception:  # noqa: BLE001 - the caller does it again and sees why
                pass

    def __call__(self, key: K) -> R:
        i = self._order.index(key)  # ValueError: not one of the keys
        with self._ready:
            self._ready.wait_for(lambda: i in self._results)
        ok, value = self._results[i]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._stopped.set()


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
    yield from _Pool(items, func, jobs).stream()


class _Pool(Generic[T, R]):
    """The threads of one `parallel`: a feeder that takes the items, `jobs` workers, and the
    queue of what they did, which `stream` reads."""

    def __init__(self, items: Iterable[T], func: Callable[[T], Iterable[R]], jobs: int) -> None:
        self.items, self.func, self.jobs = items, func, max(1, jobs)
        self.todo: queue.Queue[tuple[T] | None] = queue.Queue()  # None: no more work
        # ("fed", count, error), ("result", (item, result), None), ("finished", item, error)
        self.done: queue.Queue[tuple[str, Any, BaseException | None]] = queue.Queue()
        self.stopped = threading.Event()

    def feed(self) -> None:
        count, error = 0, None
        try:
            for item in self.items:
                if self.stopped.is_set():
                    break
                self.todo.put((item,))
                count += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            error = exc
        for _ in range(self.jobs):
            self.todo.put(None)
        self.done.put(("fed", count, error))

    def work(self) -> None:
        while True:
            entry = self.todo.get()
            if entry is None or self.stopped.is_set():
                return
            item = entry[0]
            try:
                for result in self.func(item):
                    self.done.put(("result", (item, result), None))
                self.done.put(("finished", item, None))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self.done.put(("finished", item, exc))

    def stream(self) -> Iterator[tuple[T, R]]:
        """Start the threads and yield the results as they come; raise the first error of
        an item, or the feeder's after the work it gave out. Leaving (done, raised or
        closed) stops the threads after the item each is running."""
        threading.Thread(target=self.feed, name="feeder", daemon=True).start()
        for _ in range(self.jobs):
            threading.Thread(target=self.work, daemon=True).start()
        try:
            fed: int | None = None
            fed_error: BaseException | None = None
            finished = 0
            while fed is None or finished < fed:
                kind, payload, error = self.done.get()
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
            self.stopped.set()  # the workers stop after the item each is running; the feeder too
