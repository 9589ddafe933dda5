"""Container images: base images (`debian:<suite>`) and the builder image per generation.

Builder images are built from containers/builder-<generation>.Dockerfile, labelled with
the hash of that file and rebuilt only when it changes. Where no registry can be
reached, a missing base image is made with debootstrap from the host's APT mirror.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from patchcheck.engine.runtime import LABEL, Runtime
from patchcheck.errors import InfraError, UsageError

LABEL_DOCKERFILE = "org.patchcheck.dockerfile-sha256"
BUILDER_REPO = "patchcheck-builder"


def builder_tag(generation: str) -> str:
    """The builder image's name for a generation: `patchcheck-builder:<generation>`."""
    return f"{BUILDER_REPO}:{generation}"


def generations(containers_dir: Path) -> list[str]:
    return sorted(p.name[len("builder-"):-len(".Dockerfile")]
                  for p in containers_dir.glob("builder-*.Dockerfile"))


@dataclass(frozen=True)
class ImageRule:
    """Sources up to max_version (None: any) build in the builder image of this generation."""
    generation: str
    max_version: tuple[int, ...] | None = None


class ImageSettings(Protocol):
    """What the images take from the configuration (patchcheck.config.settings.Settings)."""
    @property
    def cache_dir(self) -> Path: ...
    @property
    def containers_dir(self) -> Path: ...
    @property
    def apt_mirror(self) -> str: ...


def generation_for(version: tuple[int, ...], rules: tuple[ImageRule, ...]) -> str:
    for rule in rules:
        if rule.max_version is None or version[: len(rule.max_version)] <= rule.max_version:
            return rule.generation
    raise UsageError(f"no images.rules entry matches QEMU {'.'.join(map(str, version))}")


def dockerfile(containers_dir: Path, generation: str) -> Path:
    path = containers_dir / f"builder-{generation}.Dockerfile"
    if not path.is_file():
        known = ", ".join(generations(containers_dir)) or "none"
        raise UsageError(f"unknown Debian suite or generation '{generation}' (known: {known})")
    return path


def dockerfile_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_image_of(path: Path) -> str:
    for line in path.read_text().splitlines():
        match = re.match(r"\s*FROM\s+(\S+)", line, re.I)
        if match:
            return match.group(1)
    raise InfraError(f"{path.name} has no FROM line")


def host_apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str | None:
    """The first Debian archive URI in the host's APT configuration (not the security one)."""
    uris: list[str] = []
    for sources in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in sources.read_text(errors="replace").split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            enabled = fields.get("Enabled", "yes").strip().lower() != "no"
            if enabled and "deb" in fields.get("Types", "").split():
                uris += fields.get("URIs", "").split()
    for listfile in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]:
        if listfile.is_file():
            for line in listfile.read_text(errors="replace").splitlines():
                match = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
                if match:
                    uris.append(match.group(1))
    for uri in uris:
        if "security" not in uri:
            return uri
    return None


class Images:
    def __init__(self, runtime: Runtime, settings: ImageSettings,
                 log: Callable[[str], None] = print) -> None:
        self.runtime = runtime
        self.settings = settings
        self.log = log
        self._meson: dict[str, tuple[int, ...]] = {}

    def builder(self, generation: str) -> str:
        """Ensure the builder image for `generation`; return its image id."""
        path = dockerfile(self.settings.containers_dir, generation)
        digest = dockerfile_hash(path)
        tag = builder_tag(generation)
        labels = self.runtime.image_labels(tag)
        if labels is not None and labels.get(LABEL_DOCKERFILE) == digest:
            return str(self.runtime.image_id(tag))
        self.base(base_image_of(path))
        self.log(f"building image {tag} from {path.name}")
        return self.runtime.build_image(path.parent, path.name, tag,
                                        {LABEL: "1", LABEL_DOCKERFILE: digest}, self.log)

    def meson_version(self, image_id: str) -> tuple[int, ...]:
        """The builder image's own meson (`meson --version`), asked once per image id."""
        if image_id not in self._meson:
            from patchcheck.engine.runtime import ContainerSpec, invoking_user

            container = self.runtime.start(ContainerSpec(image=image_id, role="probe",
                                                         network="none", user=invoking_user()))
            try:
                code, text = container.run(["meson", "--version"])
            finally:
                container.remove()
            self._meson[image_id] = tuple(int(p) for p in re.findall(r"\d+", text)[:3]) \
                if code == 0 else ()
        return self._meson[image_id]

    def base(self, ref: str) -> None:
        """Make sure `ref` (debian:<suite>) exists: pull it, or debootstrap it offline."""
        if self.runtime.image_id(ref) is not None:
            return
        repo, _, suite = ref.partition(":")
        if self.runtime.pull_image(repo, suite or "latest"):
            return
        if repo != "debian" or not suite:
            raise InfraError(f"base image {ref} missing and cannot be made with debootstrap")
        self.debootstrap(suite)

    def debootstrap(self, suite: str) -> None:
        mirror = self.settings.apt_mirror or host_apt_mirror()
        if not mirror:
            raise UsageError("no APT mirror: set patchcheck.apt_mirror or configure APT on the host")
        if shutil.which("debootstrap") is None:
            raise InfraError("debootstrap is not installed (apt-get install debootstrap)")
        self.log(f"creating base image debian:{suite} with debootstrap from the host's mirror")
        with tempfile.TemporaryDirectory(prefix="patchcheck-base-") as tmp:
            root = Path(tmp) / "root"
            run = subprocess.run(
                ["debootstrap", "--variant=minbase", suite, str(root), mirror],
                capture_output=True, text=True, check=False,
            )
            if run.returncode != 0:
                tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["failed"]
                raise InfraError(f"debootstrap {suite}: {tail[0]}")
            tarball = Path(tmp) / "root.tar"
            subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "."], check=True)
            self.runtime.import_image(tarball, "debian", suite, [f"LABEL {LABEL}=1"])
