"""One finding by hand: findings/<n>-<device>/reproduce.sh, the two QEMUs of its first failing
cell (the oldest machine type), each in its side's image with no network, as a person runs them
in two terminals, and the guest action and the migration typed in the source's monitor."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from patchcheck.engine.runtime import Mount, run_command
from patchcheck.qemu.machine import FIRMWARE_DIRS, reproducer
from patchcheck.result.cells import Cell, SweepResults, SweepSide
from patchcheck.verdict.sweep import Finding

SOCKET_DIR = "/tmp/pc"
SOCKET = f"unix:{SOCKET_DIR}/migrate.sock"


def side(results: SweepResults, name: str) -> SweepSide:
    """The side of that name (the control's source and destination are both A)."""
    for candidate in (results.a, results.b):
        if candidate.name == name:
            return candidate
    raise KeyError(f"no side named {name!r} in the sweep ({results.a.name}, {results.b.name})")


def qemu_args(cell: Cell) -> list[str]:
    """What both QEMUs of the cell get beyond the display: the machine type and the device."""
    return ["-machine", cell.machine, "-nodefaults", *cell.args]


def qemu_command(where: SweepSide, args: Sequence[str], cli: str = "docker") -> list[str]:
    """One QEMU with its monitor on stdio, in its side's image with network none, the socket
    directory shared; a host binary is mounted, a packaged one (`binary_in_image`) is not."""
    image = where.image or where.image_id
    shared = Mount(SOCKET_DIR, SOCKET_DIR)
    if not where.binary_in_image:
        return reproducer(cli, image, where.binary, args, [shared])
    argv = [where.binary, *(a for d in FIRMWARE_DIRS for a in ("-L", d)), "-display", "none",
            "-monitor", "stdio", *args]
    return run_command(cli, image, argv, mounts=[shared], interactive=True)


def _comment(text: str) -> str:
    """A shell comment of one line, whatever the text holds."""
    return "# " + " ".join(text.splitlines())


def _steps(cell: Cell) -> list[str]:
    """What the person does, printed by `reproduce.sh` without an argument."""
    typed = [f"  (qemu) {c}" for c in cell.hmp] or \
        ["  (nothing to type for the guest: it never runs, the device migrates as created)"]
    return ['Run "./reproduce.sh destination" in one terminal, then "./reproduce.sh source" in',
            f"another; then type in the source's monitor the guest action ({cell.action}) and",
            "the migration:", *typed, f"  (qemu) migrate {SOCKET}",
            "The destination's stderr gives the verdict; `info status` in its monitor too."]


def script(results: SweepResults, finding: Finding, cli: str = "docker") -> str:
    """reproduce.sh: the finding's first failing cell, by hand. `reproduce.sh destination`
    (terminal 1) and `reproduce.sh source` (terminal 2) start the two QEMUs; without an
    argument it says what to type in the source's monitor."""
    cell = finding.first
    src, dst = side(results, cell.source), side(results, cell.destination)
    args = qemu_args(cell)
    group = [_comment(f"In the sweep it migrated in group {cell.group} with other devices; "
                      "here it is alone.")] if cell.group else []
    return "\n".join([
        "#!/bin/sh",
        _comment(f"patchcheck sweep: {finding.title}"),
        _comment(f"machine type {cell.machine}; the destination rejected the stream with:"),
        _comment(f"  {cell.error or finding.error}"),
        _comment(f"it fails on {finding.ranges}"), *group,
        "set -e",
        'case "${1:-}" in',
        "destination)",
        f"    {_comment(f'terminal 1, first: {dst.name} (QEMU {dst.qemu_version})')}",
        f"    mkdir -p {shlex.quote(SOCKET_DIR)}",
        f"    exec {shlex.join(qemu_command(dst, [*args, '-incoming', SOCKET], cli))}",
        "    ;;",
        "source)",
        f"    {_comment(f'terminal 2, then: {src.name} (QEMU {src.qemu_version}), paused')}",
        f"    mkdir -p {shlex.quote(SOCKET_DIR)}",
        f"    exec {shlex.join(qemu_command(src, [*args, '-S'], cli))}",
        "    ;;",
        "*)",
        "    cat <<'END_OF_STEPS'",
        *(" ".join(line.splitlines()) for line in _steps(cell)),
        "END_OF_STEPS",
        "    ;;",
        "esac", ""])
