"""A typed view of invoke's configuration tree (the `patchcheck:` section of invoke.yaml)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcheck import paths
from patchcheck.config import origin as configsource
from patchcheck.engine.images import ImageRule
from patchcheck.errors import ConfigError

if TYPE_CHECKING:
    from patchcheck.scenarios.base import Defaults


@dataclass(frozen=True)
class BuildSpec:
    name: str
    source: str
    fix: str
    # why the request itself makes the build untrusted (a series commit); "": decided from
    # its source and fix (patchcheck.build.trust)
    untrusted: str = ""


@dataclass(frozen=True)
class MatrixSettings:
    builds: tuple[str, ...]
    pairs: tuple[str, ...]
    machines: str
    guests: Mapping[str, str]
    force_global: bool  # one case per pair with the scenario's forcing -global
    ram_mib: int
    accel: str
    timeout: float
    jobs: int
    semantics: bool = True
    scenario: str = ""  # the bug: a name in patchcheck.scenarios.registry.REGISTRY
    probe_method: str = "reuse"  # "reuse" (QEMUs reset between experiments) or "fresh"
    # Cases of a paused guest action (synthetic, none) that differ only in their
    # destination share one source QEMU, migrated to each destination in turn; false: a
    # fresh source per case (the reference). The Linux guest always shares its boot.
    share_sources: bool = True
    # The memory limit of each QEMU container (MiB, no swap; 0: none): the matrix's and the
    # probe's. A container holds the QEMUs of one builder image that run at once.
    qemu_memory_mib: int = 0


@dataclass(frozen=True)
class NightlySettings:
    remote: str = ""
    refs: tuple[str, ...] = ()
    fix: str = ""  # empty: the scenario's first known fix


# The git remotes whose code is trusted (patchcheck.trust.remotes): upstream QEMU's.
UPSTREAM_REMOTES = ("https://gitlab.com/qemu-project/qemu", "https://git.qemu.org/git/qemu",
                    "https://github.com/qemu/qemu")


@dataclass(frozen=True)
class TrustSettings:
    """Which builds may write into what later builds read (docs/reliability.md, "Untrusted
    builds"): builds from these remotes (and local repositories, Debian, the scenarios' own
    patches); `all`: every build, whatever it comes from."""

    remotes: tuple[str, ...] = UPSTREAM_REMOTES
    all: bool = False


@dataclass(frozen=True)
class SweepSettings:
    """The compatibility sweep (`invoke sweep`, docs/sweep.md)."""

    builds: tuple[str, ...] = ()  # the two sides: configured build names or debian-pkg:<suite>
    machines: str = ""  # "" every pc-q35 and pc-i440fx type both sides know
    devices: tuple[str, ...] = ()  # () every PCI device type both sides have
    actions: tuple[str, ...] = ("created", "slot")
    directions: tuple[str, ...] = ("forward", "backward", "control")
    ram_mib: int = 32
    accel: str = "tcg"
    timeout: float = 60.0  # one migration
    start_timeout: float = 10.0  # one QEMU, until its monitor answers
    jobs: int = 0  # groups migrated at once; 0: the CPUs
    group_size: int = 0  # devices per migration; 0: as many as the root bus has slots; 1: none
    screen: bool = True  # each device started alone first (docs/sweep.md, "Shortcuts")
    share_sources: bool = True  # destinations with the same members share one source's stream
    port: str = ""  # the root port that carries a device (root-port and switch placements)
    upstream: str = ""  # a switch's upstream port (switch placement)
    fillers: tuple[str, ...] = ()  # what sits in a slot for the slot action: the first both have
    build_devices: str = "default"  # builds: QEMU's default device set, or "configured"
    qemu_memory_mib: int = 0  # each QEMU container's memory limit (MiB, no swap); 0: none


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
    package_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parents[1])
    # the pins of builds this run imported (patchcheck.build.artifacts); never from configuration
    imported: Path | None = None
    runtime: str = "docker"  # the container engine: a name in patchcheck.engine.registry.REGISTRY
    runtime_host: str = ""  # the engine's API address (unix:///PATH); "": the engine's default
    sweep: SweepSettings = SweepSettings()
    trust: TrustSettings = TrustSettings()

    @property
    def containers_dir(self) -> Path:
        """The builder Dockerfiles: package data in patchcheck/build/containers (`containers/` in
        the checkout links there)."""
        return self.package_dir / "build" / "containers"

    @property
    def minimal(self) -> bool:
        """Builds are minimal (only `devices`, plus `minimal_configure`)."""
        return bool(self.devices)

    def full_configuration(self) -> Settings:
        """The same settings with QEMU's default device set and `configure` alone (what
        `build.devices: []` gives): the feature-trimmed configuration the minimal one is
        measured and compared against."""
        return replace(self, devices=())


def parse_version(text: str, key: tuple[str, ...] = ()) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        raise ConfigError(f"'{text}' is not a version like 8.0", key) from None


def _key(what: str) -> tuple[str, ...]:
    """A setting's dotted name under `patchcheck` -> its key path in invoke's config."""
    return ("patchcheck", *what.split("."))


def _section(tree: Any, key: str) -> Mapping[str, Any]:
    value = tree.get(key) if isinstance(tree, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"patchcheck.{key} must be a mapping", _key(key))
    return value


def _list(value: Any, what: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise ConfigError(f"{what} must be a list", _key(what))


def _int(value: Any, what: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be an integer, not {value!r}", _key(what)) from None
    if number < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, not {number}", _key(what))
    return number


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(value: Any, what: str) -> bool:
    """true/false; from the environment also 1/0, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    raise ConfigError(f"{what} must be true or false, not {value!r}", _key(what))


