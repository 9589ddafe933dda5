"""What a QEMU commit pins of other repositories: git submodules (QEMU up to 8.0) and meson
wraps (`subprojects/*.wrap`, QEMU 8.1 on), read from the commit itself.

A submodule is a gitlink (a tree entry of mode 160000 holding the pinned commit) plus its
`.gitmodules` entry (path -> URL). A wrap is an INI file: `[wrap-git]` (url, revision,
optional patch_directory under subprojects/packagefiles/, optional directory) or
`[wrap-file]` (source_url, source_filename, source_hash, optional directory).
"""

from __future__ import annotations

import configparser
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from patchcheck.errors import UsageError
from patchcheck.paths import is_safe
from patchcheck.source import gitcmd

SUBMODULE, WRAP_GIT, WRAP_FILE = "submodule", "wrap-git", "wrap-file"
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class Pin:
    """One pinned subproject of a tree."""

    name: str  # e.g. berkeley-testfloat-3 (a submodule's last path component, a wrap's stem)
    path: str  # where its content goes in the tree, e.g. tests/fp/berkeley-testfloat-3
    kind: str  # SUBMODULE, WRAP_GIT or WRAP_FILE
    url: str  # git URL, or a wrap-file's source_url
    revision: str  # the pinned commit (or ref); a wrap-file's source_hash (sha256)
    patch_directory: str = ""  # wrap-git/wrap-file: overlay from subprojects/packagefiles/<dir>
    source_filename: str = ""  # wrap-file only

    @property
    def pinned_commit(self) -> bool:
        """The revision is a full commit id (verifiable), not a branch or tag name."""
        return self.kind != WRAP_FILE and bool(_FULL_SHA.fullmatch(self.revision))

    @property
    def short(self) -> str:
        return self.revision[:12] if self.kind != WRAP_FILE else f"sha256:{self.revision[:12]}"

    def describe(self) -> str:
        return f"{self.name} {self.short}"


def read_pins(repo: Path, commit: str, origin_url: str = "") -> list[Pin]:
    """Every submodule and wrap the commit pins. `origin_url` resolves relative submodule
    URLs (`../keycodemapdb.git`), as git does against the superproject's remote."""
    pins = [*_submodules(repo, commit, origin_url), *_wraps(repo, commit)]
    for pin in pins:  # both become a directory of the store: <name>/<revision>
        if not (is_safe(pin.name) and is_safe(pin.revision)):
            raise UsageError(f"{commit[:12]}: {pin.path} pins '{pin.name}' at '{pin.revision}': "
                             "not a plain name and commit id or tag")
    return pins


def _submodules(repo: Path, commit: str, origin_url: str) -> list[Pin]:
    links = {}
    for line in gitcmd.out(repo, "ls-tree", "-r", "-z", commit).split("\0"):
        meta, _, path = line.partition("\t")
        if meta.startswith("160000 commit "):
            links[path] = meta.split()[2]
    if not links:
        return []
    urls = parse_gitmodules(_blob(repo, commit, ".gitmodules") or "")
    pins = []
    for path, sha in sorted(links.items()):
        if path not in urls:
            raise UsageError(f"{commit[:12]}: gitlink {path} has no entry in .gitmodules")
        pins.append(Pin(posixpath.basename(path), path, SUBMODULE,
                        _resolve_url(urls[path], origin_url), sha))
    return pins


def parse_gitmodules(text: str) -> dict[str, str]:
    """path -> url of a .gitmodules file (git-config syntax: [submodule "name"] sections)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UsageError(f".gitmodules is not readable: {_first_line(exc)}") from None
    out = {}
    for section in parser.sections():
        path = parser.get(section, "path", fallback="").strip()
        url = parser.get(section, "url", fallback="").strip()
        if section.startswith("submodule") and path and url:
            out[path] = url
    return out


def _resolve_url(url: str, origin_url: str) -> str:
    if not url.startswith(("./", "../")) or not origin_url:
        return url
    base = origin_url.rstrip("/")
    for part in url.split("/"):
        if part == "..":
            base = base.rsplit("/", 1)[0]
        elif part not in (".", ""):
            base = f"{base}/{part}"
    return base


def _wraps(repo: Path, commit: str) -> list[Pin]:
    listing = gitcmd.out(repo, "ls-tree", "--name-only", commit, "subprojects/")
    pins = []
    for path in sorted(listing.splitlines()):
        if path.endswith(".wrap"):
            pins.append(parse_wrap(path, _blob(repo, commit, path) or ""))
    return pins


def parse_wrap(path: str, text: str) -> Pin:
    """One `subprojects/<name>.wrap`; a wrap that says nothing usable is a usage error."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UsageError(f"{path}: not a meson wrap file: {_first_line(exc)}") from None
    stem = posixpath.basename(path).removesuffix(".wrap")
    if parser.has_section(WRAP_GIT):
        sec = parser[WRAP_GIT]
        url, revision = sec.get("url", "").strip(), sec.get("revision", "").strip()
        if not url or not revision:
            raise UsageError(f"{path}: [wrap-git] needs url and revision")
        directory = sec.get("directory", stem).strip() or stem
        return Pin(stem, f"subprojects/{directory}", WRAP_GIT, url, revision,
                   sec.get("patch_directory", "").strip())
    if parser.has_section(WRAP_FILE):
        sec = parser[WRAP_FILE]
        url, digest = sec.get("source_url", "").strip(), sec.get("source_hash", "").strip().lower()
        filename = sec.get("source_filename", "").strip()
        if not url or not re.fullmatch(r"[0-9a-f]{64}", digest) or not filename:
            raise UsageError(f"{path}: [wrap-file] needs source_url, source_filename and a "
                             "sha256 source_hash")
        directory = sec.get("directory", stem).strip() or stem
        return Pin(stem, f"subprojects/{directory}", WRAP_FILE, url, digest,
                   sec.get("patch_directory", "").strip(), filename)
    raise UsageError(f"{path}: no [wrap-git] or [wrap-file] section")


def _blob(repo: Path, commit: str, path: str) -> str | None:
    try:
        return gitcmd.out(repo, "show", f"{commit}:{path}")
    except gitcmd.GitError:
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
