"""Command-line conventions invoke does not give us by itself: bad input is one line on
stderr and exit code 2, never a traceback.

invoke reports an unknown task option ("No idea what '--foo' is!") with exit code 1, which
patchcheck uses for "a case deviates"; and a configuration file it cannot parse, a
configuration file given with `-f` that does not exist, or an environment variable it
cannot cast, end in a Python traceback. `usage_errors_exit_2` (tasks.py calls it once, when
invoke imports it: before invoke loads the project's invoke.yaml, the `-f` file and the
environment) hooks into invoke so that each of these reaches `fail`, the one handler: one
line naming the file (file:line:column) or the variable, and the exit code of the error.
Bad values in well-formed configuration are reported by `config.load` the same way, through
`commands.guarded`.

Not reachable from here: a syntax error in ~/.invoke.yaml or /etc/invoke.yaml; invoke reads
those before it imports tasks.py.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from invoke.config import AmbiguousMergeError, Config
from invoke.env import Environment
from invoke.exceptions import Exit, ParseError, UncastableEnvVar
from invoke.program import Program

from patchcheck.config import origin as configsource
from patchcheck.errors import ConfigError, PatchcheckError, UsageError, error_line
from patchcheck.result.outcome import exit_code_for_error

F = TypeVar("F", bound=Callable[..., Any])
LOADERS = ("_load_yaml", "_load_yml", "_load_json", "_load_py")


def fail(error: PatchcheckError) -> NoReturn:
    """The one handler: invoke prints the line and exits with the error's code."""
    raise Exit(error_line(error), code=exit_code_for_error(error))


def choose_scenario(config: Config, name: str) -> None:
    """`--scenario NAME`: the run's patchcheck.matrix.scenario; an unknown name is the
    option's error (the configuration file did not say it)."""
    from patchcheck.scenarios import registry as scenarios

    if not name:
        return
    if name not in scenarios.REGISTRY:
        fail(UsageError(f"--scenario '{name}': not a known scenario "
                        f"(known: {', '.join(scenarios.names())})"))
    config["patchcheck"].setdefault("matrix", {})["scenario"] = name


def _hooked(func: Any) -> bool:
    return bool(getattr(func, "_patchcheck", False))


def _mark(func: F) -> F:
    func._patchcheck = True  # type: ignore[attr-defined]
    return func


def _parse_errors_exit_2(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def parse_tasks(self: Program, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except ParseError as exc:
            fail(UsageError(str(exc)))
    return _mark(parse_tasks)


def _checked_loader(original: Callable[[Config, str], Any]) -> Callable[[Config, str], Any]:
    """A config file loader whose failures name the file, line and column; a file must hold
    a mapping (an empty one is no settings)."""
    @functools.wraps(original)
    def load(self: Config, path: str) -> Any:
        try:
            data = original(self, path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise  # invoke's way to say "no such file here": it tries the next suffix
            fail(configsource.syntax_error(path, exc))
        except Exception as exc:  # noqa: BLE001 - whatever the parser raises, in one line
            fail(configsource.syntax_error(path, exc))
        if data is None:
            return {}
        if not isinstance(data, dict):
            fail(ConfigError(f"the file must hold a mapping (setting: value), not a "
                             f"{type(data).__name__}", source=path))
        return data
    return _mark(load)


def _runtime_file_must_exist(original: Callable[..., None]) -> Callable[..., None]:
    """`invoke -f FILE` (or INVOKE_RUNTIME_CONFIG): invoke skips a missing file silently and
    ends in a traceback for an unknown suffix; both are usage errors."""
    @functools.wraps(original)
    def load_runtime(self: Config, *args: Any, **kwargs: Any) -> None:
        path = getattr(self, "_runtime_path", None)
        suffixes = tuple(f".{suffix}" for suffix in self._file_suffixes)
        if path is not None and not str(path).endswith(suffixes):
            fail(ConfigError(f"not a configuration file (use {', '.join(suffixes)})",
                             source=str(path)))
        original(self, *args, **kwargs)
        if path is not None and not getattr(self, "_runtime_found", None):
            fail(ConfigError("no such file", source=str(path)))
    return _mark(load_runtime)


def _merge_conflicts_named(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def merge(self: Config, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        except AmbiguousMergeError as exc:
            fail(configsource.merge_conflict(self) or ConfigError(str(exc)))
    return _mark(merge)


def _env_as_text(original: Callable[..., None]) -> Callable[..., None]:
    """patchcheck settings from INVOKE_PATCHCHECK_* stay text: `config.load` parses them and
    names the variable when one is wrong (invoke would cast by the default's type: int("abc")
    is a traceback, and a list cannot be cast at all). invoke's own settings keep invoke's
    casting, with a failure named by its variable."""
    @functools.wraps(original)
    def path_set(self: Environment, key_path: list[str], value: str) -> None:
        if key_path and key_path[0] == "patchcheck":
            node = self.data
            for part in key_path[:-1]:
                node = node.setdefault(part, {})
            node[key_path[-1]] = value
            return
        try:
            original(self, key_path, value)
        except (ValueError, TypeError, UncastableEnvVar):
            var = (self._prefix or "") + self._to_env_var(key_path)
            fail(ConfigError(f"{value!r} is not a valid {configsource.dotted(key_path)}",
                             tuple(key_path), var))
    return _mark(path_set)


def settings_from_env_as_text() -> None:
    if not _hooked(Environment._path_set):
        Environment._path_set = _env_as_text(Environment._path_set)  # type: ignore[method-assign]


def usage_errors_exit_2() -> None:
    """Install the hooks (idempotent)."""
    settings_from_env_as_text()
    if _hooked(Program.parse_tasks):
        return
    Program.parse_tasks = _parse_errors_exit_2(Program.parse_tasks)  # type: ignore[method-assign]
    for name in LOADERS:
        setattr(Config, name, _checked_loader(getattr(Config, name)))
    Config.load_runtime = _runtime_file_must_exist(Config.load_runtime)  # type: ignore[method-assign]
    Config.merge = _merge_conflicts_named(Config.merge)  # type: ignore[method-assign]
