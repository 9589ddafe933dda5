"""Which devices start at all, before any group is made: each device alone, in each of its
placements, on the newest machine type of the family both sides know, on each side. A
device that does not start there on a side is not swept in that placement (recorded with
QEMU's line); without this, each such device would cost a restart of its group on every
machine type. The shortcut can be turned off (`sweep.screen: false`): every device then goes
into the groups, and a device that does not start is found there, per machine type (the
test test_sweep_screen_equal proves both give the same cells)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from patchcheck import jobs
from patchcheck.qemu.inventory import DeviceType
from patchcheck.result.cells import Placement, SweepSide, Unrunnable
from patchcheck.run.sweep.members import Carriers, member, slots
from patchcheck.run.sweep.trial import Setting, launch

Check = tuple[str, str, DeviceType]  # (side name, placement, device)
ROOT_BUSES = (Placement.PCIE_ROOT, Placement.PCI_ROOT)
HUNG = "did not connect to QMP"  # patchcheck.qemu.machine's words for a QEMU that hangs


def starts(setting: Setting, side: SweepSide, placement: str, device: DeviceType,
           carriers: Carriers) -> str:
    """"" when the device starts alone in this placement; else QEMU's first line."""
    rundir = Path(tempfile.mkdtemp(prefix="sc-", dir=setting.scratch))
    created = member(device, placement, slots(placement)[0], carriers)
    machine = setting.hosts.machine(side.image_id, side.binary,
                                    [*setting.base_args(), *created.args, "-S"], rundir,
                                    "screen", timeout=setting.start_timeout)
    try:
        fault = launch(machine)
        return "" if fault is None else (fault.line or "QEMU did not start")
    finally:
        machine.shutdown()
        shutil.rmtree(rundir, ignore_errors=True)


def screen(settings_for: Callable[[str], Setting], sides: Mapping[str, SweepSide],
           wanted: Mapping[str, Sequence[DeviceType]], machines: Mapping[str, str],
           carriers: Carriers, workers: int) -> tuple[dict[str, list[DeviceType]],
                                                      list[Unrunnable]]:
    """Per placement, the devices that start on every side; and the others, with the line.
    `machines`: placement -> the machine type it is screened on; `settings_for(machine)`.
    The root buses first: a device that hangs there (no monitor within the start timeout,
    as a device waiting for a peer does) is not started again in the other placements."""
    refused: dict[tuple[str, str], tuple[str, str]] = {}
    hung: dict[str, tuple[str, str]] = {}
    roots = [p for p in wanted if p in ROOT_BUSES]
    for phase in (roots, [p for p in wanted if p not in ROOT_BUSES]):
        checks: list[Check] = [(name, placement, device) for placement in phase
                               for device in wanted[placement] if device.name not in hung
                               for name in sides]

        def run(check: Check) -> Iterable[str]:
            name, placement, device = check
            yield starts(settings_for(machines[placement]), sides[name], placement, device,
                         carriers)

        for (name, placement, device), line in jobs.parallel(checks, run, workers):
            if line and (placement, device.name) not in refused:
                refused[(placement, device.name)] = (name, line)
                if HUNG in line:
                    hung[device.name] = (name, line)
    for placement in wanted:
        for hung_type, (name, line) in hung.items():
            refused.setdefault((placement, hung_type), (name, f"{line} (on the root bus)"))
    kept = {placement: [d for d in devices if (placement, d.name) not in refused]
            for placement, devices in wanted.items()}
    unrunnable = [Unrunnable(device, f"does not start on {placement} ({machines[placement]})",
                             line, side)
                  for (placement, device), (side, line) in sorted(refused.items())
                  if any(d.name == device for d in wanted[placement])]
    return kept, unrunnable
