"""The PDS scenario's Linux guest action: Debian's kernel, whose pciehp driver powers the
empty slot off by itself. What it reads of the slot before the guest runs and once the
guest is ready; booting, readiness and heartbeats are patchcheck.guests.linux's."""

from __future__ import annotations

from dataclasses import dataclass

from patchcheck.guests.action import Monitor
from patchcheck.guests.image import GuestImage
from patchcheck.guests.linux import LinuxAction, Readiness
from patchcheck.scenarios.pds.registers import SLTSTA_PDS
from patchcheck.scenarios.pds.slot import ROOT_PORT_ID, SlotState, read_slot_state


@dataclass(frozen=True)
class GuestSlotState(SlotState):
    """SlotState read on the source once the guest is ready, plus what it was at start."""

    initial_control: int = 0
    initial_status: int = 0
    guest_pciehp: str = ""  # "bound" or "not bound"
    guest_settled: str = ""  # "yes" or "no"
    guest_ready_s: float = 0.0  # guest uptime at the readiness marker

    @property
    def presence_cleared(self) -> bool:
        """PDS was set at start and is clear now: QEMU unplugged the slot on power-off."""
        return bool(self.initial_status & SLTSTA_PDS) and not self.presence_detected

    @property
    def powered_off_by_guest(self) -> bool:
        """The guest's pciehp powered the slot off. QEMU clears PDS exactly on a guest's
        power-on -> power-off transition of an occupied slot, so that is the evidence."""
        return self.guest_pciehp == "bound" and self.powered_off and self.presence_cleared

    def summary(self) -> str:
        regs = (f"Slot Control {self.initial_control:#06x} -> {self.slot_control:#06x}, "
                f"Slot Status {self.initial_status:#06x} -> {self.slot_status:#06x}")
        if self.guest_pciehp != "bound":
            what = "the guest's pciehp did not drive the slot (no native PCIe hotplug)"
        elif self.powered_off_by_guest:
            what = "the guest's pciehp powered the slot off (QEMU unplugged it, PDS cleared)"
        elif self.powered_off:
            what = "the guest's pciehp left the slot off without a power-on/off cycle"
        else:
            what = "the guest's pciehp left the slot powered on"
        unsettled = "" if self.guest_settled != "no" else "; pciehp had NOT settled"
        return f"{what}{unsettled}: {regs}"


class PdsLinuxAction(LinuxAction):
    """The Linux guest on the PDS topology: its pciehp powers the empty slot off."""

    powers_off_slot = True  # the model's input, as for the synthetic action

    def __init__(self, image: GuestImage, root_port_id: str = ROOT_PORT_ID, *,
                 ready_timeout: float | None = None, poll: float = 0.05) -> None:
        if ready_timeout is None:
            super().__init__(image, poll=poll)
        else:
            super().__init__(image, ready_timeout=ready_timeout, poll=poll)
        self.root_port_id = root_port_id
        self.initial: SlotState | None = None  # the slot before the guest ran

    def before(self, monitor: Monitor) -> None:
        self.initial = read_slot_state(monitor, self.root_port_id)

    def after(self, monitor: Monitor, ready: Readiness) -> GuestSlotState:
        assert self.initial is not None, "before() reads the slot first"
        state = read_slot_state(monitor, self.root_port_id)
        return GuestSlotState(
            state.cap_offset, state.slot_control, state.slot_status,
            initial_control=self.initial.slot_control, initial_status=self.initial.slot_status,
            guest_pciehp="bound" if ready.pciehp else "not bound",
            guest_settled="yes" if ready.settled else "no", guest_ready_s=ready.uptime)
