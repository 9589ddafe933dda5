"""Source specs -> resolved QEMU trees in git.

  git:<url-or-path>@<ref>        any commit, tag or branch of a git repository
  debian:<suite>[=<version>]     the distribution's `qemu` source package with its patches

A git source is kept as a bare mirror per repository under the cache. A ref of a repository
on disk means what it means there (HEAD after a branch switch, HEAD~1, @{u}, a branch as it is
now): it is resolved with git in that repository, and the commit it names is then fetched by
its id into the mirror (refs/patchcheck/<id> keeps it there). A remote's refs are resolved in
the mirror after a fetch. A Debian source package is fetched with `apt-get source` inside a
container of that suite (the only step with network=host), and committed into a local git
repository, so that every later step treats both the same way: a (repository, commit) pair.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from patchcheck.errors import InfraError, UsageError
from patchcheck.locks import file_lock
from patchcheck.source import gitcmd
from patchcheck.source.gitcmd import GitError

# a ref, a commit id, or a revision expression git resolves (HEAD~1, main^2, @{u}, main@{1});
# always given to git as one argument after --end-of-options, never to a shell
_SAFE_REF = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9._/+@{}~^-]*$")
_FULL_ID = re.compile(r"[0-9a-f]{40}")
OWN_REFS = "refs/patchcheck/"  # the mirror's refs that keep fetched commits; never pruned
_SAFE_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
_SAFE_SUITE = re.compile(r"^[a-z][a-z0-9-]*$")
IMPORT_DATE = "2000-01-01T00:00:00+0000"


@dataclass(frozen=True)
class GitSpec:
    url: str
    ref: str

    def __str__(self) -> str:
        return f"git:{self.url}@{self.ref}"


@dataclass(frozen=True)
class DebianSpec:
    suite: str
    version: str | None = None

    def __str__(self) -> str:
        return f"debian:{self.suite}" + (f"={self.version}" if self.version else "")


SourceSpec = GitSpec | DebianSpec


@dataclass(frozen=True)
class Tree:
    """A resolved source: a commit in a local git repository."""

    spec: str
    repo: Path
    commit: str
    qemu_version: str
    package_version: str | None = None

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.qemu_version)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().split("."):
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def parse_spec(text: str) -> SourceSpec:
    scheme, sep, rest = text.partition(":")
    if not sep:
        raise UsageError(f"source spec '{text}': expected git:<url>@<ref> or debian:<suite>[=<version>]")
    if scheme == "git":
        url, at, ref = _split_at(rest)
        if not at or not url or not ref:
            raise UsageError(f"source spec '{text}': git sources need <url-or-path>@<ref>")
        if not _SAFE_REF.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/")):
            raise UsageError(f"source spec '{text}': '{ref}' is not a valid git ref or commit")
        if url.startswith("-"):
            raise UsageError(f"source spec '{text}': the repository must not start with '-'")
        return GitSpec(url, ref)
    if scheme == "debian":
        suite, eq, version = rest.partition("=")
        if not _SAFE_SUITE.fullmatch(suite):
            raise UsageError(f"source spec '{text}': '{suite}' is not a Debian suite name")
        if eq and not _SAFE_VERSION.fullmatch(version):
            raise UsageError(f"source spec '{text}': '{version}' is not a Debian version")
        return DebianSpec(suite, version or None)
    raise UsageError(f"source spec '{text}': unknown scheme '{scheme}' (use git: or debian:)")


def _split_at(rest: str) -> tuple[str, str, str]:
    """<url>@<ref> split at the last '@' that does not open a ref's @{...} (git@host:x@@{u})."""
    cut = max((i for i, c in enumerate(rest) if c == "@" and rest[i + 1:i + 2] != "{"),
              default=-1)
    if cut < 0:
        return "", "", rest
    return rest[:cut], "@", rest[cut + 1:]


def local_repository(url: str) -> Path | None:
    """The path of a repository on disk that a git spec names; None for a URL."""
    if "://" in url or url.startswith("git@"):
        return None
    return Path(url).expanduser()


def rev_parse_in(path: Path, ref: str) -> str | None:
    """The full id of the commit `ref` names in the repository at `path` (bare or not, a
    linked worktree too), as git there sees it; None when it names none."""
    out = gitcmd.run(path, "rev-parse", "--verify", "--quiet", "--end-of-options",
                     f"{ref}^{{commit}}", user=True)
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and _FULL_ID.fullmatch(commit) else None


