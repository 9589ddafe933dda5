"""Commands: settings and a task's options in, an exit code out; what each invoke task does,
usable without invoke (matrix, build, check, nightly, clean, report, merge, bench...)."""