def _devices(value: Any) -> tuple[str, ...]:
    """build.devices: Kconfig lines such as CONFIG_Q35=y (written as the device .mak file)."""
    devices = _list(value, "build.devices")
    for line in devices:
        if not re.fullmatch(r"CONFIG_[A-Z0-9_]+=[yn]", line):
            raise ConfigError(f"build.devices entry '{line}' is not a Kconfig line like "
                              "CONFIG_Q35=y", _key("build.devices"))
    return devices


def _optimize(value: Any) -> tuple[str, ...]:
    """build.minimal_optimize: PATTERN:FLAGS rules for the compiler wrapper."""
    rules = []
    for rule in _list(value, "build.minimal_optimize"):
        pattern, colon, flags = (part.strip() for part in rule.partition(":"))
        if not colon or not pattern or not flags or "\n" in rule:
            raise ConfigError(f"build.minimal_optimize entry '{rule}' is not a rule like "
                              "'libqemu-*: -O1' (shell pattern: compiler flags)",
                              _key("build.minimal_optimize"))
        rules.append(f"{pattern}:{flags}")
    return tuple(rules)


def _header(value: Any) -> str:
    """build.minimal_pch: a header as QEMU's sources include it (qemu/osdep.h), or empty."""
    header = str(value or "").strip()
    if header and not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\.h", header):
        raise ConfigError(f"build.minimal_pch '{header}' is not a header path like "
                          "qemu/osdep.h (relative to the tree's include/)",
                          _key("build.minimal_pch"))
    return header


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "patchcheck"


