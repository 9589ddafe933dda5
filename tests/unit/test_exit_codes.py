"""Issue 25: the exit codes `git bisect run` reads right. `invoke check` says "no verdict"
with 128 (git bisect run aborts) for infrastructure errors, an interruption and any
unexpected exception, which is one line on stderr naming a log that holds the traceback;
bad input stays 2 and other tasks keep 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchcheck.commands import tasks as commands
from patchcheck.config.settings import Settings
from patchcheck.errors import BuildFailed, InfraError, UsageError
from patchcheck.exit_codes import CHECK_NO_VERDICT, EXIT_INFRA, EXIT_USAGE

pytestmark = pytest.mark.usefixtures("isolated_env")


def _config(tmp_path: Path) -> dict[str, object]:
    return {"patchcheck": {"cache_dir": str(tmp_path / "cache")}}


def _raising(error: BaseException):  # type: ignore[no-untyped-def]
    def command(settings: Settings) -> int:
        raise error
    return command


@pytest.mark.parametrize("error, check_code, matrix_code", [
    (InfraError("the Docker engine did not answer"), CHECK_NO_VERDICT, EXIT_INFRA),
    (BuildFailed("ninja: build stopped"), CHECK_NO_VERDICT, EXIT_INFRA),
    (KeyboardInterrupt(), CHECK_NO_VERDICT, EXIT_INFRA),
    (UsageError("--commit: 'nope' is not a ref"), EXIT_USAGE, EXIT_USAGE),
    (RuntimeError("a bug of ours"), CHECK_NO_VERDICT, EXIT_INFRA),
])
def test_no_verdict_is_the_task_s_own_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           error: BaseException, check_code: int,
                                           matrix_code: int) -> None:
    assert commands.guarded(_raising(error), _config(tmp_path),
                            no_verdict=CHECK_NO_VERDICT) == check_code
    assert commands.guarded(_raising(error), _config(tmp_path)) == matrix_code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith("patchcheck: ") for line in err.splitlines())


def test_an_unexpected_exception_is_one_line_and_a_log_with_its_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def buggy(settings: Settings) -> int:
        return {"a": 1}["missing"]

    assert commands.guarded(buggy, _config(tmp_path), no_verdict=CHECK_NO_VERDICT) == 128
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("patchcheck: unexpected error: KeyError: 'missing' (traceback: ")
    assert line.endswith("; exit 128: no verdict)")
    log = Path(line.split("(traceback: ")[1].split(";")[0])
    assert log.parent == tmp_path / "cache" / "crashes"
    text = log.read_text()
    assert text.startswith("Traceback (most recent call last):") and "in buggy" in text
    assert text.rstrip().endswith("KeyError: 'missing'")
