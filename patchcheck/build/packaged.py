"""A distribution's packaged QEMU as a side of the compatibility sweep, without a compile.

`debian-pkg:<suite>[=<version>]` (patchcheck.source.packaged) becomes the image
`patchcheck-qemu-pkg:<suite>[-<version, tag-safe>]`: `debian:<suite>` (debootstrapped from the
host's mirror when missing, engine/images.py) with Debian's `qemu-system-x86` and `python3`
(the launcher's, engine/launcher.py) installed from the mirror, `--no-install-recommends`.
Its Dockerfile is generated into cache_dir/packaged/<tag-safe name>/ and its hash is a label
of the image (LABEL_DOCKERFILE, as for the builder images): a changed Dockerfile rebuilds.
The spec's strings reach the Dockerfile only as arguments of an exec-form RUN (a constant
script given to `sh -c`, the packages as its "$@"), never as shell text.

What the image holds is asked once, in a network-less container: the package's version
(`dpkg-query`) and QEMU's (`qemu-system-x86_64 --version`). They are kept in facts.json beside
the Dockerfile, with the image id they were read from, and asked again only when it changes.

A spec without a version takes whatever version the mirror has when its image is first built
and then keeps that image (and that version) while the Dockerfile is unchanged: the package
version is always recorded in the side (`SweepSide.package_version`), and pinning
`=<version>` or removing the image takes another.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from patchcheck.engine.images import LABEL_DOCKERFILE, Images, dockerfile_hash
from patchcheck.engine.runtime import LABEL, Container, ContainerSpec, Runtime, invoking_user
from patchcheck.errors import InfraError, UsageError
from patchcheck.locks import file_lock
from patchcheck.result.cells import SweepSide
from patchcheck.result.model import write_json
from patchcheck.source.packaged import PackagedSpec, parse_packaged

REPOSITORY = "patchcheck-qemu-pkg"
PACKAGE = "qemu-system-x86"
BINARY = "/usr/bin/qemu-system-x86_64"
INSTALLING = "patchcheck: installing"  # the script's line between `update` and `install`
APT_SAID = "patchcheck: apt: "  # the script's prefix of a failed apt-get's stderr lines
# The image's one RUN: constant text; the packages to install come as its arguments ("$@").
# A failed apt-get's stderr is printed again whole, a line at a time with APT_SAID before it:
# the engine passes a command's stderr on in colored pieces that are not lines (E, ": ", ...).
SCRIPT = ("export DEBIAN_FRONTEND=noninteractive LC_ALL=C; "
          "step() { if \"$@\" 2>/tmp/apt.err; then cat /tmp/apt.err >&2; "
          f"else e=$?; sed 's/^/{APT_SAID}/' /tmp/apt.err; exit $e; fi; }}; "
          f"step apt-get update; echo '{INSTALLING}'; "
          "step apt-get install -y --no-install-recommends \"$@\"; "
          "apt-get clean; rm -rf /var/lib/apt/lists/* /tmp/apt.err")
FACTS = "facts.json"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def image_tag(spec: PackagedSpec) -> str:
    """`patchcheck-qemu-pkg:bookworm`, `patchcheck-qemu-pkg:bookworm-1_c7.2_pdfsg-7...`."""
    return f"{REPOSITORY}:{spec.tag_name}"


def dockerfile_text(spec: PackagedSpec) -> str:
    """The image's Dockerfile: the suite's base image and one exec-form RUN."""
    package = f"{PACKAGE}={spec.version}" if spec.version else PACKAGE
    run = ["/bin/sh", "-ec", SCRIPT, "sh", package, "python3"]
    return (f"# {spec}: Debian's {PACKAGE} from the host's APT mirror (patchcheck.build.packaged)\n"
            f"FROM debian:{spec.suite}\n"
            f"RUN {json.dumps(run)}\n")


@dataclass(frozen=True)
class PackageFacts:
    """What an image holds, read from the image of that id."""

    image_id: str
    package_version: str  # "1:7.2+dfsg-7+deb12u18+b3"
    qemu_version: str  # "7.2.22"

    @classmethod
    def read(cls, path: Path) -> PackageFacts | None:
        """The facts recorded at `path`; None when there are none (or they are damaged)."""
        try:
            data = json.loads(path.read_text())
            return cls(str(data["image_id"]), str(data["package_version"]),
                       str(data["qemu_version"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        """Written whole or not at all (a temporary file renamed)."""
        write_json(path, asdict(self))


def qemu_version_of(text: str) -> str:
    """'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)' -> '7.2.22'."""
    match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", text)
    if match is None:
        raise InfraError(f"qemu-system-x86_64 --version said no version: {_first(text)}")
    return match.group(1)


def _first(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "nothing"


class AptLog:
    """The build's log, passed on, with what apt said: whether the install began, and its
    last error line ("E: ...")."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.installing = False
        self.error = ""

    def __call__(self, text: str) -> None:
        self.log(text)
        for line in _ANSI.sub("", text).splitlines():
            line = line.strip().removeprefix(APT_SAID)
            if line == INSTALLING:
                self.installing, self.error = True, ""
            elif line.startswith("E: "):
                self.error = line

    def failure(self, spec: PackagedSpec, error: InfraError) -> Exception:
        """The error a failed build is: the user's when the mirror could not install what
        the spec names, the machinery's when apt could not reach the mirror."""
        if not self.error:
            return error
        if self.installing and "fetch" not in self.error.lower():
            return UsageError(f"{spec}: the APT mirror cannot install it: {self.error}")
        return InfraError(f"{spec}: apt-get failed in debian:{spec.suite}: {self.error}")


