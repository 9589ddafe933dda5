"""The command line: argv in, a task run and its exit code out; the invoke collection (`tasks.py`),
the installed `patchcheck` program and the few places invoke needs help to give one-line errors."""
