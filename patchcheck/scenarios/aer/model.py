"""The expected-outcome model of the AER Uncorrectable Error Mask bug.

QEMU 8.0 (010746ae1d) made the Uncorrectable Error Mask register (UNCOR_MASK, AER
capability + 0x08) of every PCIe function with AER writable, with a non-zero reset value
(Internal Error | TLP Prefix Blocked = 0x02400000). Up to 7.2 it is read-only 0. QEMU's
`get_pci_config_device()` rejects an incoming config byte that differs from the
destination's own where the destination's cmask covers it and neither its wmask nor its
w1cmask does. So a destination on which the register is off accepts only 0 there; one on
which it is on accepts any value the source can hold.

The fix (5ed3dabe57dd) added the property `x-pcie-err-unc-mask` and switched it off in
`hw_compat_7_2`: on pc-q35-7.2 and older a fixed build is 7.2 again. The fix is needed on
the *source*: a source without it sends 0x02400000 on an old machine type, and every
destination on which the register is off (7.2, or a fixed build) rejects it.

Per side, what a build does with the register:
  absent     QEMU < 8.0: read-only 0, no property (a -global naming it stops QEMU).
  compat     the property and the hw_compat_7_2 entry ("has the fix").
  no-compat  the property without the entry: on for every machine type.
(8.0.0 had the register without the property: it behaves as no-compat but cannot be forced.)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

from patchcheck.qemu.machine_types import q35_version

if TYPE_CHECKING:
    from patchcheck.result.model import Side

PROPERTY = "x-pcie-err-unc-mask"
FEATURE_SINCE = (8, 0)  # the QEMU version and the first machine type with the register on
# The QOM types whose -global reaches the root port (a global names a type or an ancestor).
ROOT_PORT_TYPES = ("pcie-root-port", "pcie-root-port-base", "pcie-port", "pci-bridge",
                   "pci-device", "device")
FORCE_ON = f"pcie-root-port.{PROPERTY}=on"  # the bug on a fixed source, on any machine type
UNC_MASK_DEFAULT = 0x02400000  # PCI_ERR_UNC_MASK_DEFAULT: bits 22 and 25

_ON = ("on", "true", "yes")
_OFF = ("off", "false", "no")


class Kind(enum.StrEnum):
    ABSENT = "absent"
    COMPAT = "compat"
    NO_COMPAT = "no-compat"


def version(text: str) -> tuple[int, ...]:
    """'10.0.13' -> (10, 0, 13); anything unparsable counts as the newest."""
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or (1 << 16,)


def kind(build: Side) -> Kind:
    if version(build.qemu_version) < FEATURE_SINCE:
        return Kind.ABSENT
    return Kind.COMPAT if build.has_fix else Kind.NO_COMPAT


def forced(globals_: Sequence[str], types: Sequence[str] = ROOT_PORT_TYPES) -> bool | None:
    """The property's value a -global list gives the device (the last one wins, as in
    QEMU), or None when none names it."""
    value = None
    for g in globals_:
        target, _, setting = g.partition("=")
        qom_type, _, prop = target.rpartition(".")
        if prop != PROPERTY or qom_type not in types:
            continue
        if setting.strip().lower() in _ON:
            value = True
        elif setting.strip().lower() in _OFF:
            value = False
    return value


def register_on(build: Side, machine: str, globals_: Sequence[str]) -> bool:
    """Whether the root port's UNCOR_MASK is writable with its non-zero default on this
    side: a -global decides (user globals override hw_compat), else the machine type and
    whether the build has the compat entry."""
    k = kind(build)
    if k is Kind.ABSENT:
        return False
    value = forced(globals_)
    if value is not None:
        return value
    return q35_version(machine)[:2] >= FEATURE_SINCE or k is Kind.NO_COMPAT


def expected_to_fail(machine: str, source: Side, destination: Side,
                     source_globals: Sequence[str], destination_globals: Sequence[str]) -> bool:
    """No guest action writes the register, so the source holds the default when it is on:
    the destination rejects it iff the register is off there."""
    return register_on(source, machine, source_globals) and \
        not register_on(destination, machine, destination_globals)
