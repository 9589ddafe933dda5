"""The PCIe "Presence Detect State" (PDS) live-migration bug (docs/scenario-pds.md).

A pcie-root-port whose only child (an xHCI) sits at device 0x12 of the secondary bus: slot
device 0 is empty. On q35 <= 6.0 (native PCIe hotplug on bridges) QEMU sets PDS at cold plug;
a guest that powers the slot off makes QEMU unplug the children and clear PDS. A destination
without the fix builds the port with PDS set and rejects the migrated config byte
(``Bad config data: i=0x6e read: 0 device: 40``). Only the destination needs the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from patchcheck.guests.action import Action, GuestState
from patchcheck.qemu.machine_types import q35_version
from patchcheck.scenarios.base import Defaults, Scenario, Signature, Words
from patchcheck.scenarios.pds.linux import GuestSlotState, PdsLinuxAction
from patchcheck.scenarios.pds.registers import register_set
from patchcheck.scenarios.pds.slot import (
    ACTIONS,
    FORCE_NATIVE_HOTPLUG,
    LAST_NATIVE_HOTPLUG_Q35,
    ROOT_PORT_ID,
    GuestAction,
    expected_to_fail,
    qemu_args,
)

PATCHES = Path(__file__).with_name("patches")

if TYPE_CHECKING:
    from patchcheck.guests.image import GuestImage
    from patchcheck.result.model import Side


class PdsScenario(Scenario):
    name = "pds"
    title = "PCIe slot Presence Detect State vs. live migration (hw/pci/pcie.c)"
    words = Words(reproducer="live migration of a q35 guest with an empty pcie-root-port slot "
                             "that the guest powered off", fix_side="destination")
    # Slot Status (Express capability 0x54 + 0x1a) of the root port, PDS (0x40) differing
    signature = Signature("get_pci_config_device: Bad config data: i=0x6e", "pcie-root-port")
    force_global = FORCE_NATIVE_HOTPLUG
    devices = ("CONFIG_Q35=y", "CONFIG_PCIE_PORT=y", "CONFIG_USB_XHCI_NEC=y")
    probe = register_set(ROOT_PORT_ID)
    # Debian's 7.2 has no fix (v1: the thread's first version, v2: the one QEMU merged);
    # Debian's 10.0 carries v2 (reverted for 10.0-none).
    defaults = Defaults(
        builds={"7.2-none": ("debian:bookworm", "none"), "7.2-v1": ("debian:bookworm", "v1"),
                "7.2-v2": ("debian:bookworm", "v2"), "10.0-v2": ("debian:trixie", "v2"),
                "10.0-none": ("debian:trixie", "none")},
        # the synthetic action on every type; no action and the Linux guest where PDS turns
        guests={"synthetic": "all", "none": "boundary", "linux": "boundary"},
        check_guest="synthetic", watch="6.0:SELF->SELF[synthetic]",
        first=("7.2-none", "7.2-v2", "pc-q35-6.0"))  # the seed's own case

    def qemu_args(self, ram_mib: int) -> list[str]:
        return qemu_args(ram_mib)

    def actions(self) -> Mapping[str, type[Action]]:
        return ACTIONS

    def expected_to_fail(self, machine: str, source: Side, destination: Side,
                         globals_: Sequence[str], action: Action) -> bool:
        powers_off = isinstance(action, GuestAction | PdsLinuxAction) and action.powers_off_slot
        return expected_to_fail(machine, destination.has_fix, FORCE_NATIVE_HOTPLUG in globals_,
                                powers_off)

    def inconclusive(self, machine: str, source: Side, destination: Side,
                     globals_: Sequence[str], action: Action, state: GuestState | None) -> str:
        """A real guest whose pciehp did not power the slot off, where that decides the
        outcome: the case cannot show the bug (the model assumes the power-off)."""
        if not isinstance(state, GuestSlotState) or state.powered_off_by_guest:
            return ""
        forced = FORCE_NATIVE_HOTPLUG in globals_
        if expected_to_fail(machine, destination.has_fix, forced, True) == \
                expected_to_fail(machine, destination.has_fix, forced, False):
            return ""
        return f"inconclusive: {state.summary()}; the model assumes the guest powered it off"

    linux_guest = True

    def linux_action(self, image: GuestImage, ready_timeout: float) -> Action:
        return PdsLinuxAction(image, ready_timeout=ready_timeout)

    def fixes(self) -> dict[str, Path]:
        """v2: the cmask change QEMU merged (8.1); v1: the seed thread's w1cmask change."""
        return {name: PATCHES / f"{name}.patch" for name in ("v2", "v1")}

    def upstream_commits(self) -> dict[str, str]:
        """v2 is upstream's 625b370c45 (first in v8.1.0-rc0)."""
        return {"v2": "625b370c45f4acd155ee625d61c0057d770a5b5e"}

    def boundary(self, machines: Sequence[str]) -> list[str]:
        """Newest type with native hotplug (<= 6.0), oldest without, and the newest."""
        old = [m for m in machines if q35_version(m)[:2] <= LAST_NATIVE_HOTPLUG_Q35]
        new = [m for m in machines if q35_version(m)[:2] > LAST_NATIVE_HOTPLUG_Q35]
        return list(dict.fromkeys([*old[-1:], *new[:1], *machines[-1:]]))


SCENARIO = PdsScenario()
