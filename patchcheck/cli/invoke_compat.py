"""What patchcheck needs from invoke beyond its documented API, in one module (docs/invoke.md):
bad input is one line on stderr and the error's exit code (2), never a traceback.

- `PatchcheckConfig`: invoke's Config, with each configuration file read by patchcheck's
  checked reader (a file that does not parse is file:line:column), the levels merged with a
  conflict named by its source, and patchcheck's settings from `INVOKE_PATCHCHECK_*` kept as
  text (`config.settings.load` parses them and names the variable when one is wrong).
  It overrides public methods only; it reads and sets invoke's per-level state
  (`_<level>`, `_<level>_path`, `_<level>_found`, `_<level>_prefix`, `_runtime_path`,
  `_file_suffixes`, `_env_prefix`, `_env`), which `config.origin` reads as well.
- `PatchcheckProgram` (patchcheck.cli.program), the `patchcheck` command, uses it from the
  start; plain `invoke` runs the tasks through `PatchcheckExecutor` (invoke.yaml's
  `tasks.executor_class`), which upgrades invoke's Config to it (`Config.clone(into=...)`).
- `patch_plain_invoke` (tasks.py calls it): plain `invoke` made its own Program and Config
  before it imported tasks.py, and reads the project file, the `-f` file and the parsed
  options before it executes a task. No public hook reaches those steps, so four methods
  of invoke's classes are replaced (`PLAIN_INVOKE_PATCHES`), all public ones. A syntax
  error in ~/.invoke.yaml or /etc/invoke.yaml stays invoke's own error under plain `invoke`:
  invoke reads them before tasks.py.

Tested with invoke 3.0.3 (pyproject.toml pins the range); tests/unit/test_invoke_compat.py
has a test per replaced method and per piece of invoke state used here.
"""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn

from invoke import Collection, Config, Executor, Program
from invoke.config import AmbiguousMergeError
from invoke.exceptions import Exit, ParseError
from invoke.parser import ParseResult
from invoke.util import yaml

from patchcheck.config import origin
from patchcheck.errors import ConfigError, PatchcheckError, UsageError, error_line
from patchcheck.exit_codes import exit_code_for_error

_INVOKE_MERGE = Config.merge  # invoke's own, before patch_plain_invoke replaces it
_INVOKE_PARSE_TASKS = Program.parse_tasks


def fail(error: PatchcheckError) -> NoReturn:
    """The one handler: invoke's Program prints the line and exits with the error's code."""
    raise Exit(error_line(error), code=exit_code_for_error(error))


# --- files ---------------------------------------------------------------------------------

def _yaml(path: str) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def _json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def _python(path: str) -> dict[str, Any]:
    """A .py configuration file: its top-level names (no dunders); a module is no setting."""
    values = {k: v for k, v in runpy.run_path(path).items() if not k.startswith("__")}
    for name, value in values.items():
        if isinstance(value, ModuleType):
            fail(ConfigError(f"'{name}' is a module, not a setting (a tasks file?)", source=path))
    return values


PARSERS: dict[str, Callable[[str], Any]] = {"yaml": _yaml, "yml": _yaml, "json": _json,
                                            "py": _python}


def read_file(path: str) -> dict[str, Any]:
    """One configuration file: a failure is one line naming file:line:column (or the file);
    it must hold a mapping (an empty file is no settings)."""
    parse = PARSERS.get(os.path.splitext(path)[1].lstrip("."))
    if parse is None:
        fail(ConfigError(f"not a configuration file (use {', '.join('.' + s for s in PARSERS)})",
                         source=path))
    try:
        data = parse(path)
    except Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, in one line
        fail(origin.syntax_error(path, exc))
    if data is None:
        return {}
    if not isinstance(data, dict):
        fail(ConfigError(f"the file must hold a mapping (setting: value), not a "
                         f"{type(data).__name__}", source=path))
    return data


def _candidates(config: Config, level: str) -> list[str]:
    """The files of a level, in invoke's order (prefix + 'invoke' + each suffix)."""
    if level == "runtime":
        path = config._runtime_path
        return [] if path is None else [os.path.expanduser(str(path))]
    prefix = getattr(config, f"_{level}_prefix")
    if prefix is None:
        return []
    stem = os.path.expanduser(prefix + (config.file_prefix or config.prefix))
    return [f"{stem}.{suffix}" for suffix in config._file_suffixes]


