"""Outcomes and the one place that maps them to process exit codes.

Exit codes (documented in the README):
  0  every case came out as the model expected
  1  some case deviates from the model (the fix does not do what it claims)
  2  usage or configuration error (bad option, spec, patch, config)
  3  infrastructure error (Docker engine, image build, disk)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from .errors import InfraError, PatchcheckError, UsageError

EXIT_OK = 0
EXIT_DEVIATION = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


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
