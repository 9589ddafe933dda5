"""The probe across QEMU versions: does a newer QEMU show an old machine type's guest the
registers the older QEMU showed it?

That is what compat properties promise: a newer QEMU started with an old machine type keeps
that type's guest-visible behaviour, so that a guest migrates between the two. For a
scenario whose RegisterSet has `across_versions`, the builds of the oldest QEMU version are
the reference; each build of a newer version is compared with it (classify.compare, bit by
bit) on the newest machine type the reference knows. A newer build *with* the fix that
changes anything there breaks the promise (a failure, like a violation the fix
introduces); one without the fix is reported: it shows the bug in registers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from junit_xml import TestCase

from patchcheck.build.record import BuildRecord
from patchcheck.probe.model import ProbeRun, breaks
from patchcheck.qemu.machine_types import order


def version_of(text: str) -> tuple[int, ...]:
    """'10.0.13' -> (10, 0, 13); QEMU's own version strings start like that."""
    match = re.match(r"\d+(\.\d+)*", text.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def pairs(records: Mapping[str, BuildRecord]) -> list[tuple[str, str, str]]:
    """(reference build, newer build, machine type) to compare."""
    versions = {name: version_of(r.qemu_version) for name, r in records.items()}
    known = [v for v in versions.values() if v]
    if len(set(known)) < 2:
        return []
    oldest = min(known)
    refs = sorted((n for n, v in versions.items() if v == oldest),
                  key=lambda n: (records[n].has_fix, records[n].fix_state != "none", n))
    ref = records[refs[0]]
    out = []
    for name, record in records.items():
        if versions[name] and versions[name] > oldest:
            common = order(set(ref.machines) & set(record.machines))
            if common:
                out.append((ref.name, name, common[-1]))
    return out


def lines(run: ProbeRun) -> list[str]:
    """One line per comparison, its changes indented (terminal, summary.md)."""
    out = []
    for v in run.versions:
        fixed = bool(run.builds.get(v.with_fix, {}).get("has_fix"))
        head = (f"{v.machine} {v.without} -> {v.with_fix} (across versions, "
                f"{'with' if fixed else 'without'} the fix):")
        if v.error:
            out.append(f"{head} ERROR {v.error}")
        elif not v.changes:
            out.append(f"{head} the old machine type's registers unchanged")
        else:
            out.append(f"{head} {len(v.changes)} change(s)"
                       + (": the fix does not keep the old machine type" if fixed else ""))
            out += [f"  {c.title or c.register} bit {c.bit} {c.name}: {c.without} -> "
                    f"{c.with_fix}" for c in v.changes]
    return out


def junit_cases(run: ProbeRun, suite: str) -> list[TestCase]:
    """One test case per comparison: a failure when a build with the fix changed anything."""
    cases = []
    broken = {id(v) for v in breaks(run)}
    for v in run.versions:
        tc = TestCase(f"{v.without}->{v.with_fix} across versions", classname=f"{suite}.{v.machine}",
                      stdout="\n".join(f"{c.title or c.register} bit {c.bit} {c.name}: "
                                       f"{c.without} -> {c.with_fix}" for c in v.changes)
                      or "no guest-visible change")
        if v.error:
            tc.add_error_info("the comparison could not be made", v.error)
        elif id(v) in broken:
            tc.add_failure_info(f"{v.with_fix} (with the fix) changes {len(v.changes)} bit(s) "
                                f"of {v.machine} from {v.without}")
        cases.append(tc)
    return cases
