"""Process exit codes: their numbers and meanings, in one place, and the code an error that
ends a task before or outside a run maps to.

Exit codes (documented in the README):
  0  every case came out as the model expected
  1  some case deviates from the model, or a fix introduces a specification violation
  2  usage or configuration error (bad option, spec, patch, config)
  3  infrastructure error (Docker engine, image build, disk)
`invoke check` uses git bisect's convention instead: 0 the patch fixes the bug, 1 it does
not, 125 the commit cannot be tested, 2 usage errors, and 128 no verdict (infrastructure
errors, or an unexpected failure): `git bisect run` aborts on 128 rather than reading it
as "bad". Which code a run ends with is decided in patchcheck.verdict: decision.py (matrix,
check), sequence.py (series, bisect) and probe.py (the probe alone).
"""

from __future__ import annotations

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


def exit_code_for_error(error: BaseException) -> int:
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, InfraError | PatchcheckError):
        return EXIT_INFRA
    return EXIT_INFRA

