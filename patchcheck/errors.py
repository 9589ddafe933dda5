"""The exceptions that end a run, each tied to the exit code it maps to (see outcome.py)."""

from __future__ import annotations

import errno


class PatchcheckError(Exception):
    """A problem reported to the user as one line; never a traceback."""


class UsageError(PatchcheckError):
    """Bad input: an option, a source spec, a patch file, the configuration."""


class ConfigError(UsageError):
    """A bad configuration value or file. `key` is the setting's path (("patchcheck",
    "matrix", "jobs")), `source` where it came from: file:line:column or a variable's name."""

    def __init__(self, problem: str, key: tuple[str, ...] = (), source: str = "") -> None:
        self.problem, self.key, self.source = problem, key, source
        super().__init__(f"configuration: {source}: {problem}" if source
                         else f"configuration: {problem}")

    def at(self, source: str) -> ConfigError:
        return ConfigError(self.problem, self.key, source)


class InfraError(PatchcheckError):
    """The machinery failed: Docker engine unreachable, image build broke, disk full."""


class DiskFull(InfraError):
    """A file system ran out of space (or quota) while patchcheck or a build wrote to it: a
    fault of the machine (exit 3), never a commit that does not build."""


# ENOSPC and EDQUOT: the writes a full file system (or a user's quota) refuses
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(error: BaseException) -> bool:
    """Whether `error` is a write refused for want of space (also shutil.copytree's Error,
    which lists (source, target, why) for each file it could not copy)."""
    if not isinstance(error, OSError):
        return False
    if error.errno in NO_SPACE:
        return True
    listed = error.args[0] if error.args and isinstance(error.args[0], list) else []
    return any(f"[Errno {number}]" in str(item) for item in listed for number in NO_SPACE)


def disk_full(where: str, directory: object, stopped: str) -> DiskFull:
    """The one line of a full file system: which one, and what stopped."""
    return DiskFull(f"no space left on device in {where} ({directory}): {stopped}; free space "
                    "and run again")


class BuildFailed(PatchcheckError):
    """Building one QEMU tree failed; cases depending on it are skipped."""

    def __init__(self, message: str, log_path: str | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path


def error_line(error: BaseException) -> str:
    """The one line on stderr an error is reported as (its lines joined, nothing cut)."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"patchcheck: error: {text or type(error).__name__}"


def interrupt(signum: int, frame: object) -> None:
    """A SIGTERM handler: the run stops as it does on Ctrl-C (KeyboardInterrupt), so that what
    finished is written and the containers it started are removed."""
    raise KeyboardInterrupt(f"signal {signum}")
