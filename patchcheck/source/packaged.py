"""A distribution's packaged QEMU as a sweep side: `debian-pkg:<suite>[=<version>]`.

The spec names Debian's `qemu-system-x86` package of a suite, installed from the machine's
APT mirror, optionally pinned to one package version. Nothing is compiled. The suite and the
version end up in an image tag, a cache directory's name and the argument list of an
`apt-get install` in a Dockerfile: the validation here is the security boundary, so only
Debian's own syntax passes (a suite `^[a-z][a-z0-9-]*$`, a version that starts with a digit
and continues with `[A-Za-z0-9.+~:-]`), and everything else is a one-line UsageError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from patchcheck.errors import UsageError

SCHEME = "debian-pkg"
PREFIX = f"{SCHEME}:"
_SUITE = re.compile(r"[a-z][a-z0-9-]*")
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")
MAX_SUITE = 40  # an image tag is at most 128 characters: suite, '-' and the encoded version
MAX_VERSION = 60
MAX_TAG = 128  # the engines' limit on an image tag
# The characters of a Debian version an image tag cannot hold, each as '_' and a letter
# ('_' is not in a Debian version, so the encoding is one to one and can be read back).
_TAG_CODES = {":": "_c", "+": "_p", "~": "_t"}


@dataclass(frozen=True)
class PackagedSpec:
    """`debian-pkg:<suite>[=<version>]`: the suite and the package version ("" = the
    mirror's, as it is when the image is first built)."""

    suite: str
    version: str = ""

    def __str__(self) -> str:
        return PREFIX + self.suite + (f"={self.version}" if self.version else "")

    @property
    def tag_name(self) -> str:
        """The suite, and the version made safe for an image tag and a directory name:
        `bookworm`, `bookworm-1_c7.2_pdfsg-7_pdeb12u18_pb3` (':' '+' '~' as '_c' '_p' '_t')."""
        if not self.version:
            return self.suite
        return f"{self.suite}-" + "".join(_TAG_CODES.get(c, c) for c in self.version)


def is_packaged(spec: str) -> bool:
    """Whether `spec` names a packaged QEMU (`debian-pkg:...`), valid or not."""
    return spec.startswith(PREFIX)


def parse_packaged(spec: str) -> PackagedSpec:
    """`debian-pkg:<suite>[=<version>]` -> PackagedSpec; anything else is a UsageError."""
    if not is_packaged(spec):
        raise UsageError(f"packaged QEMU spec {spec!r}: expected {PREFIX}<suite>[=<version>]")
    suite, eq, version = spec[len(PREFIX):].partition("=")
    if not _SUITE.fullmatch(suite) or len(suite) > MAX_SUITE:
        raise UsageError(f"packaged QEMU spec {spec!r}: {suite!r} is not a Debian suite name "
                         f"(lower-case letters, digits and '-', at most {MAX_SUITE})")
    if eq and (not _VERSION.fullmatch(version) or len(version) > MAX_VERSION):
        raise UsageError(f"packaged QEMU spec {spec!r}: {version!r} is not a Debian package "
                         f"version (a digit, then letters, digits and .+~:-, at most "
                         f"{MAX_VERSION})")
    parsed = PackagedSpec(suite, version)
    if len(parsed.tag_name) > MAX_TAG:
        raise UsageError(f"packaged QEMU spec {spec!r}: too long for an image tag "
                         f"({parsed.tag_name!r} is over {MAX_TAG} characters)")
    return parsed
