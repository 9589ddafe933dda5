"""The installed `patchcheck` command: the package's own task collection (patchcheck/cli/collection.py)
run through invoke's Program, from any directory, with the package's invoke.yaml as the
project configuration (the checkout's invoke.yaml links to the same file).

It owns its configuration loading through invoke's public hooks (a Program subclass with
`config_class` and `executor_class`): every file, ~/.invoke.yaml and /etc/invoke.yaml too,
is read by patchcheck's checked reader, so a syntax error is one line and exit 2, never a
traceback. Nothing of invoke's is replaced (docs/invoke.md).
"""

from __future__ import annotations

from pathlib import Path

from invoke import Program

from patchcheck import __version__
from patchcheck.cli import invoke_compat
from patchcheck.cli.invoke_compat import PatchcheckConfig, PatchcheckExecutor

PACKAGE_CONFIG = Path(__file__).resolve().parent  # holds the project invoke.yaml


class PatchcheckProgram(Program):
    def create_config(self) -> None:
        super().create_config()  # a PatchcheckConfig: /etc and ~/.invoke.yaml, checked
        self.config.set_project_location(str(PACKAGE_CONFIG))
        self.config.load_project()

    def parse_tasks(self) -> None:
        invoke_compat.parse_tasks(self)  # an unknown task or option: exit 2


def program() -> PatchcheckProgram:
    from patchcheck.cli.collection import ns

    return PatchcheckProgram(namespace=ns, name="patchcheck", binary="patchcheck",
                             version=__version__, config_class=PatchcheckConfig,
                             executor_class=PatchcheckExecutor)


def main() -> None:
    program().run()


if __name__ == "__main__":
    main()
