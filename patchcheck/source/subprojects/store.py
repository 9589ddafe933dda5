"""The subproject store: each (name, revision) fetched once, verified, kept under the cache.

    <cache>/subprojects/<name>/repo.git        bare repository the fetches go into
    <cache>/subprojects/<name>/<revision>/     the content at that revision, and pin.json

Where a revision comes from, first match wins: the store; a vendored copy in an imported
source tree (a Debian source package carries `subprojects/<dir>/` beside the `.wrap` that
pins it); a fetch with git on this host. git runs as the user's own git would (their
configuration, `url.<base>.insteadOf` mirrors, proxies, credential helpers; nothing is
written to any git configuration), and the commit fetched must be the one pinned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from patchcheck.errors import BuildFailed, UsageError
from patchcheck.locks import file_lock
from patchcheck.paths import inside
from patchcheck.source import gitcmd
from patchcheck.source.subprojects.pins import WRAP_FILE, WRAP_GIT, Pin, parse_wrap

PIN_RECORD = "pin.json"
CONTENT = "tree"


class SubprojectUnavailable(BuildFailed):
    """A pinned revision that can be had neither from the store, a vendored copy, nor its URL."""

    def __init__(self, pin: Pin, reason: str) -> None:
        how = ("a mirror through git's URL rewriting (git config url.<mirror>.insteadOf "
               f"{_url_base(pin.url)})" if pin.kind != WRAP_FILE else
               "the archive at that URL")
        super().__init__(
            f"subproject {pin.name} {pin.short} (pinned by {pin.path}) cannot be had from "
            f"{pin.url}: {reason}; provide it through {how}, or import a source tree that "
            f"vendors it (e.g. a Debian source package with subprojects/{pin.name}/)")
        self.pin = pin


def _url_base(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/" if "/" in url else url


class SubprojectStore:
    def __init__(self, cache_dir: Path, vendor_roots: Iterable[Path] = (),
                 log: Callable[[str], None] = print) -> None:
        """vendor_roots: directories whose `*/*/subprojects/*.wrap` are imported trees that
        may vendor a subproject (the cache's Debian imports)."""
        self.root = cache_dir / "subprojects"
        self.vendor_roots = list(vendor_roots)
        self.log = log
        self.fetched: list[str] = []  # what this store fetched over git or URL (for tests, bench)

    def entry(self, pin: Pin) -> Path:
        return inside(self.root, pin.name, pin.revision)  # names from the tree: stay in the cache

    def get(self, pin: Pin) -> tuple[Path, dict[str, str]]:
        """The content directory of the pinned revision and how it was obtained."""
        entry = self.entry(pin)
        (self.root / pin.name).mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / pin.name / ".lock"):
            record = _load(entry)
            if record is not None:
                return entry / CONTENT, record
            work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root / pin.name))
            try:
                record = self._obtain(pin, work / CONTENT)
                (work / PIN_RECORD).write_text(json.dumps(record, indent=2))
                shutil.rmtree(entry, ignore_errors=True)
                work.rename(entry)
            finally:
                shutil.rmtree(work, ignore_errors=True)  # nothing half-written stays
        return entry / CONTENT, record

    def _obtain(self, pin: Pin, dest: Path) -> dict[str, str]:
        record = {"name": pin.name, "kind": pin.kind, "url": pin.url, "revision": pin.revision}
        vendored = self.vendored(pin)
        if vendored is not None:
            shutil.copytree(vendored, dest, symlinks=True)
            self.log(f"[subprojects] {pin.describe()}: vendored copy in {vendored}")
            return {**record, "from": f"vendored: {vendored}"}
        self.log(f"[subprojects] {pin.describe()}: fetching {pin.url}")
        if pin.kind == WRAP_FILE:
            _download(pin, dest)
        else:
            record["commit"] = self._fetch_git(pin, dest)
        self.fetched.append(pin.describe())
        return {**record, "from": f"fetched: {pin.url}"}

    def vendored(self, pin: Pin) -> Path | None:
        """A copy an imported tree carries beside a wrap that pins the same revision."""
        if pin.kind == "submodule" and not pin.pinned_commit:
            return None
        for root in self.vendor_roots:
            for wrap in sorted(root.glob(f"*/*/subprojects/{pin.name}.wrap")):
                try:
                    theirs = parse_wrap(wrap.name, wrap.read_text(errors="replace"))
                except Exception:  # noqa: BLE001 - someone else's tree: not a source then
                    continue
                try:  # their wrap's `directory`: inside their tree only
                    directory = inside(wrap.parent.parent, theirs.path)
                except UsageError:
                    continue
                same = (theirs.kind, theirs.revision) == (
                    WRAP_GIT if pin.kind != WRAP_FILE else WRAP_FILE, pin.revision)
                if same and directory.is_dir() and any(directory.iterdir()):
                    return directory
        return None

    def _fetch_git(self, pin: Pin, dest: Path) -> str:
        bare = self.root / pin.name / "repo.git"
        if not bare.is_dir():
            bare.mkdir(parents=True)
            gitcmd.out(bare, "init", "-q", "--bare")
        try:
            gitcmd.out(bare, "fetch", "--depth", "1", "--no-tags", "--", pin.url, pin.revision,
                       timeout=900)
        except gitcmd.GitError as by_id:
            try:  # a server that refuses a fetch by id: its branches and tags, then look
                gitcmd.out(bare, "fetch", "--no-tags", "--", pin.url,
                           "+refs/heads/*:refs/pc/heads/*", "+refs/tags/*:refs/pc/tags/*",
                           timeout=1800)
            except gitcmd.GitError:
                raise SubprojectUnavailable(pin, gitcmd.reason(by_id)) from None
        wanted = pin.revision if pin.pinned_commit else "FETCH_HEAD"
        try:
            commit = gitcmd.out(bare, "rev-parse", "--verify", "--quiet", f"{wanted}^{{commit}}")
        except gitcmd.GitError:
            raise SubprojectUnavailable(pin, "the repository has no such commit") from None
        if pin.pinned_commit and commit != pin.revision:
            raise SubprojectUnavailable(pin, f"got {commit[:12]} instead of the pinned commit")
        gitcmd.out(bare, "update-ref", f"refs/pins/{commit}", commit)  # kept: gc never drops it
        _export(bare, commit, dest)
        return commit


