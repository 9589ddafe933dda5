"""Command-line conventions invoke does not give us by itself.

invoke reports an unknown task option ("No idea what '--foo' is!") with exit code 1, which
patchcheck uses for "a case deviates". `usage_errors_exit_2` makes such parse errors one
line on stderr and exit code 2, like every other usage error; it also lets environment
variables set list settings (`config.list_settings_from_env`). tasks.py calls it once.
"""

from __future__ import annotations

import sys
from typing import Any

from invoke.exceptions import ParseError
from invoke.program import Program

from .outcome import EXIT_USAGE


def usage_errors_exit_2() -> None:
    from .config import list_settings_from_env

    list_settings_from_env()
    if getattr(Program.parse_tasks, "_patchcheck", False):
        return
    original = Program.parse_tasks

    def parse_tasks(self: Program, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except ParseError as exc:
            print(f"patchcheck: error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    parse_tasks._patchcheck = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]
