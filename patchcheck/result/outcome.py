"""Outcomes: what a migration case did, as seen from the destination QEMU. What an outcome
means for a verdict, and the exit codes, are patchcheck.verdict's."""

from __future__ import annotations

import enum


class Observed(enum.StrEnum):
    """What a migration case did, as seen from the destination QEMU."""

    PASSED = "passed"
    FAILED = "failed"  # the destination rejected the stream with the scenario's own error
    FAILED_OTHER = "failed-other"  # it rejected the stream with another error: never the bug
    FLAKY = "flaky"  # a first attempt failed, a second passed: never a pass for a verdict
    ERROR = "error"  # infrastructure: timeout, crash of the source, QMP lost, no heartbeat
    SKIPPED = "skipped"  # a build this case needs failed

    @property
    def inconclusive(self) -> bool:
        """Says nothing about the migration: an error, a skipped case."""
        return self in (Observed.ERROR, Observed.SKIPPED)

    @property
    def no_verdict(self) -> bool:
        """Gives no verdict on the case: inconclusive, or flaky (a pass that is none). A
        resumed run runs it again; a series or a matrix with it has no verdict."""
        return self.inconclusive or self == Observed.FLAKY

    @property
    def rejected(self) -> bool:
        """The destination rejected the stream (with the bug's error or another)."""
        return self in (Observed.FAILED, Observed.FAILED_OTHER)