def _guests(value: Any) -> dict[str, str]:
    """guests: a list (each on every machine type) or a mapping action -> selector."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {name: "all" for name in _list(value, "matrix.guests")}


def _image_rules(images: Mapping[str, Any]) -> tuple[ImageRule, ...]:
    raw_rules = images.get("rules") or [{"generation": "bookworm"}]
    if not isinstance(raw_rules, list | tuple):
        raise ConfigError("images.rules must be a list", _key("images.rules"))
    rules = []
    for raw in raw_rules:
        if not isinstance(raw, Mapping) or "generation" not in raw:
            raise ConfigError("each images.rules entry needs a generation", _key("images.rules"))
        maxv = raw.get("max_version")
        rules.append(ImageRule(str(raw["generation"]),
                               parse_version(maxv, _key("images.rules")) if maxv else None))
    return tuple(rules)


def _builds(section: Mapping[str, Any]) -> dict[str, BuildSpec]:
    """patchcheck.builds: name -> source spec and fix state; a name is a safe name (it is
    part of case directories), see patchcheck.paths."""
    builds: dict[str, BuildSpec] = {}
    for name, raw in section.items():
        key = ("patchcheck", "builds", str(name))
        if not paths.is_safe(str(name)):
            raise ConfigError(f"build name '{name}' is not a valid name: use {paths.RULE}", key)
        if not isinstance(raw, Mapping) or "source" not in raw:
            raise ConfigError(f"builds.{name} needs a source", key)
        builds[str(name)] = BuildSpec(str(name), str(raw["source"]), str(raw.get("fix", "none")))
    return builds


def _matrix(m: Mapping[str, Any], builds: Mapping[str, BuildSpec],
            scenario: str, defaults: Defaults) -> MatrixSettings:
    if "force_native_hotplug" in m and "force_global" not in m:
        force = m.get("force_native_hotplug")  # its name before scenarios had their own
    else:
        force = m.get("force_global", True)
    return MatrixSettings(
        builds=(_list(m.get("builds"), "matrix.builds") or defaults.matrix_builds
                or tuple(defaults.builds) or tuple(builds)),
        pairs=_list(m.get("pairs"), "matrix.pairs") or ("all",),
        machines=str(m.get("machines") or ""),
        guests=_guests(m.get("guests") or dict(defaults.guests) or ["synthetic"]),
        force_global=_bool(force, "matrix.force_global"),
        ram_mib=_int(m.get("ram_mib", 32), "matrix.ram_mib", 16),
        accel=str(m.get("accel") or "tcg"),
        timeout=float(_int(m.get("timeout", 60), "matrix.timeout", 1)),
        jobs=_int(m.get("jobs", 0), "matrix.jobs"),
        semantics=_bool(m.get("semantics", True), "matrix.semantics"),
        scenario=scenario,
        probe_method=_probe_method(m.get("probe_method", "reuse")),
        share_sources=_bool(m.get("share_sources", True), "matrix.share_sources"),
        qemu_memory_mib=_memory(m.get("qemu_memory_mib", 0), "matrix.qemu_memory_mib"),
    )


MIN_MEMORY_MIB = 6  # the engines' smallest container memory limit (Docker's, Podman's)


def _memory(value: Any, what: str) -> int:
    """A container memory limit in MiB: 0 (none) or at least what an engine accepts."""
    number = _int(value, what)
    if 0 < number < MIN_MEMORY_MIB:
        raise ConfigError(f"{what} must be 0 (no limit) or >= {MIN_MEMORY_MIB}, not {number}",
                          _key(what))
    return number


PROBE_METHODS = ("reuse", "fresh")  # how the probe gives each experiment a fresh device


def _probe_method(value: Any) -> str:
    text = str(value or "reuse")
    if text not in PROBE_METHODS:
        raise ConfigError(f"matrix.probe_method must be one of {', '.join(PROBE_METHODS)}, "
                          f"not {text!r}", _key("matrix.probe_method"))
    return text


def plain(value: Any) -> Any:
    """invoke's DataProxy (or any mapping) -> plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def load(config: Any) -> Settings:
    """Build Settings from invoke's Config (or any mapping with a `patchcheck` key). A bad
    value is a ConfigError naming where it was set (configsource.source_of)."""
    try:
        return _load(config)
    except ConfigError as exc:
        if exc.source or not exc.key:
            raise
        raise exc.at(configsource.source_of(config, exc.key)) from None


def _load(config: Any) -> Settings:
    try:
        root = plain(config["patchcheck"])
    except (KeyError, TypeError):
        raise ConfigError("no 'patchcheck' section (is invoke.yaml there?)") from None
    if not isinstance(root, Mapping):
        raise ConfigError("'patchcheck' must be a mapping", ("patchcheck",))
    if "submodules" in root:
        raise ConfigError("patchcheck.submodules is gone: the subprojects a build reads are "
                          "fetched by their pinned revisions (see docs/builds.md, 'Subprojects'); "
                          "remove the setting", _key("submodules"))
    build = _section(root, "build")
    matrix = _section(root, "matrix")
    scenario = _scenario(matrix.get("scenario"))
    defaults = _defaults(scenario)
    builds = {name: BuildSpec(name, source, fix)
              for name, (source, fix) in defaults.builds.items()}
    builds.update(_builds(_section(root, "builds")))
    nightly = _section(root, "nightly")
    cache = str(root.get("cache_dir") or "")
    runtime = _runtime(root.get("runtime"))
    return Settings(
        cache_dir=Path(cache).expanduser().absolute() if cache else default_cache_dir(),
        reports_dir=Path(str(root.get("reports_dir") or "reports")),
        apt_mirror=str(root.get("apt_mirror") or ""),
        image_rules=_image_rules(_section(root, "images")),
        configure=_list(build.get("configure"), "build.configure"),
        build_jobs=_int(build.get("jobs", 0), "build.jobs"),
        builds=builds,
        matrix=_matrix(matrix, builds, scenario, defaults),
        devices=_devices(build.get("devices")),
        minimal_configure=_list(build.get("minimal_configure"), "build.minimal_configure"),
        minimal_optimize=_optimize(build.get("minimal_optimize")),
        minimal_pch=_header(build.get("minimal_pch")),
        nightly=NightlySettings(
            remote=str(nightly.get("remote") or ""),
            refs=_list(nightly.get("refs"), "nightly.refs"),
            fix=str(nightly.get("fix") or ""),
        ),
        runtime=runtime,
        runtime_host=_runtime_host(root.get("runtime_host")),
        sweep=_sweep(_section(root, "sweep")),
        trust=_trust(_section(root, "trust")),
    )


