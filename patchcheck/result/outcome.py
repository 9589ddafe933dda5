"""Outcomes and process exit codes.

Exit codes (documented in the README):
  0  every case came out as the model expected
  1  some case deviates from the model, or a fix introduces a specification violation
  2  usage or configuration error (bad option, spec, patch, config)
  3  infrastructure error (Docker engine, image build, disk)
`invoke check` uses git bisect's convention instead: 0 the patch fixes the bug, 1 it does
not, 125 the commit cannot be tested, 2 usage errors, and 128 no verdict (infrastructure
errors, or an unexpected failure): `git bisect run` aborts on 128 rather than reading it
as "bad". Which code a run ends with is decided in one place, patchcheck.verdict.decision; errors
raised before or outside a run are mapped here (exit_code_for_error).
"""

from __future__ import annotations

import enum

from patchcheck.errors import InfraError, PatchcheckError, UsageError

EXIT_OK = 0
EXIT_DEVIATION = 1
EXIT_USAGE = 2
EXIT_INFRA = 3

# `invoke check`, for `git bisect run`: 0 good, 1 bad, 125 skip this commit.
CHECK_FIX_WORKS = 0  # the reproducer fails without the fix, every case passes with it, and
#                     the fix introduces no specification violation
CHECK_FIX_FAILS = 1  # any of these proven wrong
CHECK_CANNOT_TEST = 125  # does not build, the fix does not apply, its state is unknown
CHECK_NO_VERDICT = 128  # infrastructure errors, or an unexpected failure: git bisect run
#                        aborts (every code from 1 to 127 but 125 would read as "bad")


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


def exit_code_for_error(error: BaseException) -> int:
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, InfraError | PatchcheckError):
        return EXIT_INFRA
    return EXIT_INFRA

