"""The register-semantics probe of a matrix run, beside its cases.

It needs only the builds: it runs beside the cases (they leave CPU idle while Linux guests
wait for pciehp), with as many jobs, and writes probe.json beside the results. Its
containers and scratch directory are the run's to end: an interrupted run closes them and
does not wait for it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from patchcheck.build.record import BuildRecord
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Runtime
from patchcheck.errors import PatchcheckError
from patchcheck.jobs import in_background
from patchcheck.probe.model import ProbeRun
from patchcheck.qemu.hosts import Hosts
from patchcheck.report import probe_text

Log = Callable[[str], None]


class BackgroundProbe:
    """The probe of one run, on a thread of its own (`start`); `wait` for its end, or
    `close` its containers and scratch directory (a probe still running stops after its
    current experiments)."""

    def __init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="pcprobe-"))
        self.hosts: Hosts | None = None  # the probe's QEMU containers
        self._result: Callable[[], object] | None = None

    def start(self, settings: Settings, runtime: Runtime, records: Mapping[str, BuildRecord],
              outdir: Path, log: Callable[[str], None], jobs: int) -> None:
        from patchcheck.probe.runner import hosts_for

        self.hosts = hosts_for(runtime, self.scratch, settings.cache_dir,
                               settings.matrix.qemu_memory_mib)
        self._result = in_background("probe", partial(
            matrix_semantics, settings, runtime, records, outdir, log, jobs=jobs,
            scratch=self.scratch, hosts=self.hosts))

    def wait(self) -> None:
        """Wait for the probe's end (it wrote probe.json), or raise what it raised."""
        if self._result is not None:
            self._result()

    def close(self) -> None:
        if self.hosts is not None:
            self.hosts.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def matrix_semantics(settings: Settings, runtime: Runtime, records: Mapping[str, BuildRecord],
                     outdir: Path, log: Log = print, machines: Sequence[str] = (),
                     jobs: int | None = None, scratch: Path | None = None,
                     hosts: Hosts | None = None) -> ProbeRun:
    """For `invoke matrix`: probe the run's builds (already built), write probe.json,
    probe.md and semantics.xml into the run's folder, and return the run; the caller adds
    `junit_suite(run)` to junit.xml and `markdown(run)` / `html_section(run)` to its pages.
    Never raises for probe failures: they are in the result (its exit code is 3)."""
    from patchcheck.probe.orchestrate import run_probe  # loaded only when a run probes

    run_id = outdir.name
    try:
        run = run_probe(settings, runtime, records, machines, log, run_id=run_id, outdir=outdir,
                        jobs=jobs, scratch=scratch, hosts=hosts)
    except PatchcheckError as exc:
        run = ProbeRun(run_id, datetime.now(UTC).isoformat(timespec="seconds"))
        run.errors.append(str(exc))
    probe_text.write(run, outdir)
    return run
