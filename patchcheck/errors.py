"""The exceptions that end a run, each tied to the exit code it maps to (see outcome.py)."""


class PatchcheckError(Exception):
    """A problem reported to the user as one line; never a traceback."""


class UsageError(PatchcheckError):
    """Bad input: an option, a source spec, a patch file, the configuration."""


class InfraError(PatchcheckError):
    """The machinery failed: Docker engine unreachable, image build broke, disk full."""


class BuildFailed(PatchcheckError):
    """Building one QEMU tree failed; cases depending on it are skipped."""

    def __init__(self, message: str, log_path: str | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path
