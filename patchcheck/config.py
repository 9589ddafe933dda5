"""A typed view of invoke's configuration tree (the `patchcheck:` section of invoke.yaml)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class ImageRule:
    generation: str
    max_version: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BuildSpec:
    name: str
    source: str
    fix: str


@dataclass(frozen=True)
class MatrixSettings:
    builds: tuple[str, ...]
    pairs: tuple[str, ...]
    machines: str
    guests: Mapping[str, str]
    force_native_hotplug: bool
    ram_mib: int
    accel: str
    timeout: float
    jobs: int
    semantics: bool = True


@dataclass(frozen=True)
class NightlySettings:
    remote: str = ""
    refs: tuple[str, ...] = ()
    fix: str = "v2"


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    reports_dir: Path
    apt_mirror: str
    image_rules: tuple[ImageRule, ...]
    configure: tuple[str, ...]
    build_jobs: int
    builds: Mapping[str, BuildSpec]
    matrix: MatrixSettings
    devices: tuple[str, ...] = ()  # minimal build: only these Kconfig devices (and what they select)
    minimal_configure: tuple[str, ...] = ()  # added to `configure` for a minimal build only
    minimal_optimize: tuple[str, ...] = ()  # minimal build: PATTERN:FLAGS per object file
    minimal_pch: str = ""  # minimal build: the header to precompile, as sources include it
    nightly: NightlySettings = NightlySettings()
    project_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent)

    @property
    def containers_dir(self) -> Path:
        return self.project_dir / "containers"

    @property
    def minimal(self) -> bool:
        """Builds are minimal (only `devices`, plus `minimal_configure`)."""
        return bool(self.devices)

    def full_configuration(self) -> Settings:
        """The same settings with QEMU's default device set and `configure` alone (what
        `build.devices: []` gives): the feature-trimmed configuration the minimal one is
        measured and compared against."""
        return replace(self, devices=())


def parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        raise UsageError(f"configuration: '{text}' is not a version like 8.0") from None


def _section(tree: Any, key: str) -> Mapping[str, Any]:
    value = tree.get(key) if isinstance(tree, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UsageError(f"configuration: patchcheck.{key} must be a mapping")
    return value


def _list(value: Any, what: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise UsageError(f"configuration: {what} must be a list")


def _int(value: Any, what: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"configuration: {what} must be an integer, not {value!r}") from None
    if number < minimum:
        raise UsageError(f"configuration: {what} must be >= {minimum}, not {number}")
    return number


def _devices(value: Any) -> tuple[str, ...]:
    """build.devices: Kconfig lines such as CONFIG_Q35=y (written as the device .mak file)."""
    devices = _list(value, "build.devices")
    for line in devices:
        if not re.fullmatch(r"CONFIG_[A-Z0-9_]+=[yn]", line):
            raise UsageError(f"configuration: build.devices entry '{line}' is not a Kconfig "
                             "line like CONFIG_Q35=y")
    return devices


def _optimize(value: Any) -> tuple[str, ...]:
    """build.minimal_optimize: PATTERN:FLAGS rules for the compiler wrapper."""
    rules = []
    for rule in _list(value, "build.minimal_optimize"):
        pattern, colon, flags = (part.strip() for part in rule.partition(":"))
        if not colon or not pattern or not flags or "\n" in rule:
            raise UsageError(f"configuration: build.minimal_optimize entry '{rule}' is not a "
                             "rule like 'libqemu-*: -O1' (shell pattern: compiler flags)")
        rules.append(f"{pattern}:{flags}")
    return tuple(rules)


def _header(value: Any) -> str:
    """build.minimal_pch: a header as QEMU's sources include it (qemu/osdep.h), or empty."""
    header = str(value or "").strip()
    if header and not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\.h", header):
        raise UsageError(f"configuration: build.minimal_pch '{header}' is not a header path "
                         "like qemu/osdep.h (relative to the tree's include/)")
    return header


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "patchcheck"


