"""The run's builds, made one after another in build order (each build uses every CPU),
the next ones prepared while one compiles; what each gave: a record or a failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from patchcheck.build.pipeline import Pipeline, Prepared
from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import BuildFailed
from patchcheck.guests.image import GuestImage
from patchcheck.jobs import InOrder
from patchcheck.run.cases import now


class RunBuilds:
    """Makes the builds of `order` as the run asks for them, and keeps what they gave:
    `records` (the builds that exist) and `failed` (the builds that failed, and why), both
    filled as builds are made, and each build's entry of the run's results (`entries`).

    The next builds are prepared while one compiles (jobs.InOrder): on a first run, the
    second suite's base and builder images and its source package, then the Linux guest's
    image (`wants_guest`), are made beside the first suite's compiler
    (docs/performance.md)."""

    def __init__(self, runtime: Runtime, settings: Settings, order: Sequence[str],
                 records: dict[str, BuildRecord], failed: dict[str, str],
                 entries: dict[str, dict[str, Any]], log: Callable[[str], None],
                 wants_guest: bool) -> None:
        self.runtime = runtime
        self.settings = settings
        self.log = log
        self.order = list(order)  # the builds not asked for yet, in the order they are made
        self.records = records
        self.failed = failed
        self.entries = entries
        self.pipeline = Pipeline(runtime, settings, log)
        self._ahead: InOrder[str, Prepared] = InOrder(
            "prepare", self.order, self.prepare, then=self.guest_image if wants_guest else None)

    def prepare(self, name: str) -> Prepared:
        """A build's inputs (source fetched, tree, builder image); the build itself if it
        is in the cache."""
        return self.pipeline.prepare(self.settings.builds[name])

    def guest_image(self) -> GuestImage:
        """The Linux guest's image (made once: made ahead, or now if that failed)."""
        from patchcheck.guests.image import ensure_image

        return ensure_image(self.runtime, self.settings,
                            image_id=self.pipeline.image("bookworm"), log=self.log)

    def take_cached(self) -> None:
        """The next builds while they are in the cache: they take a moment, so the run takes
        them all before the cases they allow go out (one source serves every destination)."""
        while self.order and self.make(self.order[0], cached_only=True):
            self.order.pop(0)

    def make_next(self) -> None:
        """The next build, compiled if it is not in the cache."""
        self.make(self.order.pop(0))

    def make(self, name: str, cached_only: bool = False) -> bool:
        """Make the build (or only take it from the cache): whether it exists now."""
        try:
            prepared = self._ahead(name)
            if cached_only and prepared.record is None:
                return False
            record = self.pipeline.make(prepared)
            self.records[name] = record
            self.entries[name] = {**record.to_dict(), "finished": now()}
            return True
        except BuildFailed as exc:
            if cached_only:
                return False  # its failure is recorded by make() next
            self.failed[name] = str(exc)
            self.entries[name] = {"name": name, "failed": str(exc),
                                  "source": self.settings.builds[name].source}
            self.log(f"[{name}] build failed: {exc}")
            return False

    def stop(self) -> None:
        """Prepare no more builds (an interrupted run leaves no work behind)."""
        self._ahead.stop()
