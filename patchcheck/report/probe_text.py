"""The probe's reports (its results are probe/model.py's, its verdict verdict/probe.py's):
probe.json, the JUnit `semantics` suite, markdown (probe.md and a short section for
summary.md) and a few lines for the terminal; report/probe_page.py its HTML section.

The JUnit suite has one testcase per (machine type, without-fix -> with-fix pair,
register) and one per pair for the vmstate comparison. A testcase fails when the fix
introduces a specification violation in that register (or, for vmstate, a difference
that breaks a migration direction); it is an error when QEMU could not be probed.
Deviations from the specification that the build without the fix has as well are listed
in the testcase's output, never failures: they are QEMU's, not the fix's.
"""

from __future__ import annotations

import re
from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from patchcheck.probe import versions
from patchcheck.probe.classify import BitChange, Change
from patchcheck.probe.model import BuildProbe, ProbeRun, _where, deviations_text
from patchcheck.probe.vmstate import VmstateComparison
from patchcheck.verdict.probe import exit_code, words

SUITE = "semantics"
# junit-xml writes disabled="0", which the JUnit schema (junit-10.xsd) rejects: dropped, as
# patchcheck.report.junit does for junit.xml.
_DISABLED = re.compile(r'(<testsuites?\b[^>]*?) disabled="[0-9]*"')


# --------------------------------------------------------------------------------------------
# JUnit


def _register_table(without: BuildProbe, with_fix: BuildProbe, key: str) -> list[str]:
    lines = [f"{'bit':>3} {'name':<8} {'spec':<14} {without.build:<14} {with_fix.build:<14} status"]
    try:
        a_bits = {b.bit: b for b in without.register(key).bits}
        b_bits = {b.bit: b for b in with_fix.register(key).bits}
    except KeyError:
        return lines
    for bit in sorted(set(a_bits) | set(b_bits)):
        a, b = a_bits.get(bit), b_bits.get(bit)
        name = (b or a).name if (a or b) else "?"  # type: ignore[union-attr]
        spec = (b or a).spec if (a or b) else ""  # type: ignore[union-attr]
        status = b.status if b else ""
        mark = "  CHANGED" if a and b and (a.label, a.effects_text) != (b.label, b.effects_text) \
            else ""
        lines.append(f"{bit:>3} {name:<8} {spec or '-':<14} {a.label if a else '-':<14} "
                     f"{b.label if b else '-':<14} {status}{mark}")
    return lines


def junit_cases(run: ProbeRun) -> list[TestCase]:
    cases: list[TestCase] = []
    for pair in run.pairs:
        try:
            without, with_fix = run.probe(pair.without, pair.machine), run.probe(pair.with_fix,
                                                                               pair.machine)
        except KeyError:
            continue
        classname = f"{SUITE}.{pair.machine}"
        for reg in with_fix.registers or without.registers:
            changes = [c for c in pair.changes if c.register == reg.key]
            introduced = [c for c in changes if c.change == Change.INTRODUCED]
            where = _where(with_fix, reg.key)
            out = [f"{where}: without fix {pair.without} (reset "
                   f"{_hex(without.reset.get(reg.key))}), with fix {pair.with_fix} (reset "
                   f"{_hex(with_fix.reset.get(reg.key))}); KIND=r, r = value after reset"]
            out += [f"changed: {_change_text(c)}" for c in changes]
            pre = [d for d in pair.preexisting if d.register == reg.key]
            out += [f"spec deviation also without the fix (not a failure): bit {d.bit} {d.name} "
                    f"{d.label}: {d.reason}" for d in pre]
            out += ["--- bits ---", *_register_table(without, with_fix, reg.key)]
            for c in introduced:
                out += [f"--- reproduce bit {c.bit} ({c.name}) with {pair.with_fix}: start the "
                        "paused QEMU, then in its monitor ---", with_fix.command,
                        *(f"(qemu) {line}" for line in with_fix.hmp_lines(reg.key, c.bit)),
                        f"--- the same without the fix ({pair.without}) ---",
                        *(f"(qemu) {line}" for line in without.hmp_lines(reg.key, c.bit))]
            if not introduced:
                out += ["--- the paused QEMU of these experiments ---", with_fix.command]
            seconds = sum(b.seconds for b in with_fix.register(reg.key).bits) \
                if reg.key in {r.key for r in with_fix.registers} else 0.0
            # time: the experiments' own durations, added up (they run in parallel)
            tc = TestCase(f"{pair.name} {reg.title}", classname=classname,
                          elapsed_sec=round(seconds, 3), stdout="\n".join(out))
            errors = [b.error for b in (*without.bits(), *with_fix.bits())
                      if b.register == reg.key and b.error]
            if errors:
                tc.add_error_info(f"{len(errors)} experiment(s) failed", "\n".join(errors))
            elif introduced:
                tc.add_failure_info("; ".join(f"bit {c.bit} {c.name}: {c.without} -> {c.with_fix}"
                                              f" (spec {c.spec})" for c in introduced),
                                    "\n".join(c.reason for c in introduced))
            cases.append(tc)
        vm = run.vmstate_for(pair.without, pair.with_fix, pair.machine)
        if vm is not None:
            cases.append(_vmstate_case(vm, classname))
    return cases + versions.junit_cases(run, SUITE)


