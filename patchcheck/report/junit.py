"""results -> junit.xml: a testcase fails iff observed differs from expected.

Also the one place that finds a case's log files inside a run directory (`log_paths`), so
junit.xml, index.html and summary.md all point at the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from patchcheck.result.files import write_whole
from patchcheck.result.model import CaseResult, RunResults
from patchcheck.result.outcome import Observed

TAIL_LINES = 30
TAIL_CHARS = 4000  # per log: hundreds of cases must not make junit.xml huge
_RANK = {"source": 0, "destination": 1, "console": 2, "reproduce": 9}  # others: 5

# junit-xml 1.9 writes disabled="N" on <testsuites> and <testsuite>. The JUnit schema
# Jenkins' xUnit plugin publishes (junit-10.xsd, our test oracle) does not allow that
# attribute; Jenkins and GitLab ignore it, and we never disable a case, so it is always
# "0" and carries nothing. Dropping it makes the file valid against the schema.
_DISABLED = re.compile(r'(<testsuites?\b[^>]*?) disabled="[0-9]*"')


def log_paths(result: CaseResult, run_dir: Path) -> dict[str, str]:
    """role -> path of that log, relative to `run_dir` when the file is inside it.

    results.json stores the paths as the run wrote them (absolute, or relative to the
    directory the run started in). A run directory that was moved, copied or archived still
    has its logs in cases/<case>/, so a stored path not under `run_dir` is looked up there;
    only when it is not found there either is the stored path kept as it is.
    """
    base = run_dir.resolve()
    found: dict[str, str] = {}
    for role, stored in sorted(result.logs.items(), key=lambda kv: _rank(kv[0])):
        path = Path(stored)
        try:
            found[role] = path.resolve().relative_to(base).as_posix()
            continue
        except ValueError:
            pass
        moved = Path("cases") / result.case.slug / path.name
        found[role] = moved.as_posix() if (base / moved).is_file() else stored
    return found


def _rank(role: str) -> tuple[int, str]:
    return (_RANK.get(role, 5), role)


def _tail(path: Path | None, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    if path is None:
        return ""
    try:
        text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
    if len(text) > chars:
        text = "[...]" + text[-chars:]
    return text


def testcase(result: CaseResult, base: Path) -> TestCase:
    case = result.case
    logs = log_paths(result, base)
    out = [
        f"observed: {result.observed.value}  expected: {result.expected.value}",
        f"source: {result.source.build} (QEMU {result.source.qemu_version}, fix "
        f"{result.source.fix}/{result.source.fix_applied}) status {result.source_status or '-'}",
        f"destination: {result.destination.build} (QEMU {result.destination.qemu_version}, fix "
        f"{result.destination.fix}/{result.destination.fix_applied}) "
        f"status {result.destination_status or '-'}",
    ]
    if result.source_migration > 1:
        out.append(f"source: migration {result.source_migration} of a source QEMU shared with "
                   "the cases before it (its guest booted once)")
    for attempt in result.earlier_attempts:
        out.append(f"earlier attempt (the destination's guest did not survive; tried again "
                   f"with a fresh destination): {attempt}")
    if result.guest_state:
        out.append("guest state after the action: " + ", ".join(
            f"{k}={v:#06x}" if isinstance(v, int) else f"{k}={v}"
            for k, v in result.guest_state.items()))
    for role in ("source", "destination"):
        tail = _tail(base / logs[role]) if role in logs else ""
        if tail:
            out += [f"--- {role} log (tail) ---", tail]
    out.append("--- reproduce ---")
    out.append(result.reproduce)
    out += [f"[[ATTACHMENT|{rel}]]" for rel in logs.values()]
    tc = TestCase(case.name, classname=case.classname, elapsed_sec=round(result.seconds, 3),
                  stdout="\n".join(out))
    if result.observed == Observed.SKIPPED:
        tc.add_skipped_info(result.message or "a build this case needs failed")
    elif result.observed == Observed.ERROR:
        tc.add_error_info(result.message or "infrastructure error", result.destination_error)
    elif result.observed == Observed.FLAKY and not result.deviates:  # no pass, no failure
        tc.add_error_info(f"flaky: {result.message}", result.destination_error or None)
    elif result.deviates:
        tc.add_failure_info(
            f"observed {result.observed.value}, expected {result.expected.value}: "
            f"{result.message}".rstrip(": "), result.destination_error or None)
    return tc


def _unique(cases: list[TestCase]) -> list[TestCase]:
    """GitLab keeps one testcase per (classname, name): never let two collide."""
    seen: dict[tuple[str, str], int] = {}
    for tc in cases:
        key = (tc.classname, tc.name)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            tc.name = f"{tc.name} #{seen[key]}"
    return cases


def to_xml(run: RunResults, base: Path) -> str:
    from patchcheck.verdict.decision import decide_dir, task_of

    decision, task = decide_dir(run, base), task_of(run)
    props = {"run_id": run.run_id, "partial": str(run.partial).lower(),
             "scenario": str(run.settings.get("scenario", "")),
             "verdict": "\n".join(decision.lines(task)),
             "exit_code": str(decision.exit_code(task))}
    for name, b in sorted(run.builds.items()):
        props[f"build.{name}"] = (f"{b.get('source')} commit {b.get('commit', '')[:12]} QEMU "
                                  f"{b.get('qemu_version')} fix {b.get('fix', {}).get('state')}"
                                  f"/{b.get('fix', {}).get('applied')} image "
                                  f"{str(b.get('image_id', ''))[:19]}")
    suite = TestSuite("migration", _unique([testcase(r, base) for r in run.cases]),
                      properties=props, timestamp=run.started)
    suites = [suite]
    from patchcheck.probe import model as probe_model
    from patchcheck.report import probe_text as probe_report

    semantics = probe_model.load(base)
    if semantics is not None:
        suites.append(probe_report.junit_suite(semantics))
    return _DISABLED.sub(r"\1", to_xml_report_string(suites, prettyprint=True))


def write(run: RunResults, directory: Path) -> Path:
    return write_whole(directory / "junit.xml", to_xml(run, directory))