def load_level(config: Config, level: str, merge: bool = True) -> None:
    """What `Config.load_<level>` does (system, user, project, runtime), through `read_file`:
    the first of the level's files that exists is the level. A runtime file (`-f FILE`,
    INVOKE_RUNTIME_CONFIG) that is missing is an error (invoke skips it silently)."""
    if getattr(config, f"_{level}_found") is not None:
        return  # loaded already
    candidates = _candidates(config, level)
    if not candidates:
        return
    path = next((p for p in candidates if os.path.exists(p)), None)
    if path is None and level == "runtime":
        fail(ConfigError("no such file", source=candidates[0]))
    if path is None:
        config._set(f"_{level}_found", False)
        return
    config._set(f"_{level}", read_file(path))
    config._set(f"_{level}_path", path)
    config._set(f"_{level}_found", True)
    if merge:
        config.merge()


def merge_levels(config: Config) -> None:
    """invoke's merge; a setting that is a mapping in one level and a single value in another
    is named with the source that has the odd shape."""
    try:
        _INVOKE_MERGE(config)
    except AmbiguousMergeError as exc:
        fail(origin.merge_conflict(config) or ConfigError(str(exc)))


# --- environment ---------------------------------------------------------------------------

def _leaves(node: Any, key: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key, value) of a merged configuration whose value is no mapping."""
    for name in list(node.keys()):
        value = node[name]
        if hasattr(value, "keys"):
            yield from _leaves(value, (*key, str(name)))
        else:
            yield (*key, str(name)), value


def _env_value(key: tuple[str, ...], default: Any, value: str, var: str) -> Any:
    """patchcheck's settings stay text; invoke's own are cast as invoke casts them (by the
    type of the value they replace), a failure named by its variable."""
    if key[0] == "patchcheck" or default is None or isinstance(default, str):
        return value
    if isinstance(default, bool):
        return value not in ("0", "")
    try:
        if isinstance(default, list | tuple):
            raise TypeError(var)
        return type(default)(value)
    except (TypeError, ValueError):
        fail(ConfigError(f"{value!r} is not a valid {origin.dotted(key)}", key, var))


def load_env(config: Config) -> None:
    """What `Config.load_shell_env` does: the variables of the settings the configuration
    has (prefix + KEY_PATH in capitals), as the env level."""
    config.merge()
    data: dict[str, Any] = {}
    for key, default in _leaves(config):
        var = config._env_prefix + "_".join(key).upper()
        if var in os.environ:
            node = data
            for part in key[:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = _env_value(key, default, os.environ[var], var)
    config._set(_env=data)
    config.merge()


# --- the classes ---------------------------------------------------------------------------

class PatchcheckConfig(Config):
    """invoke's Config, reading its files, merging and reading the environment
    patchcheck's way (public methods overridden)."""

    def load_system(self, merge: bool = True) -> None:
        load_level(self, "system", merge)

    def load_user(self, merge: bool = True) -> None:
        load_level(self, "user", merge)

    def load_project(self, merge: bool = True) -> None:
        load_level(self, "project", merge)

    def load_runtime(self, merge: bool = True) -> None:
        load_level(self, "runtime", merge)

    def merge(self) -> None:
        merge_levels(self)

    def load_shell_env(self) -> None:
        load_env(self)


class PatchcheckExecutor(Executor):
    """Runs the tasks with a PatchcheckConfig: plain `invoke` takes it from invoke.yaml's
    `tasks.executor_class` and hands in its own Config, upgraded here."""

    def __init__(self, collection: Collection, config: Config | None = None,
                 core: ParseResult | None = None) -> None:
        if config is not None and not isinstance(config, PatchcheckConfig):
            config = config.clone(into=PatchcheckConfig)
        super().__init__(collection, config, core)


def parse_tasks(program: Program) -> None:
    """invoke's task parsing; an unknown task or option is a usage error (exit 2: invoke says
    1, patchcheck's code for "a case deviates")."""
    try:
        _INVOKE_PARSE_TASKS(program)
    except ParseError as exc:
        fail(UsageError(str(exc)))


# For plain `invoke` (tasks.py): (class, method, replacement). Each is public and replaced
# because invoke made the instance (its own Program, its Config) before tasks.py was imported.
PLAIN_INVOKE_PATCHES: tuple[tuple[type, str, Callable[..., None]], ...] = (
    (Program, "parse_tasks", parse_tasks),  # unknown option: exit 2
    (Config, "load_project", PatchcheckConfig.load_project),  # invoke.yaml after tasks.py
    (Config, "load_runtime", PatchcheckConfig.load_runtime),  # -f FILE, INVOKE_RUNTIME_CONFIG
    (Config, "merge", PatchcheckConfig.merge),  # a conflict between levels, named
)


def patch_plain_invoke() -> None:
    """Install PLAIN_INVOKE_PATCHES (idempotent). Only tasks.py calls it: the `patchcheck`
    command needs none of them."""
    for cls, name, replacement in PLAIN_INVOKE_PATCHES:
        setattr(cls, name, replacement)
