"""results -> junit.xml: a testcase fails iff observed differs from expected."""

from __future__ import annotations

from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from ..outcome import Observed
from ..results import CaseResult, RunResults

TAIL_LINES = 30


def _tail(path: str | None, lines: int = TAIL_LINES) -> str:
    if not path:
        return ""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def testcase(result: CaseResult, base: Path) -> TestCase:
    case = result.case
    out = [
        f"observed: {result.observed.value}  expected: {result.expected.value}",
        f"source: {result.source.build} (QEMU {result.source.qemu_version}, fix "
        f"{result.source.fix}/{result.source.fix_applied}) status {result.source_status or '-'}",
        f"destination: {result.destination.build} (QEMU {result.destination.qemu_version}, fix "
        f"{result.destination.fix}/{result.destination.fix_applied}) "
        f"status {result.destination_status or '-'}",
    ]
    if result.slot:
        out.append("slot after guest action: " + ", ".join(
            f"{k}={v:#06x}" if isinstance(v, int) else f"{k}={v}" for k, v in result.slot.items()))
    for role in ("source", "destination"):
        tail = _tail(result.logs.get(role))
        if tail:
            out += [f"--- {role} log (tail) ---", tail]
    out.append("--- reproduce ---")
    out.append(result.reproduce)
    for path in result.logs.values():
        try:
            rel = Path(path).resolve().relative_to(base.resolve())
        except ValueError:
            rel = Path(path)
        out.append(f"[[ATTACHMENT|{rel}]]")
    tc = TestCase(case.name, classname=case.classname, elapsed_sec=result.seconds,
                  stdout="\n".join(out))
    if result.observed == Observed.SKIPPED:
        tc.add_skipped_info(result.message or "a build this case needs failed")
    elif result.observed == Observed.ERROR:
        tc.add_error_info(result.message or "infrastructure error", result.destination_error)
    elif result.deviates:
        tc.add_failure_info(
            f"observed {result.observed.value}, expected {result.expected.value}: "
            f"{result.message}".rstrip(": "), result.destination_error or None)
    return tc


def to_xml(run: RunResults, base: Path) -> str:
    props = {"run_id": run.run_id, "partial": str(run.partial).lower()}
    for name, b in sorted(run.builds.items()):
        props[f"build.{name}"] = (f"{b.get('source')} commit {b.get('commit', '')[:12]} QEMU "
                                  f"{b.get('qemu_version')} fix {b.get('fix', {}).get('state')}"
                                  f"/{b.get('fix', {}).get('applied')} image "
                                  f"{str(b.get('image_id', ''))[:19]}")
    suite = TestSuite("migration", [testcase(r, base) for r in run.cases], properties=props,
                      timestamp=run.started)
    return to_xml_report_string([suite], prettyprint=True)


def write(run: RunResults, directory: Path) -> Path:
    path = directory / "junit.xml"
    tmp = directory / ".junit.xml.tmp"
    tmp.write_text(to_xml(run, directory))
    tmp.replace(path)
    return path
