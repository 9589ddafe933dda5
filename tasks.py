"""patchcheck's invoke tasks, for `invoke` in the checkout: the package's own collection
(patchcheck/cli/collection.py), which the installed `patchcheck` command runs as well.

Run `invoke --list` for the tasks and `invoke --help TASK` for their options.
"""

from patchcheck.cli.collection import ns
from patchcheck.cli.invoke_compat import patch_plain_invoke

# plain `invoke` made its Program and Config before it imported this file: one-line errors
# for the project's invoke.yaml, `-f FILE` and unknown options need these (docs/invoke.md)
patch_plain_invoke()

__all__ = ["ns"]
