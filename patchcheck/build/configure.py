"""The configure line of a tree: the options its configure knows, and the device set of a
minimal build (`--without-default-devices` with the Kconfig list written into the build
directory), or QEMU's default set where configure cannot do that (before 6.0)."""

from __future__ import annotations

import re
from collections.abc import Sequence

OUT = "/build"  # the build directory in the container

DEVICES = "patchcheck-devices"  # the minimal device list, written into the build directory
MINIMAL, DEFAULT = "minimal", "default"
# What a minimal build needs from configure, and how `configure --help` lists it.
DEVICE_OPTIONS = {"--without-default-devices": r"^\s+--without-default-devices(?=[\s=]|$)",
                  "--with-devices-x86_64": r"^\s+--with-devices-ARCH="}


def devices_mak(devices: Sequence[str]) -> str:
    return "# patchcheck: only what the reproducer needs (Kconfig selects the rest)\n" + \
        "".join(f"{d}\n" for d in devices)


def device_options() -> list[str]:
    """configure takes --with-devices-ARCH=NAME as configs/devices/ARCH-softmmu/NAME.mak in the
    (read-only) source tree; a relative NAME reaching up to / points it at the build directory."""
    return ["--without-default-devices", f"--with-devices-x86_64=../../../..{OUT}/{DEVICES}"]


def device_configuration(devices: Sequence[str], help_text: str) -> tuple[list[str], str]:
    """The configure options for the device set, and what the build record says about it.

    A minimal build needs both `--without-default-devices` and `--with-devices-ARCH` (QEMU
    6.0 on); a tree whose `configure --help` lacks either is built with QEMU's default
    device set, and the label says why."""
    if not devices:
        return [], DEFAULT
    missing = [opt for opt, listed in DEVICE_OPTIONS.items()
               if not re.search(listed, help_text, re.M)]
    if missing:
        return [], f"{DEFAULT} (configure lacks {' and '.join(missing)})"
    return device_options(), MINIMAL


def supported_options(options: Sequence[str], help_text: str, configure_text: str = ""
                      ) -> list[str]:
    """Keep the configure options this tree knows about: listed by `configure --help`, or
    parsed by the configure script without being listed (e.g. `--disable-download`, a
    `case` pattern of QEMU 8.1's configure on)."""
    kept = []
    for opt in options:
        name = opt.split("=", 1)[0]
        feature = re.match(r"--(?:enable|disable)-(.+)$", name)
        literal = re.search(rf"^\s+{re.escape(name)}(?=[\s=\[]|$)", help_text, re.M)
        listed = feature and re.search(rf"^  {re.escape(feature.group(1))}(?:\s|$)", help_text,
                                       re.M)
        parsed = re.search(rf"^\s+{re.escape(opt)}\)", configure_text, re.M)
        if literal or listed or parsed:
            kept.append(opt)
    return kept
