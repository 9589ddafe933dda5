"""patchcheck's invoke tasks, for `invoke` in the checkout: the package's own collection
(patchcheck/cli/collection.py), which the installed `patchcheck` command runs as well.

Run `invoke --list` for the tasks and `invoke --help TASK` for their options.
"""

from patchcheck.cli.collection import ns

__all__ = ["ns"]
