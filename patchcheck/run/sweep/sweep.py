"""A whole sweep between two sides, as named steps on one object: open (the QEMU containers),
inventories, what both have, screen, plan, run (groups in parallel, every answer a cell,
results.json rewritten as they come), close. An interruption or a failure keeps every cell
already answered: the results are marked partial."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from patchcheck import jobs
from patchcheck.config.settings import Settings
from patchcheck.engine.runtime import Mount, Runtime
from patchcheck.guests.image import GuestImage, ensure_image, guests_dir
from patchcheck.guests.linux import MIN_RAM_MIB
from patchcheck.qemu.hosts import Hosts
from patchcheck.qemu.inventory import DeviceType, Inventory
from patchcheck.result.cells import Action, Cell, SweepResults, SweepSide, Unrunnable
from patchcheck.run.progress import CaseProgress
from patchcheck.run.sweep.inventories import Common, common_of, take
from patchcheck.run.sweep.plan import DIRECTIONS, Unit, layouts, units
from patchcheck.run.sweep.resolve import Resolver
from patchcheck.run.sweep.screen import screen
from patchcheck.run.sweep.trial import Migration, Setting
from patchcheck.verdict.sweep_findings import known_bug

SAVE_EVERY = 10.0  # seconds between rewrites of results.json while cells come in


@dataclass
class SweepRequest:
    a: SweepSide
    b: SweepSide
    outdir: Path
    machines: str = ""
    devices: tuple[str, ...] = ()


@dataclass
class SweepRun:
    settings: Settings
    runtime: Runtime
    request: SweepRequest
    log: Callable[[str], None] = print
    results: SweepResults = field(init=False)
    _hosts: Hosts | None = None
    _scratch: Path | None = None
    _saved: float = 0.0
    _begun: float = 0.0
    _guest: GuestImage | None = None

    def __post_init__(self) -> None:
        r = self.request
        self.results = SweepResults(r.a, r.b, started=_now(), partial=True,
                                    settings=_recorded(self.settings))

    def run(self) -> SweepResults:
        """The whole sweep (`prepare`, then `sweep`), its containers removed at the end."""
        try:
            return self.sweep(self.prepare())
        finally:
            self.close()

    def prepare(self) -> Common:
        """The containers, both inventories and what both sides have; bad input (a device or
        machine type the sides do not have) ends here, before any cell exists."""
        self._begun = time.monotonic()
        self.open()
        return self.common(self.inventories())

    def sweep(self, common: Common) -> SweepResults:
        """Screen, plan and run; results.json is written also when this is interrupted."""
        try:
            devices = self.screen(common)
            self.execute(units(common.machines, devices, common.carriers,
                               self.settings.sweep.actions, self.settings.sweep.directions,
                               self.settings.sweep.group_size))
            self.results.unrunnable += unmigratable(self.results)
            self.results.partial = False
        finally:
            self.results.seconds = round(time.monotonic() - self._begun, 1)
            self.results.finished = _now()
            self.save(force=True)
        return self.results

    def open(self) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="patchcheck-sweep-"))
        builds = self.settings.cache_dir / "builds"
        mounts = [Mount(str(self._scratch), str(self._scratch))]
        if builds.is_dir():
            mounts.append(Mount(str(builds), str(builds), read_only=True))
        if Action.LINUX in self.settings.sweep.actions:  # its kernel and initrd, read-only
            self._guest = ensure_image(self.runtime, self.settings, log=self.log)
            root = guests_dir(self.settings)
            mounts.append(Mount(str(root), str(root), read_only=True))
        self._hosts = Hosts(self.runtime, tuple(mounts),
                            memory_mib=self.settings.sweep.qemu_memory_mib)
        self.request.outdir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        if self._hosts is not None:
            self._hosts.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def setting(self, machine: str) -> Setting:
        s = self.settings.sweep
        assert self._hosts is not None and self._scratch is not None
        return Setting(machine, self._hosts, self._scratch, s.ram_mib, s.accel, s.timeout,
                       s.start_timeout)

    def inventories(self) -> dict[str, Inventory]:
        assert self._hosts is not None and self._scratch is not None
        found = {}
        for side in (self.request.a, self.request.b):
            found[side.name] = take(self._hosts, side, self._scratch,
                                                self.settings.sweep.start_timeout)
            self.log(f"{side.name}: QEMU {found[side.name].version}, "
                     f"{len(found[side.name].devices)} PCI device types, "
                     f"{len(found[side.name].machines)} machine types")
        return found

    def common(self, inv: dict[str, Inventory]) -> Common:
        r = self.request
        found = common_of(r.a, r.b, inv, self.settings.sweep, r.machines, r.devices)
        self.results.machines = found.machines
        self.results.unrunnable = list(found.unrunnable)
        self.results.actions = list(self.settings.sweep.actions)
        return found

    def screen(self, common: Common) -> dict[str, list[DeviceType]]:
        """Per placement, the devices its layouts take that start there (`sweep.screen`);
        a layout whose carriers the sides lack is left out, with a note."""
        wanted: dict[str, list[DeviceType]] = {}
        newest: dict[str, str] = {}
        for machine in common.machines:  # in order: the newest of a family comes last
            for layout in layouts(machine, self.settings.sweep.actions):
                missing = layout.missing(common.carriers)
                note = f"{layout.placement} {layout.action}: not swept, both sides lack {missing}"
                if missing and note not in self.results.notes:
                    self.results.notes.append(note)
                    self.log(note)
                if not missing:
                    taken = wanted.setdefault(layout.placement, [])
                    taken += [d for d in common.devices if layout.takes(d) and d not in taken]
                    newest[layout.placement] = machine
        kept, refused = wanted, list[Unrunnable]()
        if self.settings.sweep.screen:
            kept, refused = screen(self.setting, {s.name: s for s in self._sides()}, wanted,
                                   newest, common.carriers, self.workers)
        self.results.unrunnable += refused
        self.results.devices = sorted({d.name for ds in kept.values() for d in ds})
        return kept

    def _sides(self) -> Sequence[SweepSide]:
        return (self.request.a, self.request.b)

    @property
    def workers(self) -> int:
        return self.settings.sweep.jobs or os.cpu_count() or 1

    def execute(self, work: Sequence[Unit]) -> None:
        with CaseProgress(len(work), "sweep groups") as progress:
            for unit, (cells, migrations, figures) in jobs.parallel(work, self._unit,
                                                                    self.workers):
                self.results.cells += cells
                self.results.migrations += migrations
                for name, value in figures.items():
                    self.results.figures[name] = self.results.figures.get(name, 0) + value
                failed = sum(c.outcome == "failed" for c in cells)
                progress.advance(f"{unit.label}: {len(cells)} cells"
                                 + (f", {failed} failed" if failed else ""))
                self.save()

    def _unit(self, unit: Unit) -> Iterable[tuple[list[Cell], int, dict[str, float]]]:
        sides = {"a": self.request.a, "b": self.request.b}
        destinations = {d: sides[DIRECTIONS[d][1]] for d in unit.directions}
        linux = unit.layout.action == Action.LINUX
        setting = self.setting(unit.machine)
        if linux:
            setting = dataclasses.replace(setting, ram_mib=max(setting.ram_mib, MIN_RAM_MIB))
        migration = Migration(setting, sides[unit.source], destinations,
                              slot_action=unit.layout.action == Action.SLOT,
                              guest=self._guest if linux else None)
        resolver = Resolver(migration, share=self.settings.sweep.share_sources)
        begun = time.monotonic()
        answers = resolver.run(unit.members, unit.directions)
        figures = {"qemu_starts": migration.starts, "qemu_start_seconds": migration.start_seconds,
                   "group_seconds": time.monotonic() - begun}
        cells = [Cell(a.member.device, unit.layout.placement, unit.machine, a.destination,
                      unit.layout.action, sides[unit.source].name,
                      destinations[a.destination].name, str(a.outcome),
                      a.lines[0] if a.lines else "", list(a.lines), a.instance, a.migrations,
                      unit.label, "", list(a.member.args), migration.hmp.get(a.member.ident, []))
                 for a in answers]
        for cell in cells:
            cell.known = known_bug(cell)
        yield cells, resolver.migrations, figures

    def save(self, force: bool = False) -> None:
        if force or time.monotonic() - self._saved > SAVE_EVERY:
            self.results.write(self.request.outdir / "results.json")
            self._saved = time.monotonic()


def _recorded(settings: Settings) -> dict[str, object]:
    from dataclasses import asdict
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(settings.sweep).items()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def unmigratable(results: SweepResults) -> list[Unrunnable]:
    """Devices every answered cell of which is unmigratable: the source refuses to migrate
    with them (one entry per device, the source's line)."""
    by_device: dict[str, list[Cell]] = {}
    for cell in results.cells:
        by_device.setdefault(cell.device, []).append(cell)
    return [Unrunnable(name, "unmigratable", cells[0].error)
            for name, cells in sorted(by_device.items())
            if cells and all(c.outcome == "unmigratable" for c in cells)]
