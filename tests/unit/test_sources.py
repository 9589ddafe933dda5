"""Source specs, git mirrors and Debian source-package imports (with a fake fetcher)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from patchcheck.errors import InfraError, UsageError
from patchcheck.source import specs as sources
from patchcheck.source.specs import DebianSources, DebianSpec, GitSources, GitSpec, Tree

pytestmark = pytest.mark.usefixtures("isolated_env")

Git = Callable[..., str]


# --- parse_spec -----------------------------------------------------------------------

@pytest.mark.parametrize("text, spec", [
    ("git:https://gitlab.com/qemu-project/qemu.git@v7.2.0",
     GitSpec("https://gitlab.com/qemu-project/qemu.git", "v7.2.0")),
    ("git:/srv/qemu@master", GitSpec("/srv/qemu", "master")),
    ("git:git@github.com:qemu/qemu.git@stable-8.0",
     GitSpec("git@github.com:qemu/qemu.git", "stable-8.0")),
    ("git:../qemu@origin/stable-7.2", GitSpec("../qemu", "origin/stable-7.2")),
    ("git:/srv/qemu@0123456789abcdef0123456789abcdef01234567",
     GitSpec("/srv/qemu", "0123456789abcdef0123456789abcdef01234567")),
    ("git:/srv/qemu@v8.0.0-rc1+local", GitSpec("/srv/qemu", "v8.0.0-rc1+local")),
    ("debian:bookworm", DebianSpec("bookworm")),
    ("debian:bookworm-backports", DebianSpec("bookworm-backports")),
    ("debian:bookworm=1:7.2+dfsg-7+deb12u18", DebianSpec("bookworm", "1:7.2+dfsg-7+deb12u18")),
    ("debian:trixie=1:10.0.2+ds-2~bpo12+1", DebianSpec("trixie", "1:10.0.2+ds-2~bpo12+1")),
])
def test_parse_good_specs(text: str, spec: sources.SourceSpec) -> None:
    parsed = sources.parse_spec(text)
    assert parsed == spec
    assert str(parsed) == text
    assert sources.parse_spec(str(parsed)) == parsed


@pytest.mark.parametrize("text, message", [
    ("bookworm", "expected git:"),
    ("", "expected git:"),
    ("svn:https://example.org/qemu@1", "unknown scheme 'svn'"),
    ("https://gitlab.com/qemu-project/qemu.git@master", "unknown scheme 'https'"),
    ("git:/srv/qemu", "need <url-or-path>@<ref>"),
    ("git:@master", "need <url-or-path>@<ref>"),
    ("git:/srv/qemu@", "need <url-or-path>@<ref>"),
    ("git:/srv/qemu@main;rm -rf /", "not a valid git ref"),
    ("git:/srv/qemu@$(x)", "not a valid git ref"),
    ("git:/srv/qemu@`id`", "not a valid git ref"),
    ("git:/srv/qemu@main && true", "not a valid git ref"),
    ("git:/srv/qemu@main|cat", "not a valid git ref"),
    ("git:/srv/qemu@-x", "not a valid git ref"),
    ("git:/srv/qemu@--upload-pack=evil", "not a valid git ref"),
    ("git:/srv/qemu@a..b", "not a valid git ref"),
    ("git:/srv/qemu@main.lock", "not a valid git ref"),
    ("git:/srv/qemu@main/", "not a valid git ref"),
    ("git:--upload-pack=touch /tmp/x@main", "must not start with '-'"),
    ("debian:", "not a Debian suite"),
    ("debian:Bookworm", "not a Debian suite"),
    ("debian:bookworm;id", "not a Debian suite"),
    ("debian:../etc", "not a Debian suite"),
    ("debian:bookworm=", "not a Debian version"),
    ("debian:bookworm=latest", "not a Debian version"),
    ("debian:bookworm=7.2 x", "not a Debian version"),
    ("debian:bookworm=1:7.2$(id)", "not a Debian version"),
    ("debian:bookworm=-7.2", "not a Debian version"),
])
def test_parse_bad_specs(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("$", r"\$")):
        sources.parse_spec(text)


@pytest.mark.parametrize("text", ["git:/srv/qemu@main\n", "debian:bookworm\n",
                                  "debian:bookworm=7.2\n"])
def test_trailing_newline_is_rejected(text: str) -> None:
    with pytest.raises(UsageError):
        sources.parse_spec(text)


def test_version_tuple() -> None:
    assert sources.version_tuple("7.2.0\n") == (7, 2, 0)
    assert sources.version_tuple("10.0.50") == (10, 0, 50)
    assert sources.version_tuple("8.1.0-rc2") == (8, 1, 0)
    assert sources.version_tuple("9.2.90.rc0") == (9, 2, 90)
    assert Tree("x", Path("."), "0" * 40, "7.2.22").version_tuple == (7, 2, 22)


# --- GitSources -----------------------------------------------------------------------

@pytest.fixture
def origin(tmp_path: Path, git: Git) -> dict[str, str]:
    """A small QEMU-like repository: main (2 commits), an annotated and a light tag."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "VERSION").write_text("7.2.0\n")
    git(repo, "add", "VERSION")
    git(repo, "commit", "-q", "-m", "7.2.0")
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "-a", "v7.2.0", "-m", "QEMU 7.2.0")
    (repo / "VERSION").write_text("7.2.50\n")
    git(repo, "commit", "-q", "-am", "open 8.0 development")
    git(repo, "tag", "light")
    return {"path": str(repo), "first": first, "main": git(repo, "rev-parse", "HEAD")}


