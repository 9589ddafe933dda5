"""Packaged QEMUs as sweep sides (`debian-pkg:<suite>[=<version>]`): the spec's validation (the
security boundary before a Dockerfile), the generated Dockerfile, the image built once and
reused while its Dockerfile is unchanged, the facts asked once per image id, and apt's
failure as one line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from patchcheck.build.packaged import (
    APT_SAID,
    BINARY,
    FACTS,
    INSTALLING,
    Packaged,
    PackageFacts,
    dockerfile_text,
    image_tag,
    packaged_side,
    qemu_version_of,
)
from patchcheck.engine.images import LABEL_DOCKERFILE, Images
from patchcheck.engine.runtime import LABEL, ContainerSpec
from patchcheck.errors import InfraError, UsageError
from patchcheck.source.packaged import PackagedSpec, is_packaged, parse_packaged

from .. import fakes

BOOKWORM = "1:7.2+dfsg-7+deb12u18+b3"
VERSION_TEXT = (f"QEMU emulator version 7.2.22 (Debian {BOOKWORM})\n"
                "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # an image tag, as the engines take it


@dataclass(frozen=True)
class ImageSettings:
    cache_dir: Path
    containers_dir: Path
    apt_mirror: str = "http://mirror.invalid/debian"


class Runtime(fakes.FakeRuntime):
    """Answers the facts' questions as bookworm's package does; `apt` lines make a build
    print them and fail as the engine reports a failed RUN; `bases` is what debootstrap made."""

    def __init__(self, apt: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.images["debian:bookworm"] = {}
        self.apt = apt
        self.builds: list[tuple[Path, str, str, dict[str, str]]] = []

    def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
        if argv[0] == "dpkg-query":
            return 0, BOOKWORM
        if argv == [BINARY, "--version"]:
            return 0, VERSION_TEXT
        return 127, f"{argv[0]}: not found"

    def build_image(self, context: Path, dockerfile: str, tag: str,
                    labels: Mapping[str, str], log: Callable[[str], None]) -> str:
        self.builds.append((context, dockerfile, tag, dict(labels)))
        if self.apt:
            log("Step 1/2 : FROM debian:bookworm\n ---> 0123456789ab")
            for line in self.apt:
                log(line)
            raise InfraError(f"image {tag}: The command '/bin/sh -ec ...' returned a "
                             "non-zero code: 100")
        return super().build_image(context, dockerfile, tag, labels, log)


class RecordingImages(Images):
    def debootstrap(self, suite: str) -> None:
        self.runtime.import_image(Path("/nonexistent.tar"), "debian", suite, [])


@pytest.fixture
def settings(tmp_path: Path) -> ImageSettings:
    return ImageSettings(tmp_path / "cache", tmp_path / "containers")


def side(runtime: Runtime, settings: ImageSettings, spec: str = "debian-pkg:bookworm",
         name: str = "bookworm"):
    return packaged_side(runtime, RecordingImages(runtime, settings, log=lambda _: None), spec,
                         name, log=lambda _: None)


# --- the spec ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "suite", "version"), [
    ("debian-pkg:bookworm", "bookworm", ""),
    (f"debian-pkg:bookworm={BOOKWORM}", "bookworm", BOOKWORM),
    ("debian-pkg:trixie=1:10.0.13+ds-0+deb13u1", "trixie", "1:10.0.13+ds-0+deb13u1"),
    ("debian-pkg:bookworm-backports=1:8.2.2+ds-0~bpo12+1", "bookworm-backports",
     "1:8.2.2+ds-0~bpo12+1"),
    ("debian-pkg:sid=9", "sid", "9"),
])
def test_a_valid_spec_parses_and_prints_as_given(text, suite, version):
    spec = parse_packaged(text)
    assert spec == PackagedSpec(suite, version)
    assert str(spec) == text
    assert is_packaged(text)


@pytest.mark.parametrize("text", [
    "debian-pkg:bookworm=1.0;rm -rf /",
    "debian-pkg:../x",
    "debian-pkg:",
    "debian-pkg:=7.2",
    "debian-pkg:bookworm=",
    "debian-pkg:Bookworm",
    "debian-pkg:1bookworm",
    "debian-pkg:-bookworm",
    "debian-pkg:bookworm/../../etc",
    "debian-pkg:bookworm =1.0",
    "debian-pkg:bookworm=1.0 x",
    "debian-pkg:bookworm=1.0\nRUN id",
    "debian-pkg:bookworm\n",
    "debian-pkg:bookworm=1.0\n",
    'debian-pkg:bookworm=1.0"]',
    "debian-pkg:bookworm=$(id)",
    "debian-pkg:bookworm=1.0`id`",
    "debian-pkg:bookworm=1.0&&id",
    "debian-pkg:bookworm=1.0|id",
    "debian-pkg:bookworm=1.0'",
    "debian-pkg:bookworm=1.0\\",
    "debian-pkg:bookworm=1.0=2",
    "debian-pkg:bookworm=1.0_2",
    "debian-pkg:bookworm=a1.0",
    "debian-pkg:bookworm=-1.0",
    "debian-pkg:bookworm=" + "1" * 61,
    "debian-pkg:" + "a" * 41,
    "debian:bookworm",
    "git:/x@main",
    "",
])
def test_a_bad_spec_is_one_line_of_usage_error(text):
    with pytest.raises(UsageError) as caught:
        parse_packaged(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("packaged QEMU spec ")


def test_only_the_scheme_makes_a_spec_packaged():
    assert is_packaged("debian-pkg:bookworm") and is_packaged("debian-pkg:")
    assert not is_packaged("debian:bookworm") and not is_packaged("git:/x@debian-pkg:y")


def test_the_tag_name_is_safe_and_one_to_one():
    versions = ["1:7.2+dfsg-7", "1+7.2+dfsg-7", "1~7.2+dfsg-7", "1:7.2~dfsg-7", "17.2+dfsg-7",
                "1:7.2+dfsg+7", "1:7.2~rc1", "1:7.2+rc1", "1:7.2-rc1"]
    names = [PackagedSpec("bookworm", v).tag_name for v in versions]
    assert len(set(names)) == len(names)
    assert all(TAG.fullmatch(n) for n in names)
    assert PackagedSpec("bookworm", BOOKWORM).tag_name == "bookworm-1_c7.2_pdfsg-7_pdeb12u18_pb3"
    longest = parse_packaged("debian-pkg:" + "a" * 40 + "=1" + ":+~" * 14)  # 43: 84 in a tag
    assert TAG.fullmatch(longest.tag_name)
    with pytest.raises(UsageError, match="too long for an image tag"):
        parse_packaged("debian-pkg:" + "a" * 40 + "=1" + ":+~" * 15)
    assert image_tag(PackagedSpec("trixie")) == "patchcheck-qemu-pkg:trixie"


# --- the Dockerfile ------------------------------------------------------------------------

def _run_line(text: str) -> list[str]:
    runs = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert len(runs) == 1, text
    argv = json.loads(runs[0].removeprefix("RUN "))  # exec form: no shell reads the spec
    assert isinstance(argv, list)
    return argv


def test_the_unpinned_dockerfile_installs_the_mirrors_package_and_python3():
    text = dockerfile_text(parse_packaged("debian-pkg:trixie"))
    lines = text.splitlines()
    assert lines[1] == "FROM debian:trixie"
    argv = _run_line(text)
    assert argv[:2] == ["/bin/sh", "-ec"] and argv[3:] == ["sh", "qemu-system-x86", "python3"]
    script = argv[2]
    assert "apt-get update" in script and f"echo '{INSTALLING}'" in script
    assert 'apt-get install -y --no-install-recommends "$@"' in script
    assert script.index("update") < script.index(INSTALLING) < script.index("install -y")


def test_the_pinned_dockerfile_pins_the_package_and_carries_the_version_only_as_an_argument():
    text = dockerfile_text(parse_packaged(f"debian-pkg:bookworm={BOOKWORM}"))
    assert text.splitlines()[1] == "FROM debian:bookworm"
    argv = _run_line(text)
    assert argv[3:] == ["sh", f"qemu-system-x86={BOOKWORM}", "python3"]
    assert BOOKWORM not in argv[2]  # the script is the same constant for every spec
    assert argv[2] == _run_line(dockerfile_text(parse_packaged("debian-pkg:trixie")))[2]


# --- the side ------------------------------------------------------------------------------

def test_a_side_is_built_once_and_says_what_it_holds(settings):
    runtime = Runtime()
    result = side(runtime, settings)
    assert (result.name, result.spec, result.image) == ("bookworm", "debian-pkg:bookworm",
                                                        "patchcheck-qemu-pkg:bookworm")
    assert (result.qemu_version, result.package_version) == ("7.2.22", BOOKWORM)
    assert result.binary_in_image and result.binary == "/usr/bin/qemu-system-x86_64"
    assert result.image_id == runtime.image_id("patchcheck-qemu-pkg:bookworm")
    assert result.configuration == (f"Debian package qemu-system-x86 {BOOKWORM} "
                                    "(QEMU's default device set as Debian configures it)")
    [(context, dockerfile, tag, labels)] = runtime.builds
    assert context == settings.cache_dir / "packaged" / "bookworm" and dockerfile == "Dockerfile"
    assert (context / dockerfile).read_text() == dockerfile_text(PackagedSpec("bookworm"))
    assert labels[LABEL] == "1" and len(labels[LABEL_DOCKERFILE]) == 64
    assert all(s.network == "none" for s in runtime.specs) and len(runtime.specs) == 1
    assert runtime.removed == ["fake-1"]  # the facts' container, removed
    facts = json.loads((context / FACTS).read_text())
    assert facts == {"image_id": result.image_id, "package_version": BOOKWORM,
                     "qemu_version": "7.2.22"}
    assert [p.name for p in context.iterdir() if p.name.endswith(".tmp")] == []


def test_an_unchanged_dockerfile_reuses_the_image_and_its_facts(settings):
    runtime = Runtime()
    first = side(runtime, settings)
    again = side(runtime, settings, name="old")
    assert len(runtime.builds) == 1 and len(runtime.specs) == 1  # no build, no container
    assert again == replace(first, name="old")


def test_a_changed_dockerfile_rebuilds(settings):
    runtime = Runtime()
    side(runtime, settings)
    runtime.images["patchcheck-qemu-pkg:bookworm"][LABEL_DOCKERFILE] = "0" * 64  # an older one
    side(runtime, settings)
    assert len(runtime.builds) == 2


def test_another_image_id_asks_the_image_again(settings):
    runtime = Runtime()
    first = side(runtime, settings)
    path = settings.cache_dir / "packaged" / "bookworm" / FACTS
    PackageFacts("sha256:older", "1:7.2+dfsg-1", "7.2.0").write(path)
    again = side(runtime, settings)
    assert len(runtime.builds) == 1 and len(runtime.specs) == 2
    assert again == first
    path.write_text("{damaged")
    assert side(runtime, settings) == first and len(runtime.specs) == 3


def test_a_pinned_spec_has_an_image_of_its_own(settings):
    runtime = Runtime()
    result = side(runtime, settings, f"debian-pkg:bookworm={BOOKWORM}")
    assert result.image == "patchcheck-qemu-pkg:bookworm-1_c7.2_pdfsg-7_pdeb12u18_pb3"
    [(context, _, _, _)] = runtime.builds
    assert context.name == "bookworm-1_c7.2_pdfsg-7_pdeb12u18_pb3"
    assert f"qemu-system-x86={BOOKWORM}" in (context / "Dockerfile").read_text()


def test_a_missing_base_image_is_made_first(settings):
    runtime = Runtime()
    del runtime.images["debian:bookworm"]
    side(runtime, settings)
    assert [(repo, tag) for _, repo, tag in runtime.imported] == [("debian", "bookworm")]


def test_a_bad_spec_builds_nothing(settings):
    runtime = Runtime()
    with pytest.raises(UsageError):
        side(runtime, settings, "debian-pkg:bookworm=1.0;rm -rf /")
    assert runtime.builds == [] and not (settings.cache_dir / "packaged").exists()


NO_VERSION = ("E: Version '0.0-nonexistent' for 'qemu-system-x86' was not found",)
# how Docker's builder passes apt's stderr on: colored pieces, each rstripped by the runtime
PIECES = ("\x1b[91mE\x1b[0m", "\x1b[91m:\x1b[0m", "\x1b[91mVersion '0.0-nonexistent' for "
          "'qemu-system-x86' was not found\x1b[0m")


def test_a_version_the_mirror_lacks_is_one_line_of_usage_error(settings):
    runtime = Runtime(apt=("Reading package lists...", INSTALLING, "Reading package lists...",
                           "Building dependency tree...", *PIECES,
                           *(APT_SAID + line for line in NO_VERSION)))
    with pytest.raises(UsageError) as caught:
        side(runtime, settings, "debian-pkg:bookworm=0.0-nonexistent")
    assert str(caught.value) == ("debian-pkg:bookworm=0.0-nonexistent: the APT mirror cannot "
                                 f"install it: {NO_VERSION[0]}")
    assert runtime.specs == []  # nothing asked of an image that was not made


def test_apt_lines_in_one_chunk_are_read_line_by_line_and_the_last_error_counts(settings):
    runtime = Runtime(apt=(f"Get:1 x\n{INSTALLING}\n{APT_SAID}{NO_VERSION[0]}\n"
                           f"{APT_SAID}E: the last", ))
    with pytest.raises(UsageError, match="install it: E: the last$"):
        side(runtime, settings, "debian-pkg:bookworm=0.0-nonexistent")


def test_a_mirror_that_cannot_be_reached_is_the_machinerys_failure(settings):
    runtime = Runtime(apt=(f"{APT_SAID}Err:1 http://mirror.invalid/debian bookworm InRelease",
                           f"{APT_SAID}E: Some index files failed to download."))
    with pytest.raises(InfraError) as caught:
        side(runtime, settings)
    assert not isinstance(caught.value, UsageError)
    assert str(caught.value) == ("debian-pkg:bookworm: apt-get failed in debian:bookworm: "
                                 "E: Some index files failed to download.")
    runtime = Runtime(apt=(INSTALLING, f"{APT_SAID}E: Failed to fetch http://x.invalid/y.deb"))
    with pytest.raises(InfraError, match="Failed to fetch"):
        side(runtime, settings)


def test_a_build_that_fails_without_apt_keeps_the_engines_words(settings):
    runtime = Runtime(apt=("no space left on device",))
    with pytest.raises(InfraError, match="^image patchcheck-qemu-pkg:bookworm: The command"):
        side(runtime, settings)


def test_the_qemu_version_is_read_from_its_banner():
    assert qemu_version_of(VERSION_TEXT) == "7.2.22"
    assert qemu_version_of("QEMU emulator version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)") \
        == "10.0.13"
    with pytest.raises(InfraError, match="said no version: oops$"):
        qemu_version_of("oops\nmore")


def test_a_failing_question_is_an_infra_error(settings):
    class Broken(Runtime):
        def respond(self, spec: ContainerSpec, argv: list[str]) -> tuple[int, str]:
            return (1, "dpkg-query: no packages found matching qemu-system-x86\n") \
                if argv[0] == "dpkg-query" else super().respond(spec, argv)

    runtime = Broken()
    with pytest.raises(InfraError, match="^dpkg-query exited 1 .*: dpkg-query: no packages"):
        Packaged(runtime, Images(runtime, settings)).side("debian-pkg:bookworm", "b")
    assert runtime.removed == ["fake-1"]  # removed all the same


def test_apts_own_error_lines_count_where_an_engine_passes_them_on_as_lines(settings):
    runtime = Runtime(apt=(INSTALLING, *NO_VERSION))
    with pytest.raises(UsageError, match="was not found$"):
        side(runtime, settings, "debian-pkg:bookworm=0.0-nonexistent")
