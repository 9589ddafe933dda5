"""Outcomes and the one place that maps them to process exit codes.

Exit codes (documented in the README):
  0  every case came out as the model expected
  1  some case deviates from the model (the fix does not do what it claims)
  2  usage or configuration error (bad option, spec, patch, config)
  3  infrastructure error (Docker engine, image build, disk)
`invoke check` uses git bisect's convention instead: 0 the fix works, 1 it does not,
125 the commit cannot be tested (usage errors are still 2, infrastructure errors 3).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .errors import InfraError, PatchcheckError, UsageError

EXIT_OK = 0
EXIT_DEVIATION = 1
EXIT_USAGE = 2
EXIT_INFRA = 3

# `invoke check`, for `git bisect run`: 0 good, 1 bad, 125 skip this commit.
CHECK_FIX_WORKS = 0  # the reproducer fails without the fix and every case passes with it
CHECK_FIX_FAILS = 1
CHECK_CANNOT_TEST = 125  # does not build, or the fix does not apply


class Observed(enum.StrEnum):
    """What a migration case did, as seen from the destination QEMU."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # infrastructure: timeout, crash of the source, QMP lost
    SKIPPED = "skipped"  # a build this case needs failed


def exit_code_for_error(error: BaseException) -> int:
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, InfraError | PatchcheckError):
        return EXIT_INFRA
    return EXIT_INFRA


def exit_code_for_cases(cases: Iterable[tuple[Observed, Observed]]) -> int:
    """(observed, expected) pairs -> exit code: infrastructure errors win over deviations."""
    code = EXIT_OK
    for observed, expected in cases:
        if observed in (Observed.ERROR, Observed.SKIPPED):
            return EXIT_INFRA
        if observed != expected:
            code = EXIT_DEVIATION
    return code