def test_resolve_branch_tag_and_sha(origin: dict[str, str], tmp_path: Path) -> None:
    gs = GitSources(tmp_path / "cache")
    url = origin["path"]
    main = gs.resolve(GitSpec(url, "main"))
    assert (main.commit, main.qemu_version, main.package_version) == (origin["main"], "7.2.50", None)
    assert main.spec == f"git:{url}@main"
    assert main.repo.parent == tmp_path / "cache" / "git" and main.repo.name.endswith(".git")

    tag = gs.resolve(GitSpec(url, "v7.2.0"))  # annotated: peeled to the commit
    assert (tag.commit, tag.qemu_version, tag.version_tuple) == (origin["first"], "7.2.0", (7, 2, 0))
    assert gs.resolve(GitSpec(url, "light")).commit == origin["main"]
    sha = gs.resolve(GitSpec(url, origin["first"]))
    assert sha.commit == origin["first"] and sha.repo == main.repo  # one mirror per repository
    assert gs.resolve(GitSpec(url, origin["first"][:10])).commit == origin["first"]


def test_resolve_follows_a_moved_branch(origin: dict[str, str], tmp_path: Path,
                                        git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    url = origin["path"]
    assert gs.resolve(GitSpec(url, "main")).commit == origin["main"]
    (Path(url) / "VERSION").write_text("8.0.0\n")
    git(Path(url), "commit", "-q", "-am", "8.0.0")
    moved = gs.resolve(GitSpec(url, "main"))
    assert moved.commit == git(Path(url), "rev-parse", "HEAD")
    assert moved.qemu_version == "8.0.0"
    # offline use: no fetch, the mirror's view
    assert gs.resolve(GitSpec(url, "main"), fetch=False).commit == moved.commit


def test_resolve_commit_not_on_any_branch(origin: dict[str, str], tmp_path: Path,
                                          git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    url = Path(origin["path"])
    gs.resolve(GitSpec(str(url), "main"))  # the mirror exists before the commit does
    (url / "VERSION").write_text("7.2.99\n")
    git(url, "commit", "-q", "-am", "an unmerged fix")
    dangling = git(url, "rev-parse", "HEAD")
    git(url, "reset", "-q", "--hard", "HEAD~1")
    assert git(url, "branch", "--contains", dangling) == ""

    tree = gs.resolve(GitSpec(str(url), dangling))
    assert (tree.commit, tree.qemu_version) == (dangling, "7.2.99")


def test_resolve_missing_ref(origin: dict[str, str], tmp_path: Path) -> None:
    gs = GitSources(tmp_path / "cache")
    with pytest.raises(UsageError, match="ref 'no-such-branch' does not exist"):
        gs.resolve(GitSpec(origin["path"], "no-such-branch"))
    with pytest.raises(UsageError, match="does not exist"):
        gs.resolve(GitSpec(origin["path"], "0" * 40))


def test_resolve_missing_path(tmp_path: Path) -> None:
    gs = GitSources(tmp_path / "cache")
    with pytest.raises(UsageError, match="does not exist"):
        gs.resolve(GitSpec(str(tmp_path / "nowhere"), "main"))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="cannot clone"):
        gs.resolve(GitSpec(str(plain), "main"))
    # no half mirror (the mirror's lock file, which runs at once take turns on, may stay)
    assert [p.name for p in (tmp_path / "cache" / "git").iterdir()
            if not p.name.endswith(".lock")] == []


def test_resolve_commit_without_version_file(tmp_path: Path, git: Git) -> None:
    repo = tmp_path / "notqemu"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("hi\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "x")
    with pytest.raises(UsageError, match="no VERSION file"):
        GitSources(tmp_path / "cache").resolve(GitSpec(str(repo), "main"))


# --- refs as the user's repository means them (issue 25) ------------------------------

@pytest.fixture
def clone(origin: dict[str, str], tmp_path: Path, git: Git) -> Path:
    """A user's clone of `origin` on main (which tracks origin/main)."""
    path = tmp_path / "clone"
    git(tmp_path, "clone", "-q", origin["path"], str(path))
    return path


def _mirror_has(tree: Tree, commit: str) -> bool:
    return subprocess.run(["git", "-C", str(tree.repo), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, check=False).returncode == 0


def test_head_after_a_branch_switch_is_the_users_head(origin: dict[str, str], clone: Path,
                                                      tmp_path: Path, git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    first = gs.resolve(GitSpec(str(clone), "HEAD"))  # the mirror is made here, on main
    assert first.commit == origin["main"] and first.qemu_version == "7.2.50"
    git(clone, "checkout", "-q", "-b", "review", "v7.2.0")
    head = gs.resolve(GitSpec(str(clone), "HEAD"))
    assert (head.commit, head.qemu_version, head.repo) == (origin["first"], "7.2.0", first.repo)
    assert gs.resolve(GitSpec(str(clone), "review")).commit == origin["first"]
    # a commit made after the mirror: fetched into it by its id, and kept there by a ref
    (clone / "VERSION").write_text("7.2.1\n")
    git(clone, "commit", "-q", "-am", "a review fix")
    new = git(clone, "rev-parse", "HEAD")
    tree = gs.resolve(GitSpec(str(clone), "HEAD"))
    assert (tree.commit, tree.qemu_version) == (new, "7.2.1") and _mirror_has(tree, new)
    assert git(tree.repo, "rev-parse", f"refs/patchcheck/{new}") == new
    assert gs.resolve(GitSpec(str(clone), "HEAD~1")).commit == origin["first"]
    assert gs.resolve(GitSpec(str(clone), "HEAD^")).commit == origin["first"]


def test_a_branch_and_its_upstream_as_the_clone_has_them(origin: dict[str, str], clone: Path,
                                                         tmp_path: Path, git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    assert gs.resolve(GitSpec(str(clone), "main")).commit == origin["main"]
    (clone / "VERSION").write_text("7.2.60\n")
    git(clone, "commit", "-q", "-am", "local work on main")  # main moves, origin/main not
    local = git(clone, "rev-parse", "HEAD")
    assert gs.resolve(GitSpec(str(clone), "main")).commit == local
    assert gs.resolve(GitSpec(str(clone), "@{u}")).commit == origin["main"]
    assert gs.resolve(GitSpec(str(clone), "main@{upstream}")).commit == origin["main"]
    assert gs.resolve(GitSpec(str(clone), "origin/main")).commit == origin["main"]
    # the upstream moves in the clone (a fetch there): @{u} follows it
    (Path(origin["path"]) / "VERSION").write_text("8.0.0\n")
    git(Path(origin["path"]), "commit", "-q", "-am", "8.0.0")
    git(clone, "fetch", "-q", "origin")
    upstream = git(Path(origin["path"]), "rev-parse", "HEAD")
    tree = gs.resolve(GitSpec(str(clone), "@{u}"))
    assert (tree.commit, tree.qemu_version) == (upstream, "8.0.0")


@pytest.mark.parametrize("ref", ["HEAD", "HEAD~1", "HEAD^2", "@{u}", "@{-1}", "main@{1}",
                                 "origin/main", "v7.2.0^{commit}"])
def test_revision_expressions_are_specs(ref: str) -> None:
    for url in ("/srv/qemu", "git@example.org:qemu/qemu.git"):
        spec = sources.parse_spec(f"git:{url}@{ref}")
        assert spec == GitSpec(url, ref) and str(spec) == f"git:{url}@{ref}"


def test_an_unknown_ref_is_one_line(clone: Path, tmp_path: Path) -> None:
    gs = GitSources(tmp_path / "cache")
    for ref in ("no-such-branch", "HEAD~99", "@{u}x", "0" * 40):
        with pytest.raises(UsageError) as caught:
            gs.resolve(GitSpec(str(clone), ref))
        assert str(caught.value) == f"ref '{ref}' does not exist in {clone}"
    gs.resolve(GitSpec(str(clone), "HEAD"))
    git_detached = subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach"],
                                  capture_output=True, check=False)
    assert git_detached.returncode == 0
    with pytest.raises(UsageError, match=r"^ref '@\{u\}' does not exist in "):
        gs.resolve(GitSpec(str(clone), "@{u}"))  # a detached HEAD has no upstream


def test_a_detached_commit_on_no_branch_is_fetched_and_kept(clone: Path, tmp_path: Path,
                                                            git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    mirror = gs.resolve(GitSpec(str(clone), "HEAD")).repo
    git(clone, "checkout", "-q", "--detach")
    (clone / "VERSION").write_text("7.2.98\n")
    git(clone, "commit", "-q", "-am", "on no branch")
    detached = git(clone, "rev-parse", "HEAD")
    assert git(clone, "for-each-ref", "--contains", detached, "refs/heads") == ""
    for ref in ("HEAD", detached, detached[:10]):
        assert gs.resolve(GitSpec(str(clone), ref)).commit == detached
    # the mirror's own refs survive a mirroring fetch (`nightly` runs one)
    git(mirror, "fetch", "-q", "--prune", "origin")
    assert git(mirror, "rev-parse", f"refs/patchcheck/{detached}") == detached
    # gone from the user's repository since: the full id is still the mirror's
    git(clone, "checkout", "-q", "main")
    git(clone, "reflog", "expire", "--expire=now", "--all")
    git(clone, "gc", "-q", "--prune=now")
    assert gs.resolve(GitSpec(str(clone), detached)).commit == detached
    with pytest.raises(UsageError, match="does not exist"):
        gs.resolve(GitSpec(str(clone), detached[:10]))  # an abbreviation: the user's meaning


def test_a_commit_git_cannot_fetch_is_borrowed_through_alternates(
        clone: Path, tmp_path: Path, git: Git, monkeypatch: pytest.MonkeyPatch) -> None:
    gs = GitSources(tmp_path / "cache")
    mirror = gs.resolve(GitSpec(str(clone), "HEAD")).repo
    (clone / "VERSION").write_text("7.2.97\n")
    git(clone, "commit", "-q", "-am", "new")
    new = git(clone, "rev-parse", "HEAD")
    monkeypatch.setattr(sources, "_fetch_commit", lambda repo, local, commit: False)
    assert gs.resolve(GitSpec(str(clone), "HEAD")).commit == new
    alternates = (mirror / "objects" / "info" / "alternates").read_text().split()
    assert alternates == [str((clone / ".git" / "objects").resolve())]
    assert git(mirror, "rev-parse", f"refs/patchcheck/{new}") == new


def test_a_bare_repository_and_a_linked_worktree(origin: dict[str, str], tmp_path: Path,
                                                 git: Git) -> None:
    gs = GitSources(tmp_path / "cache")
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", origin["path"], str(bare))
    assert gs.resolve(GitSpec(str(bare), "HEAD")).commit == origin["main"]
    git(bare, "symbolic-ref", "HEAD", "refs/tags/v7.2.0")  # HEAD moved in the repository
    assert gs.resolve(GitSpec(str(bare), "HEAD")).commit == origin["first"]
    worktree = tmp_path / "wt"
    git(Path(origin["path"]), "worktree", "add", "-q", "-b", "side", str(worktree), "v7.2.0")
    (worktree / "VERSION").write_text("7.2.5\n")
    git(worktree, "commit", "-q", "-am", "side work")
    tree = gs.resolve(GitSpec(str(worktree), "HEAD"))
    assert (tree.commit, tree.qemu_version) == (git(worktree, "rev-parse", "HEAD"), "7.2.5")


def test_a_range_and_bisection_ends_are_the_users(clone: Path, tmp_path: Path, git: Git) -> None:
    from patchcheck.source.commits import History, check_clean

    history = History(GitSources(tmp_path / "cache"), str(clone))
    history.resolve("HEAD")  # the mirror exists, on main
    git(clone, "checkout", "-q", "-b", "series", "v7.2.0")
    made = []
    for n in (1, 2, 3):
        (clone / "VERSION").write_text(f"7.2.{n}\n")
        git(clone, "commit", "-q", "-am", f"patch {n}")
        made.append(git(clone, "rev-parse", "HEAD"))
    assert [c.sha for c in history.between("HEAD~3", "HEAD")] == made
    assert [c.subject for c in history.between("v7.2.0", "series")] == [
        "patch 1", "patch 2", "patch 3"]
    assert [t.commit for t in history.ordered("HEAD~2", "HEAD")] == [made[0], made[2]]
    (clone / "VERSION").write_text("dirty\n")
    with pytest.raises(UsageError, match="uncommitted changes"):
        check_clean(str(clone), ("HEAD~3", "series"))  # `series` is the checked-out HEAD
    check_clean(str(clone), ("HEAD~3", "@{u}", "no-such-ref"))  # HEAD not asked for


# --- DebianSources --------------------------------------------------------------------

DSC_NAME = "qemu_1:7.2+dfsg-7.dsc"
VERSION = "1:7.2+dfsg-7"


class FakeFetcher:
    """Writes what `apt-get source qemu` leaves behind: a .dsc and the unpacked tree."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.fail = fail

    def __call__(self, suite: str, version: str | None, outdir: Path) -> None:
        self.calls.append((suite, version))
        (outdir / DSC_NAME).write_text(
            "Format: 3.0 (quilt)\nSource: qemu\nBinary: qemu-system\n"
            f"Version: {VERSION}\nMaintainer: Debian QEMU Team\n")
        (outdir / "qemu_7.2+dfsg.orig.tar.xz").write_bytes(b"\xfd7zXZ\x00")
        tree = outdir / "qemu-7.2+dfsg"
        (tree / "hw" / "pci").mkdir(parents=True)
        (tree / "VERSION").write_text("7.2.0\n")
        (tree / "hw" / "pci" / "pcie.c").write_text("/* pcie */\n")
        (tree / ".gitignore").write_text("*.o\n/build/\nconfig-host.mak\n")
        (tree / "config-host.mak").write_text("ignored by .gitignore, still source\n")
        (tree / "build").mkdir()
        (tree / "build" / "keep.txt").write_text("also ignored\n")
        (tree / "roms" / "seabios" / ".git").mkdir(parents=True)  # a vendored tree's own .git
        (tree / "roms" / "seabios" / ".git" / "HEAD").write_text("ref: refs/heads/master\n")
        (tree / "roms" / "seabios" / "Makefile").write_text("all:\n")
        if self.fail:
            raise InfraError("apt-get source failed halfway")


def _tracked(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_debian_import(tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    ds = DebianSources(tmp_path / "cache", fetcher)
    tree = ds.resolve(DebianSpec("bookworm"))
    assert fetcher.calls == [("bookworm", None)]
    assert (tree.qemu_version, tree.package_version) == ("7.2.0", VERSION)
    assert tree.spec == "debian:bookworm"
    assert tree.repo.parent == tmp_path / "cache" / "debian" / "bookworm"
    files = _tracked(tree.repo)
    assert {"VERSION", "hw/pci/pcie.c", ".gitignore", "config-host.mak", "build/keep.txt",
            "roms/seabios/Makefile"} <= files
    assert not any(f.startswith("roms/seabios/.git/") for f in files)
    out = subprocess.run(["git", "-C", str(tree.repo), "log", "--format=%H %an %ad|%s",
                          "--date=unix", "debian/1_7.2_dfsg-7"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{tree.commit} patchcheck 946684800|Debian bookworm qemu {VERSION}"
    # the fetch directory is gone
    assert [p.name for p in tree.repo.parent.iterdir()] == [tree.repo.name]


def test_debian_import_is_deterministic(tmp_path: Path) -> None:
    one = DebianSources(tmp_path / "a", FakeFetcher()).resolve(DebianSpec("bookworm"))
    two = DebianSources(tmp_path / "b", FakeFetcher()).resolve(DebianSpec("bookworm"))
    assert one.commit == two.commit  # fixed identity and date: same import, same commit


def test_debian_second_resolve_reuses_the_import(tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    ds = DebianSources(tmp_path / "cache", fetcher)
    first = ds.resolve(DebianSpec("bookworm"))
    again = ds.resolve(DebianSpec("bookworm"))
    pinned = ds.resolve(DebianSpec("bookworm", VERSION))
    fresh = DebianSources(tmp_path / "cache", fetcher).resolve(DebianSpec("bookworm"))
    assert fetcher.calls == [("bookworm", None)]
    assert first == again == fresh
    assert (pinned.commit, pinned.repo, pinned.package_version) == \
        (first.commit, first.repo, VERSION)


def test_debian_refresh_fetches_again_but_keeps_the_import(tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    ds = DebianSources(tmp_path / "cache", fetcher)
    first = ds.resolve(DebianSpec("bookworm"))
    second = ds.resolve(DebianSpec("bookworm"), refresh=True)
    assert len(fetcher.calls) == 2
    assert (second.repo, second.commit) == (first.repo, first.commit)


def test_debian_fetch_failure_leaves_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds = DebianSources(cache, FakeFetcher(fail=True))
    with pytest.raises(InfraError, match="halfway"):
        ds.resolve(DebianSpec("bookworm"))
    left = [p for p in (cache / "debian").rglob("*")]
    assert left == [cache / "debian" / "bookworm"]  # the empty suite directory only
    # the next attempt fetches (nothing stale is taken for an import)
    good = FakeFetcher()
    tree = DebianSources(cache, good).resolve(DebianSpec("bookworm"))
    assert good.calls == [("bookworm", None)] and tree.package_version == VERSION


def test_debian_fetch_without_a_tree(tmp_path: Path) -> None:
    def fetch_nothing(suite: str, version: str | None, outdir: Path) -> None:
        (outdir / DSC_NAME).write_text(f"Version: {VERSION}\n")

    cache = tmp_path / "cache"
    with pytest.raises(InfraError, match="no single unpacked tree"):
        DebianSources(cache, fetch_nothing).resolve(DebianSpec("bookworm"))
    assert list((cache / "debian" / "bookworm").iterdir()) == []


def test_debian_corrupt_import_is_fetched_again(tmp_path: Path) -> None:
    fetcher = FakeFetcher()
    ds = DebianSources(tmp_path / "cache", fetcher)
    first = ds.resolve(DebianSpec("bookworm"))
    shutil.rmtree(first.repo / ".git")
    again = ds.resolve(DebianSpec("bookworm"))
    assert len(fetcher.calls) == 2
    assert again.commit == first.commit and (again.repo / ".git").is_dir()


def test_dsc_version(tmp_path: Path) -> None:
    dsc = tmp_path / "x.dsc"
    dsc.write_text("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nFormat: 3.0 (quilt)\n"
                   "Source: qemu\nVersion: 1:10.0.2+ds-2\nStandards-Version: 4.7.0\n")
    assert sources.dsc_version(dsc) == "1:10.0.2+ds-2"
    dsc.write_text("Source: qemu\n")
    with pytest.raises(InfraError, match="no Version"):
        sources.dsc_version(dsc)


def test_runs_at_once_resolve_one_new_mirror_without_tripping(origin: dict[str, str],
                                                              tmp_path: Path) -> None:
    """Issue 27: three `invoke check` of one repository started together each made the
    mirror and renamed it into place; the later ones failed (Directory not empty). They take
    turns per mirror now: one clones, the others find it."""
    import threading

    gs = GitSources(tmp_path / "cache")
    found: list[object] = []
    start = threading.Barrier(4)

    def resolve() -> None:
        start.wait()
        try:
            found.append(gs.resolve(GitSpec(origin["path"], "main")).commit)
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            found.append(exc)
    threads = [threading.Thread(target=resolve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(found) == 4 and len(set(found)) == 1 and isinstance(found[0], str), found
    mirrors = [p for p in (tmp_path / "cache" / "git").iterdir() if p.suffix == ".git"]
    assert len(mirrors) == 1