def _trust(s: Mapping[str, Any]) -> TrustSettings:
    remotes = _list(s.get("remotes"), "trust.remotes") if "remotes" in s else UPSTREAM_REMOTES
    return TrustSettings(remotes=remotes, all=_bool(s.get("all", False), "trust.all"))


SWEEP_ACTIONS = ("created", "slot", "linux")
SWEEP_DEFAULT_ACTIONS = ("created", "slot")  # linux: `invoke sweep --guest linux`
SWEEP_DIRECTIONS = ("forward", "backward", "control")


def _choice(values: tuple[str, ...], known: tuple[str, ...], what: str) -> tuple[str, ...]:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ConfigError(f"{what}: unknown {unknown[0]!r} (known: {', '.join(known)})", _key(what))
    return values


def _sweep(s: Mapping[str, Any]) -> SweepSettings:
    devices = str(s.get("build_devices") or "default")
    if devices not in ("default", "configured"):
        raise ConfigError("sweep.build_devices must be default or configured",
                          _key("sweep.build_devices"))
    return SweepSettings(
        builds=_list(s.get("builds"), "sweep.builds"),
        machines=str(s.get("machines") or ""),
        devices=_list(s.get("devices"), "sweep.devices"),
        actions=_choice(_list(s.get("actions"), "sweep.actions") or SWEEP_DEFAULT_ACTIONS,
                        SWEEP_ACTIONS, "sweep.actions"),
        directions=_choice(_list(s.get("directions"), "sweep.directions") or SWEEP_DIRECTIONS,
                           SWEEP_DIRECTIONS, "sweep.directions"),
        ram_mib=_int(s.get("ram_mib", 32), "sweep.ram_mib", 16),
        accel=str(s.get("accel") or "tcg"),
        timeout=float(_int(s.get("timeout", 60), "sweep.timeout", 1)),
        start_timeout=float(_int(s.get("start_timeout", 10), "sweep.start_timeout", 1)),
        jobs=_int(s.get("jobs", 0), "sweep.jobs"),
        group_size=_int(s.get("group_size", 0), "sweep.group_size"),
        screen=_bool(s.get("screen", True), "sweep.screen"),
        share_sources=_bool(s.get("share_sources", True), "sweep.share_sources"),
        port=str(s.get("port") or ""),
        upstream=str(s.get("upstream") or ""),
        fillers=_list(s.get("fillers"), "sweep.fillers"),
        build_devices=devices,
        qemu_memory_mib=_memory(s.get("qemu_memory_mib", 0), "sweep.qemu_memory_mib"),
    )


def _runtime(value: object) -> str:
    from patchcheck.engine import registry as engines

    name = str(value or engines.DEFAULT).strip()
    if name not in engines.REGISTRY:
        raise ConfigError(f"runtime '{name}' is not a known container engine (known: "
                          f"{', '.join(engines.names())})", _key("runtime"))
    return name


def _runtime_host(value: object) -> str:
    """runtime_host: the engine's API socket, unix:///PATH (or an absolute path); "" is the
    engine's own default."""
    text = str(value or "").strip()
    if text.startswith("/"):
        text = f"unix://{text}"
    if text and (not text.startswith("unix:///") or any(c.isspace() for c in text)):
        raise ConfigError(f"runtime_host '{text}' is not a unix socket like "
                          "unix:///run/podman/podman.sock", _key("runtime_host"))
    return text


def _defaults(scenario: str) -> Defaults:
    from patchcheck.scenarios import registry as scenarios

    return scenarios.get(scenario).defaults


def _scenario(value: object) -> str:
    from patchcheck.scenarios import registry as scenarios

    name = str(value or scenarios.DEFAULT)
    if name not in scenarios.REGISTRY:
        raise ConfigError(f"matrix.scenario '{name}' is not a known scenario (known: "
                          f"{', '.join(scenarios.names())})", _key("matrix.scenario"))
    return name
