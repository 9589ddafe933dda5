"""The scenario seam: the registry, the setting that chooses a scenario, and a second
scenario written as one class with only the required methods (every optional hook has its
default)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from patchcheck.errors import UsageError
from patchcheck.guests.action import Action, GuestState, Monitor
from patchcheck.result.model import Side
from patchcheck.scenarios import registry as scenarios
from patchcheck.scenarios.base import Scenario


class Noted(GuestState):
    def to_dict(self) -> dict[str, int]:
        return {"writes": 0}


class Idle(Action):
    name = "idle"

    def perform(self, monitor: Monitor) -> GuestState:
        return Noted()


class SourceSide(Scenario):
    """A bug whose fix the source needs, on machine types before 8.0."""

    name = "example"
    title = "an example of a source-side bug"

    def qemu_args(self, ram_mib: int) -> list[str]:
        return ["-m", f"{ram_mib}M"]

    def actions(self) -> Mapping[str, type[Action]]:
        return {"idle": Idle}

    def expected_to_fail(self, machine: str, source: Side, destination: Side,
                         globals_: Sequence[str], action: Action) -> bool:
        return not source.has_fix and machine < "pc-q35-8.0"


def side(has_fix: bool) -> Side:
    return Side("b", "10.0.0", "fix" if has_fix else "none", "", has_fix, "/qemu")


def test_registry_and_default() -> None:
    assert scenarios.names() == ["aer", "pds"] and scenarios.DEFAULT == "pds"
    assert scenarios.get("").name == scenarios.get("pds").name == "pds"
    with pytest.raises(UsageError, match="unknown scenario 'nope' \\(known: aer, pds\\)"):
        scenarios.get("nope")


def test_a_second_scenario_needs_only_the_required_methods(tmp_path: Path) -> None:
    scen = SourceSide()
    action = scen.action("idle")
    assert isinstance(action, Idle) and action.perform(None).to_dict() == {"writes": 0}  # type: ignore[arg-type]
    # the model sees both sides: here the source's fix decides
    assert scen.expected_to_fail("pc-q35-7.2", side(False), side(True), (), action)
    assert not scen.expected_to_fail("pc-q35-7.2", side(True), side(False), (), action)
    # the optional hooks, with their defaults
    assert (scen.force_global, scen.devices, scen.probe, scen.fixes(), scen.linux_guest) == \
        ("", (), None, {}, False)
    assert scen.boundary(["pc-q35-7.2", "pc-q35-8.0"]) == ["pc-q35-8.0"]
    assert not action.shares_source and action.qemu_args(tmp_path, "source") == []
    assert action.verify_destination(None, tmp_path, 1.0) is None  # type: ignore[arg-type]
    assert action.console_logs() == {} and Noted().summary() == ""
    with pytest.raises(UsageError, match="unknown guest action 'x' for scenario example"):
        scen.action("x")
    with pytest.raises(UsageError, match="scenario example has no Linux guest action"):
        scen.linux_action(None, 1.0)  # type: ignore[arg-type]
    lines = scen.error_lines("starting\nqemu: Bad config data: i=0x10a read: 40 device: 0\n")
    assert lines == ["qemu: Bad config data: i=0x10a read: 40 device: 0"]


def test_the_setting_chooses_a_known_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    from patchcheck.config import settings as config
    from patchcheck.errors import ConfigError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert config.load({"patchcheck": {}}).matrix.scenario == "pds"
    assert config.load({"patchcheck": {"matrix": {"scenario": "pds"}}}).matrix.scenario == "pds"
    aer = config.load({"patchcheck": {"matrix": {"scenario": "aer"}}})
    # the scenario brings its builds and guests; the configuration's builds add to them
    assert aer.matrix.builds == ("7.2-none", "10.0-compat", "10.0-none")
    assert dict(aer.matrix.guests) == {"none": "all"} and aer.builds["10.0-compat"].fix == "compat"
    mine = config.load({"patchcheck": {"matrix": {"scenario": "aer"},
                                       "builds": {"up": {"source": "git:/q@master"}}}})
    assert set(mine.builds) == {*aer.builds, "up"} and mine.matrix.builds == aer.matrix.builds
    with pytest.raises(ConfigError, match="matrix.scenario 'nope' is not a known scenario"):
        config.load({"patchcheck": {"matrix": {"scenario": "nope"}}})


def test_a_minimal_build_gets_the_devices_its_scenario_needs(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from patchcheck.build.pipeline import minimal_devices
    from patchcheck.config import settings as config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    short = config.load({"patchcheck": {"build": {"devices": ["CONFIG_Q35=y"]}}})
    assert minimal_devices(short) == ("CONFIG_Q35=y", "CONFIG_PCIE_PORT=y", "CONFIG_USB_XHCI_NEC=y")
    full = config.load({"patchcheck": {"build": {"devices": []}}})
    assert minimal_devices(full) == ()  # QEMU's default device set has them all


# What belongs to one bug: its names, offsets and devices (the two scenarios' own words).
BUG_WORDS = re.compile(r"pds|sltsta|0x6e|pcie-root-port|nec-usb-xhci|uncor|\baer\b", re.I)


def test_generic_code_names_no_scenario() -> None:
    """Every name, offset or device of a bug lives in its scenario's package: the generic
    modules (and the task help, built from the registry) mention none of them."""
    package = Path(scenarios.__file__).parent.parent
    found = [f"{path.relative_to(package)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py"))
             if "scenarios" not in path.relative_to(package).parts
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if BUG_WORDS.search(line)]
    assert found == []
