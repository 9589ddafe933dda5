"""Which pinned subprojects a build of the configured kind uses: only those are fetched.

QEMU pins far more than an x86_64 system emulator reads: firmware sources (roms/*), CI
tooling, Rust crates, optional libraries. The rules below say, per subproject name, when
the build reads it; a name no rule knows is not fetched (roms/* never are).

| subproject | needed when |
| --- | --- |
| keycodemapdb | always: configure refuses to run without it (QEMU 7.2 .. master) |
| berkeley-softfloat-3, berkeley-testfloat-3 | TCG is built: meson reads tests/fp whenever CONFIG_TCG is set |
| dtc | `--enable-fdt=internal` (or `=git`); otherwise the builder's libfdt is used |
| meson (submodule, QEMU <= 8.0) | the builder's meson is older than what the tree's configure accepts |
| libvfio-user | `--enable-vfio-user-server` |
| slirp | `--enable-slirp` |
| *-rs (Rust crates) | `--enable-rust` |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from patchcheck.source.subprojects.pins import Pin


@dataclass(frozen=True)
class BuildKind:
    """What of the build decides which subprojects it reads."""

    configure: tuple[str, ...]  # the options given to configure
    builder_meson: tuple[int, ...] = ()  # the builder's meson version; () unknown
    configure_meson: tuple[int, ...] = ()  # the oldest meson the tree's configure accepts

    def has(self, option: str) -> bool:
        return option in self.configure


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def configure_meson_minimum(configure_text: str) -> tuple[int, ...]:
    """QEMU <= 8.0: `version_ge "$(meson --version)" 0.61.5` in configure picks the system
    meson; older ones fall back to the meson submodule. () when the tree has no such test."""
    found = re.search(r'version_ge\s+"\$\(meson --version\)"\s+([0-9.]+)', configure_text)
    return _version(found.group(1)) if found else ()


Rule = Callable[[BuildKind], bool]
RULES: dict[str, Rule] = {
    "keycodemapdb": lambda k: True,
    "berkeley-softfloat-3": lambda k: not k.has("--disable-tcg"),
    "berkeley-testfloat-3": lambda k: not k.has("--disable-tcg"),
    "dtc": lambda k: k.has("--enable-fdt=internal") or k.has("--enable-fdt=git"),
    "meson": lambda k: bool(k.configure_meson) and k.builder_meson < k.configure_meson,
    "libvfio-user": lambda k: k.has("--enable-vfio-user-server"),
    "slirp": lambda k: k.has("--enable-slirp"),
}


def _rule(name: str) -> Rule | None:
    if name.endswith("-rs"):
        return lambda k: k.has("--enable-rust")
    return RULES.get(name)


def needed(pins: Sequence[Pin], kind: BuildKind) -> list[Pin]:
    """The pins this build reads, in the tree's order; firmware and unknown ones never."""
    chosen = []
    for pin in pins:
        rule = _rule(pin.name)
        if pin.path.startswith("roms/") or rule is None:
            continue
        if rule(kind):
            chosen.append(pin)
    return chosen
