"""What a person replays by hand: the source's config-space writes as they were made, and
the two-terminal command lines of a case (reproduce.sh)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchcheck.build.record import BuildRecord
from patchcheck.engine.runtime import Mount
from patchcheck.qemu.machine import Machine, reproducer


class RecordingMonitor:
    """Passes monitor commands through and keeps the config-space writes (each data-port
    write with the address write before it), for the reproducer."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.writes: list[str] = []
        self._address = ""

    def hmp(self, command: str) -> str:
        words = command.split()
        if len(words) == 4 and words[0] == "o":
            if int(words[2], 0) == 0xCF8:
                self._address = command
            elif self._address:
                self.writes += [self._address, command]
        return self.machine.hmp(command)

    def qmp(self, command: str, **args: object) -> Any:
        return self.machine.qmp(command, **args)


def portable(extra: list[str], rundir: Path) -> list[str]:
    """A guest's per-role QEMU arguments with the case's private directory as /tmp/pc."""
    return [a.replace(str(rundir), "/tmp/pc") for a in extra]


def reproduce_command(src: BuildRecord, dst: BuildRecord, args: list[str],
                      guest_writes: list[str], src_extra: Sequence[str] = (),
                      dst_extra: Sequence[str] = (),
                      action: str = "# in the source monitor: the guest action, then the "
                                    "migration", cli: str = "docker") -> str:
    """Commands a person can paste to replay the case by hand: two terminals, two monitors."""
    kernel = [a for a in (*src_extra, *dst_extra) if a.startswith("/") and "/guests/" in a]
    guests = [Mount(g, g, read_only=True) for g in sorted({str(Path(k).parent.parent)
                                                           for k in kernel})]

    def qemu(record: BuildRecord, extra: list[str]) -> str:
        return shlex.join(reproducer(cli, record.image, record.binary, [*args, *extra],
                                     [Mount("/tmp/pc", "/tmp/pc"), *guests]))
    lines = ["mkdir -p /tmp/pc",
             "# terminal 1, the destination:",
             qemu(dst, [*dst_extra, "-incoming", "unix:/tmp/pc/migrate.sock"]),
             "# terminal 2, the source (paused):",
             qemu(src, [*src_extra, "-S"]),
             action,
             *(f"#   (qemu) {w}" for w in guest_writes),
             "#   (qemu) migrate unix:/tmp/pc/migrate.sock",
             "# verdict from the destination: its stderr, then `info migrate` and `info status`"]
    return "\n".join(lines)
