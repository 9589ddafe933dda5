"""Helpers the tests share that the package itself does not need."""

from __future__ import annotations

from patchcheck.scenarios.pds.registers import SLTSTA


def expected_destination_error(cap_offset: int) -> str:
    """The destination's stderr line for the PDS failure, for a root port whose Express
    capability is at `cap_offset`, e.g. "Bad config data: i=0x6e read: 0 device: 40"."""
    return f"Bad config data: i={cap_offset + SLTSTA:#x} read: 0 device: 40"
