"""`--accel auto|kvm|tcg`: which accelerator the QEMUs of a run use, and why.

A `/dev/kvm` that exists does not mean KVM runs a guest: on the development machines
(nested virtualisation) SeaBIOS runs under `-accel kvm` and says "Running on KVM", but the
Linux kernel never prints a byte. So `auto` uses KVM only after the probe booted the
project's Linux guest under KVM up to its readiness marker; otherwise TCG. `kvm` runs the
same probe and fails the run (infrastructure error) when KVM does not work. `/dev/kvm` is
passed into containers only when KVM is used (`AccelChoice.devices`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from patchcheck.engine.runtime import ContainerSpec, Mount, Runtime, is_root, sandbox_user
from patchcheck.errors import InfraError, UsageError
from patchcheck.guests.image import GuestImage
from patchcheck.guests.linux import KERNEL_APPEND, PANIC, console_path, parse_ready, read_console, tail
from patchcheck.qemu.machine import Machine, MachineError

ACCELS = ("auto", "kvm", "tcg")
KVM_DEVICE = "/dev/kvm"
FIRST_OUTPUT_TIMEOUT = 5.0  # a working KVM prints the first kernel line within ~0.1 s
READY_TIMEOUT = 30.0  # ... and reaches the readiness marker within ~2 s
# The probe's kernel command line: the boot log from the first instruction (earlyprintk),
# not `quiet`, so that "nothing at all" is seen early.
PROBE_APPEND = " ".join(["earlyprintk=ttyS0", *(w for w in KERNEL_APPEND.split() if w != "quiet")])


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


@dataclass(frozen=True)
class AccelChoice:
    accel: str  # what `-accel` gets: "kvm" or "tcg"
    requested: str  # "auto", "kvm" or "tcg"
    reason: str

    @property
    def devices(self) -> tuple[str, ...]:
        """Devices for the QEMU containers (patchcheck.run.migrate.Hosts(devices=...))."""
        return (KVM_DEVICE,) if self.accel == "kvm" else ()

    def describe(self) -> str:
        return f"accelerator: {self.accel} ({self.reason})"


def validate(requested: str) -> str:
    if requested not in ACCELS:
        raise UsageError(f"unknown accelerator '{requested}' (known: {', '.join(ACCELS)})")
    return requested


def choose(requested: str, *, kvm_exists: bool, probe: Callable[[], ProbeResult]) -> AccelChoice:
    """The decision, given whether /dev/kvm exists and a probe that boots a guest under KVM
    (called only when KVM is a candidate)."""
    validate(requested)
    if requested == "tcg":
        return AccelChoice("tcg", requested, "requested")
    if not kvm_exists:
        if requested == "kvm":
            raise InfraError(f"--accel kvm: {KVM_DEVICE} does not exist on this machine")
        return AccelChoice("tcg", requested, f"auto: no {KVM_DEVICE}")
    result = probe()
    if result.ok:
        return AccelChoice("kvm", requested, f"{requested}: KVM ran a guest: {result.detail}")
    if requested == "kvm":
        raise InfraError(f"--accel kvm: {KVM_DEVICE} exists but KVM does not run a guest here: "
                         f"{result.detail}")
    return AccelChoice("tcg", requested,
                       f"auto: {KVM_DEVICE} exists but KVM did not run a guest: {result.detail}")


def watch_boot(console: Callable[[], str], alive: Callable[[], bool], *,
               first_output: float = FIRST_OUTPUT_TIMEOUT, ready: float = READY_TIMEOUT,
               poll: float = 0.05, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> ProbeResult:
    """Watch a booting guest's console: some output within `first_output` seconds, then the
    readiness marker within `ready` seconds (both from the start)."""
    started = clock()
    while True:
        text = console()
        elapsed = clock() - started
        if parse_ready(text) is not None:
            return ProbeResult(True, f"the Linux guest was ready after {elapsed:.1f} s")
        if PANIC in text:
            return ProbeResult(False, f"the Linux guest panicked: {tail(text, 2)}")
        if not alive():
            return ProbeResult(False, f"QEMU exited during the boot: {tail(text, 2) or 'no output'}")
        if not text.strip() and elapsed > first_output:
            return ProbeResult(False, f"the Linux guest printed nothing within {first_output:g} s")
        if elapsed > ready:
            return ProbeResult(False, f"the Linux guest was not ready within {ready:g} s "
                               f"(console: {tail(text, 2)})")
        sleep(poll)


def closed_to(device: str, user: str) -> str:
    """Why the QEMU containers' `user` (uid:gid; nobody when patchcheck runs as root) cannot
    open `device`; "" when it can, or when patchcheck does not run as root (the containers
    then run as the invoking user, as ever). The container joins the device's group unless
    that is group 0 (engine.runtime.device_groups)."""
    if os.getuid() != 0 or is_root(user) or not os.path.exists(device):
        return ""
    mode = os.stat(device)
    uid = int(user.partition(":")[0])
    if (mode.st_mode & 0o006 == 0o006 or (mode.st_uid == uid and mode.st_mode & 0o600 == 0o600)
            or (mode.st_gid != 0 and mode.st_mode & 0o060 == 0o060)):
        return ""
    return (f"{device} (mode {mode.st_mode & 0o777:04o}, uid {mode.st_uid}, gid {mode.st_gid}) "
            f"cannot be opened by the QEMU containers' user {user}: give it a group of its own "
            "with read and write for that group (e.g. kvm, mode 0660)")


def probe_kvm(runtime: Runtime, image_id: str, binary: str, guest: GuestImage, scratch: Path, *,
              first_output: float = FIRST_OUTPUT_TIMEOUT, ready: float = READY_TIMEOUT,
              accel: str = "kvm") -> ProbeResult:
    """Boot the Linux guest under `-accel kvm` in a container of `image_id` that gets
    /dev/kvm, with the QEMU `binary`; `scratch` is a private directory (0700) for the
    QMP socket and the console. (`accel="tcg"` runs the same probe without KVM: tests.)"""
    user = sandbox_user()
    closed = closed_to(KVM_DEVICE, user) if accel == "kvm" else ""
    if closed:
        return ProbeResult(False, closed)
    rundir = Path(tempfile.mkdtemp(prefix="kvm-probe-", dir=scratch))
    bindir = str(Path(binary).parent)
    container = runtime.start(ContainerSpec(
        image=image_id, role="kvm-probe", network="none",
        devices=(KVM_DEVICE,) if accel == "kvm" else (),
        user=user, spawns=True, hardened=True,
        mounts=(Mount(str(rundir), str(rundir)), Mount(bindir, bindir, read_only=True),
                guest.mount())))
    console = console_path(rundir, "kvm-probe")
    args = ["-nodefaults", "-machine", "q35", "-accel", accel, "-m", "128M",
            "-kernel", str(guest.boot_kernel), "-initrd", str(guest.initrd),
            "-append", PROBE_APPEND, "-serial", f"file:{console}"]
    qemu = Machine(container, binary, args, rundir, "kvm-probe", timeout=10)
    try:
        try:
            qemu.launch()
            kvm = qemu.cmd("query-kvm")
        except MachineError as exc:
            return ProbeResult(False, f"QEMU did not start with -accel {accel}: {exc}")
        if accel == "kvm" and not (kvm or {}).get("enabled"):
            return ProbeResult(False, f"QEMU reports KVM not enabled ({kvm})")
        return watch_boot(lambda: read_console(console), qemu.running,
                          first_output=first_output, ready=ready)
    finally:
        qemu.shutdown()
        container.remove()
        shutil.rmtree(rundir, ignore_errors=True)


def resolve(requested: str, runtime: Runtime, image_id: str, binary: str,
            guest: Callable[[], GuestImage], scratch: Path,
            log: Callable[[str], None] = print, kvm_device: str = KVM_DEVICE) -> AccelChoice:
    """`--accel` for a run: decide, log which accelerator is used and why, return it.

    `guest` is called (to build or load the Linux guest image) only when a probe runs;
    `image_id`/`binary`: any builder image and QEMU build of the run."""
    def probe() -> ProbeResult:
        log(f"probing KVM: booting the Linux guest under -accel kvm ({kvm_device})")
        return probe_kvm(runtime, image_id, binary, guest(), scratch)

    choice = choose(requested, kvm_exists=os.path.exists(kvm_device), probe=probe)
    log(choice.describe())
    return choice