def _export(repo: Path, commit: str, dest: Path) -> None:
    """The files of `commit` (no .git) into dest, through a private index."""
    dest.mkdir(parents=True)
    index = dest.parent / "index"
    env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(dest)}
    gitcmd.out(repo, "read-tree", commit, env=env)
    gitcmd.out(repo, "checkout-index", "-a", env=env)
    index.unlink(missing_ok=True)


def _download(pin: Pin, dest: Path) -> None:
    """A wrap-file's archive: downloaded (proxies from the environment), sha256 checked,
    unpacked; its one top directory becomes the content."""
    archive = dest.parent / pin.source_filename.replace("/", "_")
    try:
        with urllib.request.urlopen(pin.url, timeout=300) as response, open(archive, "wb") as f:  # noqa: S310 - the tree's own pinned URL
            shutil.copyfileobj(response, f)
    except (OSError, ValueError) as exc:
        raise SubprojectUnavailable(pin, str(getattr(exc, "reason", exc))) from None
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != pin.revision:
        raise SubprojectUnavailable(pin, f"the archive's sha256 is {digest[:12]}, not the pinned one")
    unpacked = dest.parent / "unpacked"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(unpacked)
        else:
            with tarfile.open(archive) as t:
                t.extractall(unpacked, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise SubprojectUnavailable(pin, f"the archive does not unpack: {exc}") from None
    tops = list(unpacked.iterdir())
    os.rename(tops[0] if len(tops) == 1 and tops[0].is_dir() else unpacked, dest)


def _load(entry: Path) -> dict[str, str] | None:
    try:
        record = json.loads((entry / PIN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and (entry / CONTENT).is_dir() else None
