"""The sweep -> junit.xml: a testsuite per device type, a testcase per machine type and direction
("pc-q35-6.0 forward (bookworm -> trixie)") holding its placements and guest actions: a failure
when one of them FAILED (the message: its error line), an error when one has no answer, skipped
when none ran (not started, unmigratable, blocked: the reason). A device type the sweep
did not run (or ran on one side only) gets a skipped testcase with the reason."""

from __future__ import annotations

import re
from collections.abc import Sequence

from junit_xml import TestCase, TestSuite, to_xml_report_string

from patchcheck.result.cells import Cell, CellOutcome, SweepResults
from patchcheck.verdict.sweep import SweepVerdict, known_bug, machine_order
from patchcheck.verdict.sweep_findings import DIRECTIONS

# As patchcheck/report/junit.py: junit-xml writes disabled="N", which the JUnit schema does not
# allow; nothing is ever disabled here.
_DISABLED = re.compile(r'(<testsuites?\b[^>]*?) disabled="[0-9]*"')
_SKIPPED = (CellOutcome.NOT_STARTED, CellOutcome.UNMIGRATABLE, CellOutcome.BLOCKED)


def _line(c: Cell) -> str:
    known = known_bug(c)
    return (f"{c.placement} {c.action}: {c.outcome}" + (f" (known bug {known})" if known else "")
            + (f": {c.error}" if c.error else ""))


def testcase(device: str, machine: str, direction: str, cells: Sequence[Cell]) -> TestCase:
    first = cells[0]
    name = f"{machine} {direction} ({first.source} -> {first.destination})"
    tc = TestCase(name, classname=f"sweep.{device}", stdout="\n".join(_line(c) for c in cells))
    failed = [c for c in cells if c.outcome == CellOutcome.FAILED]
    errors = [c for c in cells if c.outcome == CellOutcome.ERROR]
    if failed:
        tc.add_failure_info(failed[0].error or "the destination rejected the stream",
                            "\n".join(failed[0].lines) or None)
    elif errors:
        tc.add_error_info(errors[0].error or "no answer", "\n".join(errors[0].lines) or None)
    elif all(c.outcome in _SKIPPED for c in cells):
        tc.add_skipped_info("; ".join(f"{c.placement} {c.action}: {c.outcome}"
                                      + (f" ({c.error})" if c.error else "") for c in cells))
    return tc


def suite(results: SweepResults, device: str, cells: Sequence[Cell]) -> TestSuite:
    by: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        by.setdefault((c.machine, c.direction), []).append(c)
    order = {m: i for i, m in enumerate(machine_order([*results.machines, *(m for m, _ in by)]))}
    rank = {d: i for i, d in enumerate(DIRECTIONS)}
    keys = sorted(by, key=lambda k: (order[k[0]], rank.get(k[1], len(rank)), k[1]))
    cases = [testcase(device, m, d, sorted(by[(m, d)], key=lambda c: (c.placement, c.action)))
             for m, d in keys]
    for u in results.unrunnable:
        if u.device == device:
            tc = TestCase(f"not run: {u.reason}" + (f" ({u.side})" if u.side else ""),
                          classname=f"sweep.{device}")
            tc.add_skipped_info(f"{u.reason}: {u.detail}" if u.detail else u.reason)
            cases.append(tc)
    return TestSuite(device, cases, timestamp=results.started or None)


def to_xml(results: SweepResults, verdict: SweepVerdict) -> str:
    cells: dict[str, list[Cell]] = {}
    for c in results.cells:
        cells.setdefault(c.device, []).append(c)
    devices = list(dict.fromkeys([*results.devices, *cells, *(u.device for u in results.unrunnable)]))
    suites = [suite(results, d, cells.get(d, [])) for d in devices]
    if suites:
        suites[0].properties = {"a": f"{results.a.name} {results.a.spec} QEMU "
                                     f"{results.a.qemu_version}",
                                "b": f"{results.b.name} {results.b.spec} QEMU "
                                     f"{results.b.qemu_version}",
                                "partial": str(results.partial).lower(),
                                "verdict": "\n".join(verdict.lines),
                                "exit_code": str(verdict.code)}
    return _DISABLED.sub(r"\1", to_xml_report_string(suites, prettyprint=True))