def _slug(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", text.rstrip("/").rsplit("/", 1)[-1]).strip("-")
    return f"{name or 'repo'}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _read_version(repo: Path, commit: str) -> str:
    try:
        return gitcmd.out(repo, "show", f"{commit}:VERSION").strip()
    except GitError:
        raise UsageError(f"commit {commit[:12]} has no VERSION file: is this a QEMU tree?") from None


class GitSources:
    """Bare mirrors under <cache>/git, one per repository URL or path."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "git"

    def mirror(self, url: str) -> Path:
        """The bare mirror of the repository (cloned the first time)."""
        url = self._canonical(url)
        with self._locked(url):
            return self._mirror(url)

    def resolve(self, spec: GitSpec, *, fetch: bool = True) -> Tree:
        """The commit `spec.ref` names, present in the mirror. For a repository on disk, as
        git there resolves it now; for a URL, in the mirror after a fetch (`fetch=False`:
        the mirror as it is). Runs at once on one cache take turns per mirror: its clone,
        fetches and refs are one run's at a time."""
        with self._locked(self._canonical(spec.url)):
            repo = self._mirror(self._canonical(spec.url))
            local = local_repository(spec.url)
            commit = (self._local_commit(repo, local, spec) if local is not None
                      else self._remote_commit(repo, spec, fetch))
        return Tree(str(spec), repo, commit, _read_version(repo, commit))

    @staticmethod
    def _canonical(url: str) -> str:
        """The URL, or a local repository's resolved path (an error if it is not there)."""
        local = local_repository(url)
        if local is None:
            return url
        if not local.exists():
            raise UsageError(f"git repository '{url}' does not exist")
        return str(local.resolve())

    def _locked(self, url: str) -> AbstractContextManager[None]:
        return file_lock(self.root / f"{_slug(url)}.lock")

    def _mirror(self, url: str) -> Path:
        """The mirror of `url` (canonical), cloned into a temporary directory and renamed
        into place the first time; under the mirror's lock."""
        path = self.root / f"{_slug(url)}.git"
        if path.exists():
            _keep_own_refs(path)
            return path
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=self.root))
        try:
            gitcmd.out(tmp, "clone", "--mirror", "-v", "--", url, str(tmp / "m.git"))
            _keep_own_refs(tmp / "m.git")
            (tmp / "m.git").rename(path)
        except GitError as exc:
            raise UsageError(_clone_error(url, exc)) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @staticmethod
    def _local_commit(repo: Path, local: Path, spec: GitSpec) -> str:
        """The user's meaning of the ref, resolved in their repository; its commit is
        fetched into the mirror by its id when the mirror lacks it."""
        commit = rev_parse_in(local, spec.ref)
        if commit is None:  # not (or no longer) there: a full id the mirror still holds
            kept = _rev_parse(repo, spec.ref) if _FULL_ID.fullmatch(spec.ref) else None
            if kept is None:
                raise UsageError(f"ref '{spec.ref}' does not exist in {spec.url}")
            return kept
        if _rev_parse(repo, commit) is None and not _fetch_commit(repo, local, commit):
            _borrow_objects(repo, local)  # git could not fetch it: share the object store
            if _rev_parse(repo, commit) is None:
                raise InfraError(f"commit {commit[:12]} ('{spec.ref}' in {spec.url}) cannot "
                                 "be copied into patchcheck's mirror of the repository")
            gitcmd.out(repo, "update-ref", f"{OWN_REFS}{commit}", commit)
        return commit

    @staticmethod
    def _remote_commit(repo: Path, spec: GitSpec, fetch: bool) -> str:
        """The remote's meaning of the ref: its refs after a fetch into the mirror."""
        commit = _rev_parse(repo, spec.ref)
        if fetch and not (commit and _FULL_ID.fullmatch(spec.ref)):
            gitcmd.ok(repo, "fetch", "--prune", "origin")  # offline: what the mirror has
            commit = _rev_parse(repo, spec.ref)
        if commit is None and re.fullmatch(r"[0-9a-f]{7,40}", spec.ref):
            # a commit on no branch: servers hand those out by id, if at all
            gitcmd.ok(repo, "fetch", "origin", spec.ref)
            commit = _rev_parse(repo, spec.ref)
            if commit:  # keep it reachable in the mirror, so gc never drops it
                gitcmd.out(repo, "update-ref", f"{OWN_REFS}{commit}", commit)
        if commit is None:
            raise UsageError(f"ref '{spec.ref}' does not exist in {spec.url}")
        return commit


def _keep_own_refs(repo: Path) -> None:
    """A mirror's `fetch --prune origin` would delete the refs that keep the commits fetched
    by id (they are not the remote's): a negative refspec leaves them out of the mirroring."""
    negative = f"^{OWN_REFS}*"
    try:
        current = gitcmd.out(repo, "config", "--get-all", "remote.origin.fetch").split()
    except GitError:
        return  # no origin to mirror
    if negative not in current:
        gitcmd.out(repo, "config", "--add", "remote.origin.fetch", negative)


