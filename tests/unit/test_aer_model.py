"""The aer scenario's model against the verdicts measured with real QEMU 7.2.22 and 10.0.13
(with and without the hw_compat_7_2 entry), and its -global routing."""

from __future__ import annotations

import pytest

from patchcheck.result.model import Side
from patchcheck.scenarios import registry as scenarios
from patchcheck.scenarios.aer.model import FORCE_ON, Kind, forced, kind, register_on
from patchcheck.scenarios.aer.scenario import SCENARIO, NoAction
from patchcheck.source import specs as sources
from patchcheck.tree import fixes

V72 = Side("7.2-none", "7.2.22", "none", "unchanged", False, "/b/72")
FIXED = Side("10.0-compat", "10.0.13", "compat", "already-present", True, "/b/fixed")
NOFIX = Side("10.0-none", "10.0.13", "none", "reverted", False, "/b/nofix")
BUILDS = {"7.2": V72, "fixed": FIXED, "nofix": NOFIX}

# Measured (docs/scenario-aer.md): source -> destination, machine type -> verdict.
# "F" failed with "Bad config data: i=0x10a read: 40", "p" passed; 7.2 has no type >= 8.0.
MEASURED = {
    ("7.2", "7.2"): "ppp--", ("7.2", "fixed"): "ppp--", ("7.2", "nofix"): "ppp--",
    ("fixed", "7.2"): "ppp--", ("fixed", "fixed"): "ppppp", ("fixed", "nofix"): "ppppp",
    ("nofix", "7.2"): "FFF--", ("nofix", "fixed"): "FFFpp", ("nofix", "nofix"): "ppppp",
}
TYPES = ("pc-q35-7.0", "pc-q35-7.1", "pc-q35-7.2", "pc-q35-8.0", "pc-q35-10.0")


def _expect(src: Side, dst: Side, machine: str, globals_: tuple[str, ...] = ()) -> str:
    failed = SCENARIO.expected_to_fail(machine, src, dst, globals_, NoAction())
    return "F" if failed else "p"


@pytest.mark.parametrize(("pair", "verdicts"), sorted(MEASURED.items()))
def test_model_matches_every_measured_cell(pair: tuple[str, str], verdicts: str) -> None:
    src, dst = BUILDS[pair[0]], BUILDS[pair[1]]
    for machine, measured in zip(TYPES, verdicts, strict=True):
        if measured != "-":
            assert _expect(src, dst, machine) == measured, (pair, machine)


@pytest.mark.parametrize(("src", "dst", "machine", "measured"), [
    # the register forced on at a fixed source brings the bug back on old types ...
    ("fixed", "7.2", "pc-q35-7.2", "F"), ("fixed", "fixed", "pc-q35-7.0", "F"),
    ("fixed", "nofix", "pc-q35-7.2", "p"),  # ... except towards a destination that has it on
    ("fixed", "fixed", "pc-q35-10.0", "p"), ("nofix", "nofix", "pc-q35-10.0", "p"),
])
def test_forced_register_on_the_source(src: str, dst: str, machine: str, measured: str) -> None:
    assert _expect(BUILDS[src], BUILDS[dst], machine, (FORCE_ON,)) == measured


def test_globals_go_to_the_source_and_never_to_a_build_without_the_property() -> None:
    assert SCENARIO.globals_for([FORCE_ON], "source", FIXED) == [FORCE_ON]
    assert SCENARIO.globals_for([FORCE_ON], "destination", FIXED) == []
    assert SCENARIO.globals_for([FORCE_ON], "source", V72) == []  # 7.2 would not start
    other = "ICH9-LPC.disable_s3=1"
    assert SCENARIO.globals_for([other, FORCE_ON], "destination", V72) == [other]
    assert SCENARIO.force_applies(FIXED, V72) and not SCENARIO.force_applies(V72, FIXED)


def test_kinds_and_property_values() -> None:
    assert (kind(V72), kind(FIXED), kind(NOFIX)) == (Kind.ABSENT, Kind.COMPAT, Kind.NO_COMPAT)
    assert kind(Side("up", "8.0.0", "none", "unchanged", False, "")) == Kind.NO_COMPAT
    assert forced([]) is None
    assert forced(["pci-device.x-pcie-err-unc-mask=off"]) is False  # an ancestor type
    assert forced(["e1000e.x-pcie-err-unc-mask=on"]) is None  # another device
    assert forced([FORCE_ON, "pcie-root-port.x-pcie-err-unc-mask=false"]) is False  # last wins
    # a -global switches the register off on the newest type, and never on for 7.2
    assert not register_on(FIXED, "pc-q35-10.0", ["pcie-root-port.x-pcie-err-unc-mask=off"])
    assert not register_on(V72, "pc-q35-7.2", [FORCE_ON])


def test_boundary_types() -> None:
    types = ["pc-q35-6.2", "pc-q35-7.1", "pc-q35-7.2", "pc-q35-8.0", "pc-q35-8.1", "pc-q35-10.0"]
    assert SCENARIO.boundary(types) == ["pc-q35-7.2", "pc-q35-8.0", "pc-q35-10.0"]
    assert SCENARIO.boundary(types[:3]) == ["pc-q35-7.2"]


def test_registry_knows_both_scenarios_and_their_fixes_and_builds() -> None:
    assert scenarios.names() == ["aer", "pds"]
    assert scenarios.get("aer") is SCENARIO and scenarios.get("aer").name == "aer"
    with pytest.raises(scenarios.UsageError, match="unknown scenario 'nope'.*aer, pds"):
        scenarios.get("nope")
    for name in scenarios.names():
        scen = scenarios.get(name)
        known = fixes.known_fixes(name)
        assert known.names and all(p.path.is_file() for p in known.patches)
        for source, state in scen.defaults.builds.values():
            sources.parse_spec(source)
            assert fixes.resolve(state, known) is None or state in known.names
        assert set(scen.defaults.guests) <= {*scen.actions(), "linux"}
        assert scen.defaults.check_guest in scen.actions()
    assert SCENARIO.words.fix_side == "source"


def test_the_fix_is_found_in_a_tree_and_keys_its_worktrees(tmp_path) -> None:
    known = fixes.known_fixes("aer")
    compat = known.get("compat")
    assert compat is not None
    # keyed by the scenario, the fix and its content: an edited patch is another tree
    assert fixes.fix_key("compat", known) == f"aer-compat-{compat.digest[:12]}"
    assert fixes.fix_key("none", known).startswith("aer-none-")
    assert fixes.fix_key("none", known) != fixes.fix_key("none")  # pds-none-...