def _guests(value: Any) -> dict[str, str]:
    """guests: a list (each on every machine type) or a mapping action -> selector."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {name: "all" for name in _list(value, "matrix.guests")}


def list_settings_from_env() -> None:
    """Let environment variables set list settings, as a comma-separated string that `load`
    splits (INVOKE_PATCHCHECK_BUILD_DEVICES= gives the full configuration,
    INVOKE_PATCHCHECK_MATRIX_BUILDS=7.2-none,7.2-v2). invoke itself refuses them with a
    traceback (UncastableEnvVar). Idempotent; the CLI calls it once."""
    from invoke.env import Environment

    if getattr(Environment._cast, "_patchcheck", False):
        return
    original = Environment._cast

    def cast(self: Environment, old: Any, new: Any) -> Any:
        if isinstance(old, list | tuple):
            return new
        return original(self, old, new)

    cast._patchcheck = True  # type: ignore[attr-defined]
    Environment._cast = cast  # type: ignore[method-assign]


def plain(value: Any) -> Any:
    """invoke's DataProxy (or any mapping) -> plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def load(config: Any) -> Settings:
    """Build Settings from invoke's Config (or any mapping with a `patchcheck` key)."""
    try:
        root = plain(config["patchcheck"])
    except (KeyError, TypeError):
        raise UsageError("configuration: no 'patchcheck' section (is invoke.yaml there?)") from None
    if not isinstance(root, Mapping):
        raise UsageError("configuration: 'patchcheck' must be a mapping")

    images = _section(root, "images")
    rules = []
    raw_rules = images.get("rules") or [{"generation": "bookworm"}]
    if not isinstance(raw_rules, list | tuple):
        raise UsageError("configuration: images.rules must be a list")
    for raw in raw_rules:
        if not isinstance(raw, Mapping) or "generation" not in raw:
            raise UsageError("configuration: each images.rules entry needs a generation")
        maxv = raw.get("max_version")
        rules.append(ImageRule(str(raw["generation"]), parse_version(maxv) if maxv else None))

    build = _section(root, "build")
    builds: dict[str, BuildSpec] = {}
    for name, raw in _section(root, "builds").items():
        if not isinstance(raw, Mapping) or "source" not in raw:
            raise UsageError(f"configuration: builds.{name} needs a source")
        builds[str(name)] = BuildSpec(str(name), str(raw["source"]), str(raw.get("fix", "none")))

    m = _section(root, "matrix")
    matrix = MatrixSettings(
        builds=_list(m.get("builds"), "matrix.builds") or tuple(builds),
        pairs=_list(m.get("pairs"), "matrix.pairs") or ("all",),
        machines=str(m.get("machines") or ""),
        guests=_guests(m.get("guests") or ["synthetic"]),
        force_native_hotplug=bool(m.get("force_native_hotplug", True)),
        ram_mib=_int(m.get("ram_mib", 128), "matrix.ram_mib", 16),
        accel=str(m.get("accel") or "tcg"),
        timeout=float(_int(m.get("timeout", 60), "matrix.timeout", 1)),
        jobs=_int(m.get("jobs", 0), "matrix.jobs"),
        semantics=bool(m.get("semantics", True)),
    )
    if "submodules" in root:
        raise UsageError("patchcheck.submodules is gone: the subprojects a build reads are "
                         "fetched by their pinned revisions (see README, 'Subprojects'); "
                         "remove the setting")
    cache = str(root.get("cache_dir") or "")
    return Settings(
        cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
        reports_dir=Path(str(root.get("reports_dir") or "reports")),
        apt_mirror=str(root.get("apt_mirror") or ""),
        image_rules=tuple(rules),
        configure=_list(build.get("configure"), "build.configure"),
        build_jobs=_int(build.get("jobs", 0), "build.jobs"),
        builds=builds,
        matrix=matrix,
        devices=_devices(build.get("devices")),
        minimal_configure=_list(build.get("minimal_configure"), "build.minimal_configure"),
        minimal_optimize=_optimize(build.get("minimal_optimize")),
        minimal_pch=_header(build.get("minimal_pch")),
        nightly=NightlySettings(
            remote=str(_section(root, "nightly").get("remote") or ""),
            refs=_list(_section(root, "nightly").get("refs"), "nightly.refs"),
            fix=str(_section(root, "nightly").get("fix") or "v2"),
        ),
    )