def _vmstate_case(vm: VmstateComparison, classname: str) -> TestCase:
    out = [f"-dump-vmstate {vm.without}: sha256 {vm.without_sha256[:16]}, {vm.with_fix}: sha256 "
           f"{vm.with_sha256[:16]}; {vm.sections} sections",
           "identical" if vm.identical else f"{len(vm.differences)} difference(s) in "
                                            f"{', '.join(vm.sections_differing)}",
           *(str(d) for d in vm.differences[:200])]
    out += [f"[[ATTACHMENT|{p}]]" for p in vm.dumps.values()]
    tc = TestCase(f"{vm.without}->{vm.with_fix} vmstate", classname=classname,
                  elapsed_sec=vm.seconds, stdout="\n".join(out))
    if vm.error:
        tc.add_error_info(vm.error)
    elif vm.incompatible:
        tc.add_failure_info(f"{len(vm.incompatible)} vmstate difference(s) break migration",
                            "\n".join(str(d) for d in vm.incompatible[:50]))
    return tc


def junit_suite(run: ProbeRun) -> TestSuite:
    """The `semantics` suite, to add next to `migration` in junit.xml."""
    cases = junit_cases(run)
    for note in run.unpaired:
        tc = TestCase(f"unpaired: {note[:80]}", classname=f"{SUITE}.setup", stdout=note)
        tc.add_skipped_info(note)
        cases.append(tc)
    for error in run.errors:
        tc = TestCase(f"error: {error[:80]}", classname=f"{SUITE}.setup", stdout=error)
        tc.add_error_info(error)
        cases.append(tc)
    seen: dict[tuple[str | None, str], int] = {}
    for tc in cases:  # GitLab keeps one testcase per (classname, name)
        seen[(tc.classname, tc.name)] = seen.get((tc.classname, tc.name), 0) + 1
        if seen[(tc.classname, tc.name)] > 1:
            tc.name = f"{tc.name} #{seen[(tc.classname, tc.name)]}"
    props = {"run_id": run.run_id, "verdict": words(run)}
    props.update({f"note.{i}": note for i, note in enumerate(run.notes, 1)})
    for name, b in sorted(run.builds.items()):
        props[f"build.{name}"] = (f"{b.get('source')} QEMU {b.get('qemu_version')} fix "
                                  f"{b.get('fix')}/{b.get('fix_applied')}")
    return TestSuite(SUITE, cases, properties=props, timestamp=run.started)


def junit_xml(run: ProbeRun) -> str:
    """semantics.xml: the suite alone, valid against junit-10.xsd."""
    return _DISABLED.sub(r"\1", to_xml_report_string([junit_suite(run)], prettyprint=True))


# --------------------------------------------------------------------------------------------
# Text, markdown, HTML


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#06x}"


def _change_text(c: BitChange) -> str:
    text = (f"{c.title or c.register} bit {c.bit} {c.name}: {c.without} -> {c.with_fix}"
            f" [spec {c.spec or 'not modelled'}] {c.change.value}")
    if c.aspect != "behaviour":
        text += f" ({c.aspect}: {c.detail.get('without')} -> {c.detail.get('with_fix')})"
    return text + (f": {c.reason}" if c.reason and c.change == Change.INTRODUCED else "")


