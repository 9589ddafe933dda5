"""The sweep bench's arithmetic and table: cells per second, migrations per cell, the share
of the groups' time spent starting QEMUs, and the ratio to the yardstick build."""

from __future__ import annotations

from patchcheck.bench.sweep import figures, table
from patchcheck.result.cells import Cell, SweepResults, SweepSide


def _results(cells: int, migrations: int) -> SweepResults:
    side = SweepSide("a", "debian-pkg:a", "7.2.22", "package", "sha256:1", "/usr/bin/qemu")
    made = [Cell("e1000", "pci.0", "pc-i440fx-7.2", "forward", "created", "a", "b",
                 "failed" if n == 0 else "passed") for n in range(cells)]
    return SweepResults(side, side, cells=made, machines=["pc-i440fx-7.2"], devices=["e1000"],
                        migrations=migrations,
                        figures={"qemu_starts": 30.0, "qemu_start_seconds": 6.0,
                                 "group_seconds": 24.0})


def test_figures_per_cell_and_per_second_and_the_ratio_to_the_build() -> None:
    got = figures(_results(200, 50), wall=40.0, cpu=600.0,
                  build={"wall_s": 230.0, "cpu_s": 400.0})
    sweep = got["sweep"]
    assert sweep["cells_per_s"] == 5.0 and sweep["migrations_per_cell"] == 0.25
    assert sweep["qemu_start_share"] == 0.25 and sweep["qemu_starts"] == 30
    assert sweep["findings_cells"] == 1
    assert got["ratio_cpu"] == 1.5 and got["goal"] == 2.0
    text = table(got)
    assert "| sweep CPU / build CPU | 1.5 (goal <= 2.0) |" in text
    assert "| share of the groups' time starting QEMUs | 25 % |" in text


def test_without_the_yardstick_there_is_no_ratio() -> None:
    got = figures(_results(10, 10), wall=0.0, cpu=5.0, build=None)
    assert got["ratio_cpu"] is None and got["sweep"]["cells_per_s"] == 0.0
    assert "None (goal <= 2.0)" in table(got)
