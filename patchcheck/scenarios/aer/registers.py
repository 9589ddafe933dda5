"""What the register-semantics probe examines for aer: the root port's AER Uncorrectable Error
Mask register, in extended configuration space (read through ECAM), with the attributes of
PCI Express Base Specification 4.0, 7.8.4.3."""

from __future__ import annotations

from collections.abc import Sequence

from patchcheck.qemu.machine_types import q35_version
from patchcheck.qemu.registers import Attr, ReadOnlyAllowed, Register, RegisterSet, SpecBit, fields
from patchcheck.scenarios.aer.model import FEATURE_SINCE

PCI_EXT_CAP_ID_ERR = 0x0001  # Advanced Error Reporting
SPECIFICATION = "PCI Express Base Specification 4.0"
SECTION = "7.8.4.3"

UNCOR_MASK = Register("uncor_mask", "Uncorrectable Error Mask", 0x08, 4, "rmw")

# Each mask bit belongs to an error the function may not implement ("optional": hardwired
# 0b then). QEMU before 8.0 had the whole register read-only 0, and the compat property
# keeps it so on machine types <= 7.2: read-only 0 is accepted for every mask bit.
_READ_ONLY_ZERO = ReadOnlyAllowed(
    None, 0, "read-only 0: the error is optional, or QEMU keeps the register as before 8.0 "
             "(x-pcie-err-unc-mask=off, machine types <= 7.2)")

_MASKS = {
    4: "DLPEM", 5: "SDEM", 12: "PTLPEM", 13: "FCPEM", 14: "CTEM", 15: "CAEM", 16: "UCEM",
    17: "ROEM", 18: "MTLPEM", 19: "ECRCEM", 20: "UREM", 21: "ACSVM", 22: "UIEM", 23: "MCBTLPM",
    24: "AOEBM", 25: "TLPPBEM", 26: "PTLPEBM",
}
_RESERVED = (1, 2, 3, 6, 7, 8, 9, 10, 11, 27, 28, 29, 30, 31)


def _spec() -> dict[tuple[str, int], SpecBit]:
    table: dict[tuple[str, int], SpecBit] = {}
    for bit, name in _MASKS.items():
        for spec in fields(UNCOR_MASK, SECTION, SPECIFICATION, [bit], name, Attr.RWS,
                           read_only_allowed=_READ_ONLY_ZERO):
            table[(spec.register, spec.bit)] = spec
    for spec in fields(UNCOR_MASK, SECTION, SPECIFICATION, _RESERVED, "Rsvd", Attr.RSVDP):
        table[(spec.register, spec.bit)] = spec
    return table


def probe_machines(available: Sequence[str]) -> list[str]:
    """The newest type without the register by default (<= 7.2) and the newest type."""
    old = [m for m in available if q35_version(m)[:2] < FEATURE_SINCE]
    return list(dict.fromkeys([*old[-1:], *available[-1:]]))


def register_set(device: str) -> RegisterSet:
    return RegisterSet(device=device, capability=PCI_EXT_CAP_ID_ERR,
                       specification=SPECIFICATION,
                       description="the root port's AER Uncorrectable Error Mask",
                       probed=(UNCOR_MASK,), spec=_spec(),
                       unmodelled={("uncor_mask", 0): "Undefined"},
                       machines=probe_machines, extended=True, across_versions=True)
