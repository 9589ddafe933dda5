"""The installed `patchcheck` command: the package's own task collection (patchcheck/cli/collection.py)
run through invoke's Program, from any directory, with the package's invoke.yaml as the
project configuration (the checkout's invoke.yaml links to the same file).

Configuration files are read through patchcheck's checked loaders from the start, so a file
with a syntax error (~/.invoke.yaml too) is one line and exit 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Program

from patchcheck import __version__
from patchcheck.cli.invoke_compat import usage_errors_exit_2


class PatchcheckProgram(Program):
    def create_config(self) -> None:
        super().create_config()
        self.config.set_project_location(str(Path(__file__).resolve().parent))
        self.config.load_project()


def main() -> None:
    usage_errors_exit_2()  # before any configuration file is read
    from patchcheck.cli.collection import ns

    PatchcheckProgram(namespace=ns, name="patchcheck", binary="patchcheck",
                      version=__version__).run()


if __name__ == "__main__":
    main()