def _vm_text(vm: VmstateComparison | None) -> str:
    if vm is None:
        return "vmstate not compared"
    if vm.error:
        return f"vmstate error: {vm.error}"
    if vm.identical:
        return "vmstate identical"
    return (f"vmstate: {len(vm.differences)} difference(s) in {len(vm.sections_differing)} "
            f"section(s), {len(vm.incompatible)} breaking a migration direction")


def pair_lines(run: ProbeRun) -> list[str]:
    """One line per pair and machine type, then its changes indented (text and markdown)."""
    lines = []
    for pair in run.pairs:
        vm = run.vmstate_for(pair.without, pair.with_fix, pair.machine)
        head = f"{pair.machine} {pair.without} -> {pair.with_fix}:"
        if pair.error:
            lines.append(f"{head} ERROR {pair.error}")
            continue
        if not pair.changes:
            lines.append(f"{head} no guest-visible change; {_vm_text(vm)}")
            continue
        lines.append(f"{head} {len(pair.changes)} change(s), {len(pair.introduced)} introduced "
                     f"violation(s); {_vm_text(vm)}")
        lines += [f"  {'VIOLATION ' if c.change == Change.INTRODUCED else ''}{_change_text(c)}"
                  for c in pair.changes]
    return lines


def text_summary(run: ProbeRun) -> str:
    """A few lines for the terminal."""
    lines = [f"semantics {line}" if not line.startswith("  ") else line
             for line in (*pair_lines(run), *versions.lines(run))]
    lines += [f"note: {n}" for n in [*run.unpaired, *run.notes]]
    lines.append(f"semantics: {words(run)}")
    return "\n".join(lines)


def _probed(run: ProbeRun) -> str:
    """What was probed and how, as the run recorded it."""
    what = run.settings.get("description") or "the scenario's registers"
    return f"{what} (through {run.settings.get('access') or 'port I/O'})"


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_section(run: ProbeRun) -> str:
    """The section for summary.md, in its style (Markdown that reads as plain text)."""
    title = "Register semantics"
    lines = ["", title, "-" * len(title), "", f"Verdict: {words(run)}", "",
             f"Each bit of {_probed(run)}, written and read back on a fresh paused QEMU per "
             "bit; KIND=r is the observed behaviour and the value after reset.", ""]
    for line in (*pair_lines(run), *versions.lines(run)):
        lines.append(f"  - {line.strip()}" if line.startswith("  ") else f"- {line}")
    seen: set[tuple[str, str, str]] = set()
    for pair in run.pairs:
        for text in deviations_text(pair.preexisting):
            if (pair.source, pair.machine, text) not in seen:
                seen.add((pair.source, pair.machine, text))
                lines.append(f"- {pair.machine} ({pair.source}), also without the fix (QEMU's, "
                             f"not a failure): {text}")
    lines += [f"- note: {n}" for n in [*run.unpaired, *run.notes]]
    lines += [f"- error: {e}" for e in run.all_errors[:20]]
    lines += ["", "Every bit of every build: probe.md; machine-readable: probe.json, "
              "semantics.xml (JUnit suite `semantics`).", ""]
    return "\n".join(lines)


def markdown(run: ProbeRun, full: bool = False) -> str:
    """summary.md's section; with `full`, all of probe.md (every bit of every build)."""
    if not full:
        return summary_section(run)
    title = f"patchcheck probe {run.run_id}"
    out = [title, "=" * len(title), summary_section(run)]
    if run.pairs and any(p.changes for p in run.pairs):
        out += ["Guest-visible changes", "---------------------", "",
                "| machine | pair | register | bit | name | without | with | spec | verdict |",
                "|---|---|---|---|---|---|---|---|---|"]
        for p in run.pairs:
            for c in p.changes:
                verdict_text = c.change.value + (f": {c.reason}" if c.reason else "")
                if c.aspect != "behaviour":
                    verdict_text += f" ({c.detail.get('without')} -> {c.detail.get('with_fix')})"
                out.append(f"| {p.machine} | {p.name} | {c.title or c.register} | {c.bit} "
                           f"| {c.name} | {c.without} | {c.with_fix} | {c.spec or '-'} | "
                           f"{_md(verdict_text)} |")
        out.append("")
    out += _full_tables(run)
    out += _vmstate_details(run)
    return "\n".join(out).rstrip() + "\n"


