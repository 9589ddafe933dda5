"""The probe's reuse method on the model of QEMU 7.2's root port: a used port brought back by
reset and write-back gives every experiment the results a fresh port gives, and a port the
reset cannot bring back is never used for an experiment (Drifted)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from patchcheck.probe.assemble import assemble
from patchcheck.probe.experiment import Experiment, Outcome, experiments
from patchcheck.probe.runner import Drifted, restore, run_experiment
from patchcheck.scenarios.pds import registers as R

from ..fakes import build_record
from .test_probe_classify import REGISTER_SET, FakeRootPort


class ResettablePort(FakeRootPort):
    """system_reset of the model: every byte back to its power-on value except Slot Control
    (so the write-back has work: and writing Slot Control sets Command Completed, a status
    bit only a write-1-to-clear removes); an unplugged device stays unplugged, as in QEMU."""

    def __init__(self, v1: bool = False, keep: tuple[int, int] = (FakeRootPort.EXP + 0x18, 2)
                 ) -> None:
        super().__init__(v1)
        self.power_on = bytes(self.space)
        self.keep = keep
        self.resets = 0

    def reset(self) -> None:
        offset, size = self.keep
        kept = self.space[offset:offset + size]
        self.space[:] = self.power_on
        self.space[offset:offset + size] = kept
        self.resets += 1


def _bits(outcomes: list[Outcome], v1: bool) -> list[dict[str, Any]]:
    probe = assemble(build_record("7.2", "v1" if v1 else "none", v1), "pc-q35-6.0", [],
                     outcomes, REGISTER_SET)
    return [{k: v for k, v in dataclasses.asdict(b).items() if k != "seconds"}
            for reg in probe.registers for b in reg.bits]


def _reused(v1: bool) -> tuple[list[Outcome], int]:
    """Every experiment in order on as few ports as the reuse method needs."""
    outcomes, ports = [], 0
    port: ResettablePort | None = None
    fresh: dict[str, int] = {}
    for exp in experiments(REGISTER_SET):
        outcome = None
        if port is not None:
            try:
                restore(port, REGISTER_SET, None, fresh)
                outcome = run_experiment(exp, port, REGISTER_SET, start=fresh)
            except Drifted:
                port = None
        if outcome is None:
            port, ports = ResettablePort(v1), ports + 1
            outcome = run_experiment(exp, port, REGISTER_SET)
            fresh = outcome.start
        if outcome.unplugged:
            port = None
        outcomes.append(outcome)
    return outcomes, ports


@pytest.mark.parametrize("v1", [False, True], ids=["7.2-none", "7.2-v1"])
def test_a_reused_port_gives_every_bit_the_fresh_result(v1: bool) -> None:
    fresh = [run_experiment(e, FakeRootPort(v1), REGISTER_SET)
             for e in experiments(REGISTER_SET)]
    reused, ports = _reused(v1)
    assert _bits(reused, v1) == _bits(fresh, v1)
    assert [o.trace for o in reused] == [o.trace for o in fresh]  # op for op
    assert ports < len(fresh) // 4  # only an unplug needs a new port here


def test_restore_writes_back_control_and_clears_status_set_since() -> None:
    port = ResettablePort()
    first = run_experiment(Experiment(R.SLOT_CONTROL, 0), port, REGISTER_SET)
    port.reset()
    sltctl = port.read_config(port.EXP + 0x18, 2)
    assert sltctl != first.start[R.SLOT_CONTROL.key]  # the reset did not restore it
    restore(port, REGISTER_SET, None, first.start)
    assert port.read_config(port.EXP + 0x18, 2) == first.start[R.SLOT_CONTROL.key]
    # the write-back set Command Completed; restore cleared it again
    assert port.read_config(port.EXP + 0x1A, 2) == first.start[R.SLOT_STATUS.key]
    again = run_experiment(Experiment(R.SLOT_CONTROL, 1), port, REGISTER_SET, start=first.start)
    assert again.start == first.start


def test_a_port_the_reset_cannot_restore_is_not_used() -> None:
    """Power-off of the populated slot unplugs the device and clears Presence Detect State,
    a read-only bit: no write brings it back, so the next experiment refuses the port."""
    port = ResettablePort(keep=(FakeRootPort.EXP + 0x18, 4))  # Slot Control and Status kept
    first = run_experiment(Experiment(R.SLOT_CONTROL, 10), port, REGISTER_SET)
    assert first.unplugged  # the power-off did unplug
    restore(port, REGISTER_SET, None, first.start)
    with pytest.raises(Drifted, match="sltsta"):
        run_experiment(Experiment(R.SLOT_CONTROL, 0), port, REGISTER_SET, start=first.start)
