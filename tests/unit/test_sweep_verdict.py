"""The sweep's verdict on small hand-made sweeps: machine types as ranges, findings grouped and
matched to a known bug through a real scenario's signature (unknown ones kept), two sweeps
compared, a patch's new failures, and the exit code with its words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from patchcheck.exit_codes import EXIT_DEVIATION, EXIT_INFRA, EXIT_OK
from patchcheck.result.cells import Cell, SweepResults, SweepSide
from patchcheck.verdict.sweep import decide, findings, machine_order, machine_ranges
from patchcheck.verdict.sweep_diff import diff, new_failures

# The PDS bug as the destination prints it (patchcheck/scenarios/pds): a root port's slot status.
PDS_LINES = ["get_pci_config_device: Bad config data: i=0x6e read: 0 device: 40 cmask: ff "
             "wmask: 0 w1cmask:19",
             "error while loading state for instance 0x0 of device '0000:00:12.0/pcie-root-port'",
             "load of migration failed: Invalid argument"]
OTHER_LINES = ["Failed to load e1000e:parent_obj",
               "error while loading state for instance 0x0 of device '0000:00:03.0/e1000e'",
               "load of migration failed: Invalid argument"]
Q35 = ["pc-q35-2.4", "pc-q35-3.0", "pc-q35-4.0", "pc-q35-4.0.1", "pc-q35-4.1", "pc-q35-6.0",
       "pc-q35-7.2", "pc-q35-9.2", "pc-q35-10.0"]
I440FX = ["pc-i440fx-6.0", "pc-i440fx-7.2", "pc-i440fx-8.0"]


def side(name: str, in_image: bool = True) -> SweepSide:
    return SweepSide(name=name, spec=f"debian-pkg:{name}", qemu_version="7.2.22",
                     configuration=f"Debian package qemu-system-x86 ({name})",
                     image_id=f"sha256:{name}", image=f"patchcheck-qemu-{name}",
                     binary="/usr/bin/qemu-system-x86_64" if in_image
                     else f"/cache/builds/{name}/bin/qemu-system-x86_64",
                     binary_in_image=in_image)


def cell(device: str, machine: str, outcome: str = "passed", direction: str = "forward",
         lines: Sequence[str] = (), placement: str = "pcie.0", action: str = "created",
         a: str = "bookworm", b: str = "trixie") -> Cell:
    """One cell; a failed or errored one says its first line as `error`."""
    ends = {"forward": (a, b), "backward": (b, a), "control": (a, a)}[direction]
    return Cell(device=device, placement=placement, machine=machine, direction=direction,
                action=action, source=ends[0], destination=ends[1], outcome=outcome,
                error=lines[0] if lines else "", lines=list(lines),
                args=["-device", f"{device},id=dev0,bus=pcie.0,addr=0x3"],
                hmp=["device_del dev0"] if action == "slot" else [])


def sweep(cells: Sequence[Cell], machines: Sequence[str] = (), partial: bool = False,
          a: SweepSide | None = None, b: SweepSide | None = None) -> SweepResults:
    return SweepResults(a=a or side("bookworm"), b=b or side("trixie"), cells=list(cells),
                        devices=list(dict.fromkeys(c.device for c in cells)),
                        machines=list(machines) or list(dict.fromkeys(c.machine for c in cells)),
                        actions=sorted({c.action for c in cells}), partial=partial,
                        migrations=len(cells))


def across(device: str, machines: Sequence[str], failing: Sequence[str],
           lines: Sequence[str] = OTHER_LINES, direction: str = "forward") -> list[Cell]:
    return [cell(device, m, "failed" if m in failing else "passed", direction,
                 lines if m in failing else ()) for m in machines]


def test_machine_types_in_version_order_families_apart() -> None:
    shuffled = ["pc-i440fx-7.2", "pc-q35-10.0", "pc-q35-4.1", "pc-q35-4.0.1", "pc-q35-9.2",
                "pc-q35-4.0", "pc-i440fx-6.0"]
    assert machine_order(shuffled) == ["pc-q35-4.0", "pc-q35-4.0.1", "pc-q35-4.1", "pc-q35-9.2",
                                       "pc-q35-10.0", "pc-i440fx-6.0", "pc-i440fx-7.2"]


def test_ranges_break_where_a_swept_type_passed() -> None:
    swept = [*Q35, *I440FX]
    failing = ["pc-q35-2.4", "pc-q35-3.0", "pc-q35-4.0", "pc-q35-4.0.1", "pc-q35-6.0",
               "pc-q35-10.0", "pc-i440fx-7.2", "pc-i440fx-8.0"]
    assert machine_ranges(swept, failing) == ("pc-q35-2.4 .. 4.0.1, pc-q35-6.0, pc-q35-10.0, "
                                              "pc-i440fx-7.2 .. 8.0")
    assert machine_ranges(swept, ["pc-q35-7.2"]) == "pc-q35-7.2"
    assert machine_ranges(swept, []) == ""
    # a type that was not swept between two failing ones breaks nothing
    assert machine_ranges(["pc-q35-6.0", "pc-q35-7.2"], ["pc-q35-6.0", "pc-q35-7.2"]) == \
        "pc-q35-6.0 .. 7.2"
    # the families do not run into each other: q35's last and i440fx's first are apart
    assert machine_ranges(swept, ["pc-q35-10.0", "pc-i440fx-6.0"]) == \
        "pc-q35-10.0, pc-i440fx-6.0"


def test_a_finding_per_device_direction_and_error_over_its_machine_types() -> None:
    cells = [*across("e1000e", Q35, ["pc-q35-2.4", "pc-q35-3.0", "pc-q35-6.0"]),
             *across("e1000e", Q35, ["pc-q35-7.2"], direction="backward"),
             *across("virtio-net-pci", Q35, [])]
    found = findings(sweep(cells, Q35))
    assert [(f.device, f.direction, f.ranges) for f in found] == [
        ("e1000e", "forward", "pc-q35-2.4 .. 3.0, pc-q35-6.0"),
        ("e1000e", "backward", "pc-q35-7.2")]
    forward = found[0]
    assert (forward.source, forward.destination) == ("bookworm", "trixie")
    assert forward.error == OTHER_LINES[0]
    assert forward.machines == ("pc-q35-2.4", "pc-q35-3.0", "pc-q35-6.0")
    assert [c.machine for c in forward.cells] == list(forward.machines)
    assert forward.first.machine == "pc-q35-2.4"
    assert found[1].source == "trixie"


def test_a_known_bug_by_its_signature_and_an_unknown_one_kept() -> None:
    cells = [*across("e1000e", Q35, ["pc-q35-4.0", "pc-q35-4.0.1"], lines=PDS_LINES),
             cell("igb", "pc-q35-6.0", "failed", lines=OTHER_LINES)]
    found = findings(sweep(cells, Q35))
    assert [(f.device, f.known) for f in found] == [("e1000e", "pds"), ("igb", "")]
    assert found[0].ranges == "pc-q35-4.0 .. 4.0.1"
    # the same error on another device's state is not the bug
    elsewhere = [PDS_LINES[0], "error while loading state for instance 0x0 of device "
                               "'0000:00:03.0/e1000e'"]
    assert findings(sweep([cell("e1000e", "pc-q35-6.0", "failed", lines=elsewhere)]))[0].known == ""


def test_different_errors_are_different_findings_and_control_comes_last() -> None:
    cells = [cell("e1000e", "pc-q35-6.0", "failed", "control", OTHER_LINES),
             cell("e1000e", "pc-q35-6.0", "failed", "forward", PDS_LINES),
             cell("e1000e", "pc-q35-7.2", "failed", "forward", OTHER_LINES)]
    found = findings(sweep(cells))
    assert [(f.direction, f.error) for f in found] == [
        ("forward", PDS_LINES[0]), ("forward", OTHER_LINES[0]), ("control", OTHER_LINES[0])]
    assert [f.control for f in found] == [False, False, True]
    assert (found[2].source, found[2].destination) == ("bookworm", "bookworm")


def test_exit_codes_of_a_plain_sweep() -> None:
    passing = across("e1000e", Q35, [])
    assert decide(sweep(passing)).code == EXIT_OK
    known = decide(sweep(across("e1000e", Q35, ["pc-q35-6.0"], lines=PDS_LINES)))
    assert known.code == EXIT_OK and "known bug" in known.headline and "pds" in known.headline
    unknown = decide(sweep(across("igb", Q35, ["pc-q35-6.0"])))
    assert unknown.code == EXIT_DEVIATION and unknown.headline.startswith("Unknown failures")
    assert unknown.details[-1] == "Exit code 1: failures."


def test_an_error_cell_cannot_tell_unless_a_finding_decides() -> None:
    errored = [*across("e1000e", Q35, [], lines=PDS_LINES), cell("igb", "pc-q35-6.0", "error",
                                                                  lines=["QEMU timed out"])]
    verdict = decide(sweep(errored))
    assert verdict.code == EXIT_INFRA and verdict.headline.startswith("Cannot tell")
    assert "1 cell without an answer" in verdict.headline
    with_finding = decide(sweep([*errored, cell("rtl8139", "pc-q35-6.0", "failed",
                                                lines=OTHER_LINES)]))
    assert with_finding.code == EXIT_DEVIATION
    assert any("without an answer" in d for d in with_finding.details)
    with_known = decide(sweep([*errored, cell("rtl8139", "pc-q35-6.0", "failed",
                                              lines=PDS_LINES)]))
    assert with_known.code == EXIT_INFRA  # a known bug decides nothing


def test_a_partial_sweep_cannot_tell() -> None:
    verdict = decide(sweep(across("e1000e", Q35, []), partial=True))
    assert verdict.code == EXIT_INFRA and "partial" in verdict.headline
    assert decide(sweep(across("igb", Q35, ["pc-q35-6.0"]), partial=True)).code == EXIT_DEVIATION


def test_diff_regressions_fixes_and_what_only_one_has() -> None:
    base = sweep([*across("e1000e", Q35, ["pc-q35-7.2"]),
                  *across("igb", Q35, []), cell("rtl8139", "pc-q35-6.0", "passed"),
                  cell("gone", "pc-q35-6.0", "passed")])
    new = sweep([*across("e1000e", Q35, ["pc-q35-2.4", "pc-q35-3.0"]),
                 *across("igb", Q35, []), cell("rtl8139", "pc-q35-6.0", "error"),
                 cell("added", "pc-q35-6.0", "failed", lines=OTHER_LINES),
                 cell("added", "pc-q35-7.2", "passed")])
    d = diff(base, new)
    assert [(f.device, f.ranges) for f in d.regressions] == [("e1000e", "pc-q35-2.4 .. 3.0")]
    assert [(f.device, f.ranges) for f in d.fixes] == [("e1000e", "pc-q35-7.2")]
    assert d.regressed_cells == 2 and d.fixed_cells == 1
    assert [(c.key.device, c.before, c.after) for c in d.changed] == [("rtl8139", "passed", "error")]
    assert (d.only_base, d.only_new) == (1, 2)
    verdict = decide(new, base=base)
    assert verdict.code == EXIT_DEVIATION and verdict.headline.startswith("Regressions")
    assert verdict.diff is not None


def test_against_a_base_only_regressions_decide() -> None:
    same = sweep(across("igb", Q35, ["pc-q35-6.0"]))  # an unknown finding in both
    assert decide(sweep(across("igb", Q35, ["pc-q35-6.0"])), base=same).code == EXIT_OK
    fixed = decide(sweep(across("igb", Q35, [])), base=same)
    assert fixed.code == EXIT_OK and fixed.diff is not None and fixed.diff.fixed_cells == 1
    assert "no regression" in fixed.headline


def _patch_sweep(control: str) -> SweepResults:
    return sweep([cell("e1000e", "pc-q35-6.0", "failed", "forward", OTHER_LINES),
                  cell("e1000e", "pc-q35-6.0", "passed", "backward"),
                  cell("e1000e", "pc-q35-6.0", control, "control",
                       OTHER_LINES if control == "failed" else ())],
                 a=side("base"), b=side("base+patch"))


def test_a_patch_is_judged_by_what_fails_between_a_and_b_and_not_a_and_a() -> None:
    new = _patch_sweep("passed")
    changes = new_failures(new)
    assert [(f.device, f.direction, f.ranges) for f in changes.new_failures] == [
        ("e1000e", "forward", "pc-q35-6.0")]
    verdict = decide(new, patch=True)
    assert verdict.code == EXIT_DEVIATION and verdict.headline.startswith("The patch makes")
    assert "base+patch" in verdict.headline
    own = decide(_patch_sweep("failed"), patch=True)  # A's own bug: not the patch's
    assert own.code == EXIT_OK and own.patch is not None and own.patch.known_to_a == 1
    unanswered = decide(_patch_sweep("error"), patch=True)
    assert unanswered.code == EXIT_INFRA and "control" in unanswered.headline


def test_every_report_gets_the_same_words() -> None:
    verdict = decide(sweep(across("igb", Q35, ["pc-q35-6.0"])))
    assert verdict.lines[0] == verdict.headline and verdict.word == "failures"
    assert [f.device for f in verdict.findings] == ["igb"]


def test_the_sweep_verdict_names_no_scenario_device_or_offset() -> None:
    root = Path(__file__).resolve().parents[2] / "patchcheck"
    words = re.compile(r"pds|sltsta|0x6e|pcie-root-port|nec-usb-xhci|uncor", re.IGNORECASE)
    for path in [*root.glob("verdict/sweep*.py"), *(root / "report" / "sweep").glob("*.py")]:
        assert not words.search(path.read_text()), path
