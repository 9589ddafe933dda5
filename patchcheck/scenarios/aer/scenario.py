"""The AER Uncorrectable Error Mask live-migration bug (docs/scenario-aer.md).

A pcie-root-port (it has an AER extended capability at 0x100). QEMU 8.0 made its
UNCOR_MASK register writable with a non-zero default; 5ed3dabe57dd switched that off for
machine types <= 7.2 (hw_compat_7_2). A source without that fix sends 0x02400000 on
pc-q35-7.2 and older, and a destination with the register off (7.2, or a fixed build)
rejects it: ``Bad config data: i=0x10a read: 40 device: 0 cmask: ff wmask: 0 w1cmask:0``.
Only the source needs the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchcheck.guests.action import Action, GuestState, Monitor
from patchcheck.qemu.machine_types import q35_version
from patchcheck.scenarios.aer.model import (
    FEATURE_SINCE,
    FORCE_ON,
    PROPERTY,
    Kind,
    expected_to_fail,
    forced,
    kind,
)
from patchcheck.scenarios.aer.registers import register_set
from patchcheck.scenarios.base import Defaults, Scenario, Signature, Words

ROOT_PORT_ID = "aer-rp18"
ROOT_PORT_DEVICE = f"pcie-root-port,port=18,chassis=19,id={ROOT_PORT_ID},bus=pcie.0,addr=0x12"
PATCHES = Path(__file__).with_name("patches")

if TYPE_CHECKING:
    from patchcheck.result.model import Side


@dataclass(frozen=True)
class MaskProperty(GuestState):
    """The root port's x-pcie-err-unc-mask on the source, as QOM reports it: "true",
    "false", or "absent" (a build before 8.0, which has no such property)."""

    property: str

    def to_dict(self) -> dict[str, Any]:
        return {PROPERTY: self.property}

    def summary(self) -> str:
        return {"true": "the source's UNCOR_MASK is on",
                "false": "the source's UNCOR_MASK is off"}.get(self.property,
                                                               "the source has no UNCOR_MASK")


class NoAction(Action):
    """The guest does nothing: it never writes the register, so the source migrates what
    QEMU set at reset. Reads the property back (qom-get) for the record."""

    name = "none"
    # The guest never runs: one source's migration stream serves every destination.
    shares_source = True
    stays_paused = True

    def perform(self, monitor: Monitor) -> MaskProperty:
        try:
            value = monitor.qmp("qom-get", path=f"/machine/peripheral/{ROOT_PORT_ID}",
                                property=PROPERTY)
        except Exception:  # noqa: BLE001 - QEMU < 8.0: "Property ... not found"
            return MaskProperty("absent")
        return MaskProperty("true" if value else "false")

    def replay_note(self) -> str:
        return "# in the source monitor: nothing to do (the guest never writes UNCOR_MASK)"


class AerScenario(Scenario):
    name = "aer"
    title = "AER Uncorrectable Error Mask vs. live migration on machine types <= 7.2 " \
            "(hw/pci/pcie_aer.c, hw/core/machine.c)"
    words = Words(reproducer="live migration of a q35 guest with a pcie-root-port (AER "
                             "capability, UNCOR_MASK)", fix_side="source")
    # UNCOR_MASK (AER capability 0x100 + 0x08), byte 0x10a holding bit 22, of the root port
    signature = Signature("get_pci_config_device: Bad config data: i=0x10a", "pcie-root-port")
    force_global = FORCE_ON
    devices = ("CONFIG_Q35=y", "CONFIG_PCIE_PORT=y")
    probe = register_set(ROOT_PORT_ID)
    # Debian's 7.2 predates the register; Debian's 10.0 carries the fix (compat), and
    # 10.0-none is it with the hw_compat_7_2 entry reverted.
    defaults = Defaults(
        builds={"7.2-none": ("debian:bookworm", "none"),
                "10.0-compat": ("debian:trixie", "compat"),
                "10.0-none": ("debian:trixie", "none")},
        guests={"none": "all"},
        check_guest="none", watch="7.2:SELF->7.2-none[none]",
        first=("10.0-none", "7.2-none", "pc-q35-7.2"))  # the bug as it was reported

    def qemu_args(self, ram_mib: int) -> list[str]:
        if ram_mib <= 0:
            raise ValueError(f"RAM size must be positive, got {ram_mib} MiB")
        return ["-m", f"{ram_mib}M", "-device", ROOT_PORT_DEVICE]

    def actions(self) -> Mapping[str, type[Action]]:
        return {NoAction.name: NoAction}

    def globals_for(self, globals_: Sequence[str], role: str, build: Side) -> list[str]:
        """The forcing -global goes to the source only (a destination with the register on
        accepts anything: forcing it there hides the bug), and never to a build without the
        property (QEMU would not start)."""
        ours = [g for g in globals_ if forced([g]) is not None]
        others = [g for g in globals_ if g not in ours]
        if role != "source" or kind(build) is Kind.ABSENT:
            return others
        return [*others, *ours]

    def force_applies(self, source: Side, destination: Side) -> bool:
        return kind(source) is not Kind.ABSENT

    def expected_to_fail(self, machine: str, source: Side, destination: Side,
                         globals_: Sequence[str], action: Action) -> bool:
        return expected_to_fail(machine, source, destination,
                                self.globals_for(globals_, "source", source),
                                self.globals_for(globals_, "destination", destination))

    def fixes(self) -> dict[str, Path]:
        """compat: the hw_compat_7_2 entry of 5ed3dabe57dd (QEMU 8.0.1, 8.1)."""
        return {"compat": PATCHES / "compat.patch"}

    def boundary(self, machines: Sequence[str]) -> list[str]:
        """Newest type without the register (<= 7.2), oldest with it, and the newest."""
        old = [m for m in machines if q35_version(m)[:2] < FEATURE_SINCE]
        new = [m for m in machines if q35_version(m)[:2] >= FEATURE_SINCE]
        return list(dict.fromkeys([*old[-1:], *new[:1], *machines[-1:]]))


SCENARIO = AerScenario()