def _fetch_commit(repo: Path, local: Path, commit: str) -> bool:
    """Fetch one commit (and what it needs) by its id from the repository on disk into the
    mirror, under refs/patchcheck/<id>. False when git cannot."""
    common = gitcmd.common_dir(local, user=True)
    source = str(common) if common is not None else str(local.resolve())
    # a failure: another run may have fetched it meanwhile (its ref was locked): look again
    gitcmd.ok(repo, "fetch", "--quiet", "--no-tags", "--update-shallow", "--end-of-options",
              source, f"{commit}:{OWN_REFS}{commit}")
    return _rev_parse(repo, commit) == commit


def _borrow_objects(repo: Path, local: Path) -> None:
    """Let the mirror read the local repository's object store (git alternates)."""
    common = gitcmd.common_dir(local, user=True)
    if common is None:
        return
    objects = common / "objects"
    alternates = repo / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    known = alternates.read_text().split() if alternates.exists() else []
    if str(objects.resolve()) not in known:
        alternates.write_text("\n".join([*known, str(objects.resolve())]) + "\n")


def _rev_parse(repo: Path, ref: str) -> str | None:
    try:
        return gitcmd.out(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                          f"{ref}^{{commit}}")
    except GitError:
        return None


def _clone_error(url: str, exc: GitError) -> str:
    reason = gitcmd.reason(exc)
    if Path(url).is_dir():  # a local directory git cannot clone: no repository there
        return f"cannot clone '{url}': it is not a git repository (git: {reason})"
    return f"cannot clone '{url}': {reason}"


def import_directory(src: Path, dest: Path, message: str, tag: str) -> Path:
    """Commit a plain source directory (every file, .gitignore notwithstanding) into a new
    repository at `dest`, at IMPORT_DATE (gitcmd's identity): the same files give the same
    commit id."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.move(str(src), str(tmp))
    gitcmd.out(tmp, "init", "-q")
    for nested in tmp.rglob(".git"):
        if nested.parent != tmp:  # a vendored tree's own .git would make git skip it
            shutil.rmtree(nested, ignore_errors=True) if nested.is_dir() else nested.unlink()
    gitcmd.out(tmp, "add", "-A", "-f", ".")
    gitcmd.out(tmp, "commit", "-q", "--no-verify", "-m", message,
               env=gitcmd.commit_env(IMPORT_DATE))
    gitcmd.out(tmp, "tag", tag, "HEAD")
    tmp.rename(dest)
    return dest


def dsc_version(dsc: Path) -> str:
    for line in dsc.read_text(errors="replace").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise InfraError(f"{dsc.name} has no Version field")


class DebianSources:
    """`qemu` source packages imported into git under <cache>/debian/<suite>/<version>."""

    def __init__(self, cache_dir: Path, fetcher: Callable[[str, str | None, Path], None]) -> None:
        """fetcher(suite, version, outdir) runs `apt-get source` for the suite into outdir."""
        self.root = cache_dir / "debian"
        self.fetcher = fetcher

    def _imports(self, suite: str) -> list[Path]:
        base = self.root / suite
        if not base.is_dir():
            return []
        found = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.stat().st_mtime)

    @staticmethod
    def _dirname(version: str) -> str:
        return version.replace(":", "%")

    def resolve(self, spec: DebianSpec, *, refresh: bool = False) -> Tree:
        target: Path | None = None
        if spec.version:
            candidate = self.root / spec.suite / self._dirname(spec.version)
            target = candidate if candidate.is_dir() else None
        elif not refresh and self._imports(spec.suite):
            target = self._imports(spec.suite)[-1]
        if target is None:
            target = self._fetch(spec)
        commit = _rev_parse(target, "HEAD")
        if commit is None:
            shutil.rmtree(target, ignore_errors=True)  # a corrupt import: fetch it again
            return self.resolve(spec, refresh=True)
        version = target.name.replace("%", ":")
        return Tree(str(spec), target, commit, _read_version(target, commit), version)

    def _fetch(self, spec: DebianSpec) -> Path:
        (self.root / spec.suite).mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self.root / spec.suite))
        try:
            self.fetcher(spec.suite, spec.version, work)
            dscs = list(work.glob("qemu_*.dsc"))
            trees = [p for p in work.iterdir() if p.is_dir() and p.name.startswith("qemu-")]
            if len(dscs) != 1 or len(trees) != 1:
                raise InfraError(f"apt-get source for {spec} left no single unpacked tree")
            version = dsc_version(dscs[0])
            dest = self.root / spec.suite / self._dirname(version)
            if dest.exists():
                return dest  # another run imported it meanwhile
            import_directory(trees[0], dest, f"Debian {spec.suite} qemu {version}\n\n"
                             f"Imported by patchcheck from `apt-get source qemu={version}`.",
                             tag="debian/" + re.sub(r"[^A-Za-z0-9._-]", "_", version))
            return dest
        finally:
            shutil.rmtree(work, ignore_errors=True)
