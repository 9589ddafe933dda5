"""The command line: argv in, a task run and its exit code out; the invoke collection (`tasks.py`),
the `patchcheck` program, and what plain `invoke` needs for one-line errors (docs/invoke.md)."""
