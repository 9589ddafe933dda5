"""The Linux guest's image: Debian bookworm's distribution kernel (`linux-image-amd64`, built
with `CONFIG_HOTPLUG_PCI_PCIE=y`) and a tiny initramfs: the static busybox from
`busybox-static` and `init.sh` next to this file. It is made in two containers of the
bookworm builder image: one with `network=host` that only runs `apt-get update` and
`apt-get download` (the mirror is the image's own APT configuration), one with
`network=none` that unpacks, checks the kernel configuration and writes the cpio archive.
The result is cached in `<cache_dir>/guests/<key>/{vmlinuz,vmlinux,initrd.img,guest.json}`
(vmlinux: the ELF inside the bzImage, booted through its PVH entry: no xz decompression),
where the key hashes everything that goes in except the package versions (recorded in
guest.json); the directory appears by an atomic rename, so a reader sees all of it or
nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from patchcheck.engine.images import ImageSettings
from patchcheck.engine.runtime import ContainerSpec, Mount, Runtime, invoking_user
from patchcheck.errors import InfraError, PatchcheckError
from patchcheck.locks import file_lock

SUITE = "bookworm"  # the builder generation whose APT sources provide the packages
KERNEL_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
RECIPE_VERSION = "1"  # bump when the way the image is made changes

GUESTS_DIR = "guests"
KERNEL_FILE = "vmlinuz"  # the distribution's bzImage
PVH_KERNEL_FILE = "vmlinux"  # the ELF inside it, booted through its PVH entry (no decompression)
INITRD_FILE = "initrd.img"
META_FILE = "guest.json"
INIT_SCRIPT = Path(__file__).with_name("init.sh")

# Runs as root with network=host: the only step that talks to the mirror.
FETCH_SCRIPT = r"""
set -eu
kernel_meta=$1 busybox=$2
apt-get update -q
kernel=$(apt-cache depends "$kernel_meta" \
         | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
if [ -z "$kernel" ]; then echo "E: $kernel_meta depends on no linux-image package" >&2; exit 1; fi
apt-get download -q -o APT::Sandbox::User=root "$kernel" "$busybox"
"""

# Runs as root with network=none in /work: debs/ in, image/ out (owned by $1 at the end).
ASSEMBLE_SCRIPT = r"""
set -eu
owner=$1
mkdir -p x/kernel x/busybox root/bin root/dev root/proc root/sys image
kdeb=$(ls debs/linux-image-*.deb) bdeb=$(ls debs/busybox-static_*.deb)
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C x/kernel --wildcards './boot/vmlinuz-*' './boot/config-*'
config=$(ls x/kernel/boot/config-*)
for option in CONFIG_HOTPLUG_PCI_PCIE CONFIG_PCIEPORTBUS CONFIG_SERIAL_8250_CONSOLE \
              CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP CONFIG_DEVTMPFS; do
    grep -qx "$option=y" "$config" || { echo "E: $kdeb: $option is not built in" >&2; exit 1; }
done
cp x/kernel/boot/vmlinuz-* image/vmlinuz
# The uncompressed ELF inside the bzImage, booted through its PVH entry point: it saves
# the xz decompression, seconds under TCG. Kept only if it is an ELF with a PVH note.
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' image/vmlinuz | head -n 1 | cut -d: -f1)
if [ -n "$offset" ] && grep -qx CONFIG_PVH=y "$config"; then
    tail -c +$((offset + 1)) image/vmlinuz | xz -dcq > image/vmlinux 2>/dev/null || true
    if ! readelf -n image/vmlinux 2>/dev/null | grep -q 'Xen.*0x00000012'; then
        rm -f image/vmlinux  # not an ELF, or no XEN_ELFNOTE_PHYS32_ENTRY
    fi
fi
dpkg-deb -x "$bdeb" x/busybox
cp x/busybox/bin/busybox root/bin/busybox
cp init root/init
chmod 0755 root/init root/bin/busybox
(cd root && find . | sort | ../x/busybox/bin/busybox cpio -o -H newc) | gzip -9n > image/initrd.img
{
    echo "kernel_package=$(dpkg-deb -f "$kdeb" Package)"
    echo "kernel_version=$(dpkg-deb -f "$kdeb" Version)"
    echo "busybox_version=$(dpkg-deb -f "$bdeb" Version)"
} > image/versions
chown -R "$owner" image
"""


class GuestError(PatchcheckError):
    """The guest image could not be made, or the guest did not boot, settle or survive."""


@dataclass(frozen=True)
class GuestImage:
    """A built guest: kernel, initramfs and what went into them."""

    directory: Path
    key: str
    kernel_package: str
    kernel_version: str
    busybox_version: str
    seconds: float = 0.0
    cached: bool = False

    @property
    def kernel(self) -> Path:
        return self.directory / KERNEL_FILE

    @property
    def boot_kernel(self) -> Path:
        """What `-kernel` gets: the PVH ELF when the image has one, else the bzImage."""
        pvh = self.directory / PVH_KERNEL_FILE
        return pvh if pvh.is_file() else self.kernel

    @property
    def initrd(self) -> Path:
        return self.directory / INITRD_FILE

    @property
    def root(self) -> Path:
        """`<cache_dir>/guests`: mount it read-only at the same path in QEMU containers."""
        return self.directory.parent

    def mount(self) -> Mount:
        return Mount(str(self.root), str(self.root), read_only=True)

    def describe(self) -> str:
        return (f"Linux guest {self.key}: {self.kernel_package} {self.kernel_version}, "
                f"busybox {self.busybox_version}")


def guests_dir(settings: ImageSettings) -> Path:
    return settings.cache_dir / GUESTS_DIR


def image_key(init_text: str) -> str:
    """Everything that goes into the image except the package versions apt resolves."""
    blob = json.dumps([RECIPE_VERSION, SUITE, KERNEL_PACKAGE, BUSYBOX_PACKAGE, FETCH_SCRIPT,
                       ASSEMBLE_SCRIPT, init_text])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_image(directory: Path) -> GuestImage | None:
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not ((directory / KERNEL_FILE).is_file() and (directory / INITRD_FILE).is_file()):
        return None
    try:
        return GuestImage(directory, str(meta["key"]), str(meta["kernel_package"]),
                          str(meta["kernel_version"]), str(meta["busybox_version"]),
                          float(meta.get("seconds", 0.0)), cached=True)
    except (KeyError, TypeError, ValueError):
        return None


def parse_versions(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def ensure_image(runtime: Runtime, settings: ImageSettings, *, image_id: str | None = None,
                 refresh: bool = False, log: Callable[[str], None] = print) -> GuestImage:
    """The guest image, built on first use (or with `refresh`, to pick up newer packages).

    `image_id`: the bookworm builder image; default: `Images.builder("bookworm")`."""
    init_text = INIT_SCRIPT.read_text()
    key = image_key(init_text)
    root = guests_dir(settings)
    directory = root / key
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f"{key}.lock"):
        found = load_image(directory)
        if found is not None and not refresh:
            return found
        if image_id is None:
            from patchcheck.engine.images import Images

            image_id = Images(runtime, settings, log).builder(SUITE)
        return _build(runtime, image_id, directory, key, init_text, log)


def _build(runtime: Runtime, image_id: str, directory: Path, key: str, init_text: str,
           log: Callable[[str], None]) -> GuestImage:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory.parent))
    try:
        (work / "debs").mkdir()
        (work / "init").write_text(init_text)
        log(f"guest image {key}: downloading {KERNEL_PACKAGE} and {BUSYBOX_PACKAGE} ({SUITE})")
        _run(runtime, image_id, "guest-fetch", "host", Mount(str(work / "debs"), "/work"),
             ["sh", "-c", FETCH_SCRIPT, "fetch", KERNEL_PACKAGE, BUSYBOX_PACKAGE], log)
        log(f"guest image {key}: assembling kernel and initramfs (network none)")
        _run(runtime, image_id, "guest-assemble", "none", Mount(str(work), "/work"),
             ["sh", "-c", ASSEMBLE_SCRIPT, "assemble", invoking_user()], log)
        out = work / "image"
        versions = parse_versions((out / "versions").read_text())
        (out / "versions").unlink()
        meta = {
            "key": key, "suite": SUITE, **versions,
            "kernel_size": (out / KERNEL_FILE).stat().st_size,
            "initrd_size": (out / INITRD_FILE).stat().st_size,
            "boot": "pvh" if (out / PVH_KERNEL_FILE).is_file() else "bzImage",
            "seconds": round(time.monotonic() - started, 1),
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if directory.exists():  # refresh: move the old one away first (rename, then delete)
            old = work / "old"
            directory.rename(old)
        out.rename(directory)  # atomic: readers see the whole image or none
    except (OSError, KeyError) as exc:
        raise GuestError(f"guest image {key}: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    image = load_image(directory)
    if image is None:
        raise GuestError(f"guest image {key}: incomplete after building")
    log(f"guest image {key}: {image.describe()} in {image.seconds:g} s")
    return replace(image, cached=False)


def _run(runtime: Runtime, image_id: str, role: str, network: str, mount: Mount, argv: list[str],
         log: Callable[[str], None]) -> None:
    container = runtime.start(ContainerSpec(image=image_id, role=role, network=network,
                                            mounts=(mount,), workdir="/work"))
    try:
        code, text = container.run(argv, workdir="/work")
    finally:
        container.remove()
    if code != 0:
        errors = [ln for ln in text.splitlines() if ln.startswith("E:")]
        detail = (errors or text.strip().splitlines() or ["no output"])[-1]
        for line in text.splitlines()[-20:]:
            log(f"  {line}")
        raise InfraError(f"guest image ({role}, exit {code}): {detail.removeprefix('E: ')}")
