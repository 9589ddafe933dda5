"""Bad configuration read before tasks.py: one line and exit 2 from plain `invoke` too.

invoke reads /etc/invoke.yaml and ~/.invoke.yaml when it starts, before it imports the
project's tasks.py, so the hooks of `cli.usage_errors_exit_2` come too late for a syntax
error there. The `patchcheck` command installs them first; for `invoke` in a checkout,
`python3 -m patchcheck.cli.guard` (scripts/setup-host runs it) writes a one-line `.pth`
file into site-packages. Python runs that line when an interpreter starts; it does nothing
unless the program is `invoke` (`inv`, `python3 -m invoke`) and the tasks.py invoke will load is patchcheck's,
and then it installs the same hooks before invoke reads any file.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

PTH_NAME = "patchcheck-invoke.pth"
# One line, run by site.py at every interpreter start: cheap (a name test) for every program
# but invoke. The program is invoke when its script is `invoke`/`inv` (the console scripts)
# or the interpreter was started with `-m invoke` (sys.orig_argv: sys.argv is not final
# yet). An ImportError (patchcheck uninstalled, an older version without the guard, an
# editable install whose checkout is gone) leaves invoke as it is, silently.
PTH_LINE = (
    "import sys; (sys.argv[:1] and sys.argv[0].rsplit('/', 1)[-1] in ('invoke', 'inv') "
    "or ('-m', 'invoke') in zip(sys.orig_argv, sys.orig_argv[1:])) "
    "and exec('try:\\n import patchcheck.cli.guard as guard\\nexcept ImportError:\\n"
    " pass\\nelse:\\n guard.activate()')\n"
)
TASKS_MARK = "patchcheck"


def project_tasks(start: Path) -> Path | None:
    """The tasks.py invoke would load from `start` (it searches upwards), if there is one."""
    for folder in (start, *start.parents):
        candidate = folder / "tasks.py"
        if candidate.is_file():
            return candidate
    return None


def is_patchcheck_project(start: Path) -> bool:
    tasks = project_tasks(start)
    if tasks is None:
        return False
    try:
        return TASKS_MARK in tasks.read_text(errors="replace")
    except OSError:
        return False


def activate() -> None:
    """From the .pth line, in an `invoke` process: install patchcheck's hooks when the
    project is patchcheck's. It must never stop invoke, whatever it meets."""
    try:
        if is_patchcheck_project(Path.cwd()):
            from patchcheck.cli.invoke_compat import usage_errors_exit_2

            usage_errors_exit_2()
    except Exception:  # noqa: BLE001 - a guard that breaks invoke would be worse than none
        return


def install(site_dir: Path) -> Path:
    """Write the .pth file into `site_dir` (idempotent); its path."""
    path = site_dir / PTH_NAME
    if not path.is_file() or path.read_text() != PTH_LINE:
        path.write_text(PTH_LINE)
    return path


def main() -> int:
    site_dir = Path(sysconfig.get_paths()["purelib"])
    try:
        path = install(site_dir)
    except OSError as exc:
        print(f"patchcheck: cannot write {site_dir / PTH_NAME}: {exc.strerror}", file=sys.stderr)
        return 3
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