def _full_tables(run: ProbeRun) -> list[str]:
    out = ["Observed classification", "-----------------------", ""]
    groups: dict[tuple[str, str], list[BuildProbe]] = {}
    for probe in run.probes:
        groups.setdefault((probe.source, probe.machine), []).append(probe)
    for (source, machine), probes in groups.items():
        names = [p.build for p in probes]
        out += [f"### {source}, {machine}", "",
                "Builds: " + ", ".join(f"{p.build} (QEMU {p.qemu_version}, fix {p.fix}/"
                                       f"{p.fix_applied}, {p.experiments} experiments in "
                                       f"{p.seconds:.1f} s)" for p in probes), ""]
        for reg in next((p.registers for p in probes if p.registers), []):
            first = next((p for p in probes if reg.key in {r.key for r in p.registers}), None)
            if first is None:
                continue
            resets = ", ".join(f"{p.build} {_hex(p.reset.get(reg.key))}" for p in probes)
            out += [f"#### {first.register(reg.key).where}: after reset {resets}", "",
                    "| bit | name | spec | " + " | ".join(names) + " | notes |",
                    "|---|---|---|" + "---|" * len(names) + "---|"]
            for bit in range(reg.size * 8):
                cells: list[str] = []
                armed: set[str] = set()
                effects: dict[str, str] = {}
                spec = ""
                name = "?"
                for p in probes:
                    try:
                        b = p.bit(reg.key, bit)
                    except KeyError:
                        cells.append("-")
                        continue
                    spec, name = b.spec, b.name
                    mark = " ✗" if b.violation else " ?" if b.status == "not-exercised" else ""
                    cells.append(f"{b.label}{mark}")
                    if b.armed:
                        armed.add(b.armed)
                    effects[p.build] = b.effects_text
                notes = [f"armed: {a}" for a in sorted(armed)]
                if len(set(effects.values())) == 1:
                    text = next(iter(effects.values()))
                    notes += [f"side effects: {text}"] if text else []
                else:
                    notes += [f"{k}: {v or 'no side effects'}" for k, v in effects.items()]
                out.append(f"| {bit} | {name} | {spec or '-'} | " + " | ".join(cells) + " | "
                           + _md("; ".join(notes)) + " |")
            out.append("")
    out += ["✗ violates the specification attribute; ? RW1C bit never set (cannot be told "
            "from read-only 0). Side effects: other registers changed by the experiment's "
            "writes, devices unplugged.", ""]
    return out


def _vmstate_details(run: ProbeRun) -> list[str]:
    if not run.vmstate:
        return []
    out = ["vmstate (-dump-vmstate)", "-----------------------", ""]
    for vm in run.vmstate:
        head = f"- {vm.machine} {vm.without} -> {vm.with_fix}: "
        if vm.error:
            out.append(head + f"error: {_md(vm.error)}")
        elif vm.identical:
            out.append(head + f"identical ({vm.sections} sections, sha256 {vm.with_sha256[:16]})")
        else:
            out.append(head + f"{len(vm.differences)} difference(s), {len(vm.incompatible)} "
                              "breaking a direction")
            out += [f"  - `{_md(d)}`" for d in vm.differences[:100]]
    return [*out, ""]


# --------------------------------------------------------------------------------------------
# Files


def write(run: ProbeRun, directory: Path) -> dict[str, Path]:
    """probe.json, semantics.xml (JUnit) and probe.md into `directory` (atomically each)."""
    from patchcheck.result.files import write_whole
    from patchcheck.result.model import write_json

    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "probe.json", "junit": directory / "semantics.xml",
             "markdown": directory / "probe.md"}
    write_json(paths["json"], {**run.to_dict(), "exit_code": exit_code(run), "verdict": words(run)})
    for key, text in (("junit", junit_xml(run)), ("markdown", markdown(run, full=True))):
        write_whole(paths[key], text)
    return paths