class Packaged:
    """Packaged QEMUs' images and their facts, under cache_dir/packaged/."""

    def __init__(self, runtime: Runtime, images: Images,
                 log: Callable[[str], None] = print) -> None:
        self.runtime = runtime
        self.images = images
        self.log = log
        self.root = images.settings.cache_dir / "packaged"

    def side(self, text: str, name: str) -> SweepSide:
        """The sweep side `text` (`debian-pkg:<suite>[=<version>]`) names, its image built
        if it is missing or its Dockerfile changed."""
        spec = parse_packaged(text)
        with file_lock(self.root / f"{spec.tag_name}.lock"):
            image_id = self.image(spec)
            facts = self.facts(spec, image_id)
        return SweepSide(
            name=name, spec=str(spec), qemu_version=facts.qemu_version,
            configuration=(f"Debian package {PACKAGE} {facts.package_version} "
                           "(QEMU's default device set as Debian configures it)"),
            image_id=image_id, binary=BINARY, image=image_tag(spec), binary_in_image=True,
            package_version=facts.package_version)

    def directory(self, spec: PackagedSpec) -> Path:
        return self.root / spec.tag_name

    def image(self, spec: PackagedSpec) -> str:
        """The image's id: the existing one when its Dockerfile is this one, else built."""
        directory = self.directory(spec)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "Dockerfile"
        path.write_text(dockerfile_text(spec))
        digest = dockerfile_hash(path)
        tag = image_tag(spec)
        labels = self.runtime.image_labels(tag)
        if labels is not None and labels.get(LABEL_DOCKERFILE) == digest:
            image_id = self.runtime.image_id(tag)
            if image_id is not None:
                return image_id
        self.images.base(f"debian:{spec.suite}")
        self.log(f"building image {tag}: Debian's {PACKAGE} from the host's APT mirror")
        apt = AptLog(self.log)
        try:
            return self.runtime.build_image(directory, path.name, tag,
                                            {LABEL: "1", LABEL_DOCKERFILE: digest}, apt)
        except InfraError as exc:
            raise apt.failure(spec, exc) from None

    def facts(self, spec: PackagedSpec, image_id: str) -> PackageFacts:
        """The image's package and QEMU versions: recorded, or asked in a container."""
        path = self.directory(spec) / FACTS
        known = PackageFacts.read(path)
        if known is not None and known.image_id == image_id:
            return known
        container = self.runtime.start(ContainerSpec(image=image_id, role="probe",
                                                     network="none", user=invoking_user()))
        try:
            facts = PackageFacts(image_id, self._package_version(spec, container),
                                 qemu_version_of(_ask(container, [BINARY, "--version"])))
        finally:
            container.remove()
        facts.write(path)
        return facts

    def _package_version(self, spec: PackagedSpec, container: Container) -> str:
        version = _ask(container, ["dpkg-query", "-W", "-f", "${Version}", PACKAGE]).strip()
        if not version:
            raise InfraError(f"{spec}: dpkg-query names no version of {PACKAGE}")
        return version


def _ask(container: Container, argv: list[str]) -> str:
    code, text = container.run(argv)
    if code != 0:
        raise InfraError(f"{argv[0]} exited {code} in a packaged QEMU's image: {_first(text)}")
    return text


def packaged_side(runtime: Runtime, images: Images, spec: str, name: str,
                  log: Callable[[str], None] = print) -> SweepSide:
    """The sweep side a `debian-pkg:<suite>[=<version>]` spec names (see the module's
    docstring: an unpinned spec keeps the version its image was first built with)."""
    return Packaged(runtime, images, log).side(spec, name)
