"""Where a configuration value came from, so that an error can say so in one line.

invoke merges its sources in a fixed order (lowest first): its defaults, the collection
(tasks.py), /etc/invoke.yaml, ~/.invoke.yaml, the project's invoke.yaml, `INVOKE_*`
environment variables, the runtime file (`invoke -f FILE`), overrides. A setting comes from
the last of them that has it: a file is named as file:line:column (YAML files; the line and
column of the value), a variable by its name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from invoke.util import yaml

from patchcheck.errors import ConfigError

LEVELS = ("defaults", "collection", "system", "user", "project", "env", "runtime",
          "overrides", "modifications")
FILE_LEVELS = ("system", "user", "project", "runtime")
STRUCTURE_LEVELS = ("defaults", "collection", "project")  # what shape a setting has


def dotted(key: Sequence[str]) -> str:
    return ".".join(str(part) for part in key)


def _data(config: Any, level: str) -> Mapping[str, Any]:
    if level in FILE_LEVELS and not getattr(config, f"_{level}_found", False):
        return {}
    data = getattr(config, f"_{level}", None)
    return data if isinstance(data, Mapping) else {}


def _lookup(data: Any, key: Sequence[str]) -> tuple[bool, Any]:
    for part in key:
        if not isinstance(data, Mapping) or part not in data:
            return False, None
        data = data[part]
    return True, data


def env_var(config: Any, key: Sequence[str]) -> str:
    prefix = getattr(config, "_env_prefix", None) or "INVOKE_"
    return prefix + "_".join(key).upper()


def yaml_position(path: str, key: Sequence[str]) -> tuple[int, int] | None:
    """1-based line and column of the value at `key` in a YAML file (of the deepest part of
    `key` the file has), or None."""
    try:
        node = yaml.compose(Path(path).read_text(errors="replace"))
    except (OSError, yaml.YAMLError):
        return None
    position = None
    for part in key:
        if not isinstance(node, yaml.MappingNode):
            break
        values = [v for k, v in node.value if getattr(k, "value", None) == str(part)]
        if not values:
            break
        node = values[-1]
        position = (node.start_mark.line + 1, node.start_mark.column + 1)
    return position


def file_position(path: str, key: Sequence[str]) -> str:
    position = yaml_position(path, key) if path.endswith((".yaml", ".yml")) else None
    return f"{path}:{position[0]}:{position[1]}" if position else path


def describe(config: Any, level: str, key: Sequence[str]) -> str:
    """How to name the place where `level` set `key`."""
    if level in FILE_LEVELS:
        return file_position(str(getattr(config, f"_{level}_path", "")), key)
    if level == "env":
        return env_var(config, key)
    return ""


def source_of(config: Any, key: Sequence[str]) -> str:
    """Where the value at `key` (or its nearest parent that is set) came from; "" when
    unknown (a plain mapping, or invoke's own defaults)."""
    for depth in range(len(key), 0, -1):
        for level in reversed(LEVELS):
            if _lookup(_data(config, level), key[:depth])[0]:
                return describe(config, level, key[:depth])
    return ""


def syntax_error(path: str, exc: BaseException) -> ConfigError:
    """A file invoke could not load, as one line: file:line:column and the parser's words."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.YAMLError) and mark is not None:
        context = getattr(exc, "context", None)
        problem = str(getattr(exc, "problem", None) or "not valid YAML")
        return ConfigError(problem + (f" ({context})" if context else ""),
                           source=f"{path}:{mark.line + 1}:{mark.column + 1}")
    if isinstance(exc, json.JSONDecodeError):
        return ConfigError(exc.msg, source=f"{path}:{exc.lineno}:{exc.colno}")
    if isinstance(exc, SyntaxError):
        return ConfigError(str(exc.msg), source=f"{path}:{exc.lineno}:{exc.offset or 1}")
    if isinstance(exc, OSError):
        return ConfigError(f"cannot read it: {exc.strerror or exc}", source=path)
    return ConfigError(f"{type(exc).__name__}: {exc}", source=path)


def _first_conflict(layers: Sequence[Any], prefix: tuple[str, ...] = ()
                    ) -> tuple[str, ...] | None:
    """The first key that is a mapping in one layer and a single value in another."""
    keys = dict.fromkeys(k for layer in layers if isinstance(layer, Mapping) for k in layer)
    for key in keys:
        values = [layer[key] for layer in layers if isinstance(layer, Mapping) and key in layer]
        kinds = {isinstance(v, Mapping) for v in values}
        if len(kinds) > 1:
            return (*prefix, str(key))
        if kinds == {True}:
            found = _first_conflict(values, (*prefix, str(key)))
            if found:
                return found
    return None


def merge_conflict(config: Any) -> ConfigError | None:
    """Why invoke cannot merge its sources (a mapping in one, a single value in another),
    blaming the source whose value has the other shape than the setting's."""
    key = _first_conflict([_data(config, level) for level in LEVELS])
    if key is None:
        return None
    defined = [(level, value) for level in LEVELS
               for found, value in [_lookup(_data(config, level), key)] if found]
    shape = next((v for level, v in defined if level in STRUCTURE_LEVELS), defined[0][1])
    mapping = isinstance(shape, Mapping)
    for level, value in defined:
        if isinstance(value, Mapping) != mapping:
            problem = (f"{dotted(key)} must be a mapping, not {value!r}" if mapping
                       else f"{dotted(key)} must be a single value, not a mapping")
            return ConfigError(problem, key, describe(config, level, key))
    return None
