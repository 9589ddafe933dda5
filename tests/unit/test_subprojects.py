"""Subprojects of git trees on small fixture repositories: pins (gitlinks + .gitmodules,
wrap-git with and without patch_directory, wrap-file), the needed set per configuration,
the store (fetch once, verify, vendored copies, a revision that cannot be had), and the
copy into a work tree."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import git
import pytest

from patchcheck.errors import BuildFailed, UsageError
from patchcheck.source import gitcmd
from patchcheck.source.subprojects.complete import complete, pins_of
from patchcheck.source.subprojects.needs import BuildKind, configure_meson_minimum, needed
from patchcheck.source.subprojects.pins import (
    SUBMODULE,
    WRAP_FILE,
    WRAP_GIT,
    Pin,
    parse_gitmodules,
    parse_wrap,
)
from patchcheck.source.subprojects.store import SubprojectStore, SubprojectUnavailable

UPSTREAM = "https://gitlab.example/qemu-project/"


def _commit(repo: git.Repo, message: str) -> str:
    with repo.git.custom_environment(**gitcmd.IDENTITY,
                                     **gitcmd.commit_env("2020-01-01T00:00:00+0000")):
        repo.git.commit("-q", "--allow-empty", "-m", message)
    return repo.head.commit.hexsha


def _subproject(mirrors: Path, name: str, files: dict[str, str]) -> str:
    """A repository in `mirrors/<name>.git` with one commit; its id."""
    work = mirrors.parent / f"work-{name}"
    repo = git.Repo.init(work)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    repo.git.add("-A")
    sha = _commit(repo, f"{name} content")
    git.Repo.clone_from(str(work), str(mirrors / f"{name}.git"), bare=True)
    git.Repo(mirrors / f"{name}.git").git.config("uploadpack.allowAnySHA1InWant", "true")
    return sha


@pytest.fixture
def mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local mirrors, reached through git's URL rewriting in the process environment (as a
    user with a mirror would configure it; no configuration file is written)."""
    path = tmp_path / "mirrors"
    path.mkdir()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "2")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{path}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", UPSTREAM)
    monkeypatch.setenv("GIT_CONFIG_KEY_1", "protocol.file.allow")
    monkeypatch.setenv("GIT_CONFIG_VALUE_1", "always")
    return path


def _submodule_tree(tmp_path: Path, links: dict[str, str], gitmodules: str) -> tuple[Path, str]:
    tree = tmp_path / "qemu"
    repo = git.Repo.init(tree)
    (tree / "VERSION").write_text("7.2.0\n")
    (tree / "configure").write_text('if has meson && version_ge "$(meson --version)" 0.61.5; then\n')
    (tree / ".gitmodules").write_text(gitmodules)
    repo.git.add("VERSION", "configure", ".gitmodules")
    for path, sha in links.items():
        repo.git.update_index("--add", "--cacheinfo", f"160000,{sha},{path}")
    return tree, _commit(repo, "tree with submodules")


def _gitmodules(paths: list[str]) -> str:
    return "".join(f'[submodule "{p}"]\n\tpath = {p}\n\turl = {UPSTREAM}{p.rsplit("/", 1)[-1]}.git\n'
                   for p in paths)


def test_submodule_pins_come_from_gitlinks_and_gitmodules(tmp_path: Path) -> None:
    links = {"ui/keycodemapdb": "a" * 40, "roms/seabios": "b" * 40,
             "tests/fp/berkeley-testfloat-3": "c" * 40, "meson": "d" * 40}
    tree, commit = _submodule_tree(tmp_path, links, _gitmodules(list(links)))
    pins = {p.path: p for p in pins_of(tree, commit)}
    assert set(pins) == set(links)
    testfloat = pins["tests/fp/berkeley-testfloat-3"]
    assert (testfloat.name, testfloat.kind, testfloat.revision) == \
        ("berkeley-testfloat-3", SUBMODULE, "c" * 40)
    assert testfloat.url == f"{UPSTREAM}berkeley-testfloat-3.git" and testfloat.pinned_commit


def test_gitlink_without_gitmodules_entry_is_one_usage_line(tmp_path: Path) -> None:
    tree, commit = _submodule_tree(tmp_path, {"ui/keycodemapdb": "a" * 40, "dtc": "e" * 40},
                                   _gitmodules(["ui/keycodemapdb"]))
    with pytest.raises(UsageError, match=r"gitlink dtc has no entry in \.gitmodules") as info:
        pins_of(tree, commit)
    assert "\n" not in str(info.value)


def test_relative_submodule_url_is_resolved_against_the_origin() -> None:
    from patchcheck.source.subprojects.pins import _resolve_url

    assert _resolve_url("../keycodemapdb.git", "https://host/qemu-project/qemu.git") == \
        "https://host/qemu-project/keycodemapdb.git"
    assert parse_gitmodules('[submodule "x"]\n path = a/x\n url = ../x.git\n') == {"a/x": "../x.git"}


def test_wrap_git_with_and_without_patch_directory() -> None:
    with_patch = parse_wrap("subprojects/berkeley-testfloat-3.wrap",
                            "[wrap-git]\nurl = https://gitlab.com/qemu-project/berkeley-testfloat-3\n"
                            f"revision = {'e' * 40}\npatch_directory = berkeley-testfloat-3\n"
                            "depth = 1\n")
    assert (with_patch.kind, with_patch.path, with_patch.patch_directory) == \
        (WRAP_GIT, "subprojects/berkeley-testfloat-3", "berkeley-testfloat-3")
    plain = parse_wrap("subprojects/keycodemapdb.wrap",
                       f"[wrap-git]\nurl = {UPSTREAM}keycodemapdb.git\nrevision = {'f' * 40}\n"
                       "directory = kcm\n")
    assert (plain.patch_directory, plain.path, plain.name) == ("", "subprojects/kcm", "keycodemapdb")


def test_wrap_file() -> None:
    pin = parse_wrap("subprojects/zlib.wrap",
                     "[wrap-file]\ndirectory = zlib-1.3\nsource_url = https://x/zlib-1.3.tar.gz\n"
                     f"source_filename = zlib-1.3.tar.gz\nsource_hash = {'0' * 64}\n"
                     "patch_directory = zlib\n")
    assert (pin.kind, pin.path, pin.revision, pin.source_filename) == \
        (WRAP_FILE, "subprojects/zlib-1.3", "0" * 64, "zlib-1.3.tar.gz")
    assert not pin.pinned_commit


@pytest.mark.parametrize("text, message", [
    ("[wrap-git\nurl = x\n", "not a meson wrap file"),
    ("[wrap-git]\nurl = https://x/y.git\n", r"\[wrap-git\] needs url and revision"),
    ("[wrap-file]\nsource_url = https://x/y.tgz\nsource_hash = 12\n", r"\[wrap-file\] needs"),
    ("[provide]\nslirp = libslirp_dep\n", r"no \[wrap-git\] or \[wrap-file\] section"),
])
def test_malformed_wrap_is_one_usage_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_wrap("subprojects/bad.wrap", text)
    assert str(info.value).startswith("subprojects/bad.wrap: ") and "\n" not in str(info.value)


def _pins(*names: str) -> list[Pin]:
    return [Pin(name, f"roms/{name}" if name == "seabios" else f"subprojects/{name}", WRAP_GIT,
                f"{UPSTREAM}{name}", "1" * 40) for name in names]


ALL = ("keycodemapdb", "berkeley-softfloat-3", "berkeley-testfloat-3", "dtc", "meson",
       "libvfio-user", "slirp", "syn-2-rs", "seabios", "unknown-thing")


@pytest.mark.parametrize("configure, builder_meson, wanted", [
    ((), (1, 0, 1), {"keycodemapdb", "berkeley-softfloat-3", "berkeley-testfloat-3"}),
    (("--disable-tcg",), (1, 0, 1), {"keycodemapdb"}),
    (("--enable-fdt=internal",), (1, 0, 1),
     {"keycodemapdb", "berkeley-softfloat-3", "berkeley-testfloat-3", "dtc"}),
    (("--disable-tcg",), (0, 56, 2), {"keycodemapdb", "meson"}),  # builder's meson too old
    (("--disable-tcg", "--enable-rust", "--enable-slirp", "--enable-vfio-user-server"), (1, 7),
     {"keycodemapdb", "syn-2-rs", "slirp", "libvfio-user"}),
])
def test_needed_set_for_a_configuration(configure: tuple[str, ...],
                                        builder_meson: tuple[int, ...], wanted: set[str]) -> None:
    kind = BuildKind(configure, builder_meson, configure_meson=(0, 61, 5))
    assert {p.name for p in needed(_pins(*ALL), kind)} == wanted


def test_configure_meson_minimum() -> None:
    assert configure_meson_minimum('has meson && version_ge "$(meson --version)" 0.61.5; then') \
        == (0, 61, 5)
    assert configure_meson_minimum("mkvenv ensuregroup meson") == ()


def _store(tmp_path: Path, vendor_roots: list[Path] | None = None) -> SubprojectStore:
    return SubprojectStore(tmp_path / "cache", vendor_roots or [], log=lambda line: None)


def test_fetch_once_per_revision_through_the_users_url_rewriting(tmp_path: Path, mirrors: Path
                                                                 ) -> None:
    sha = _subproject(mirrors, "keycodemapdb", {"README": "keycodes\n", "tools/gen": "x\n"})
    tree, commit = _submodule_tree(tmp_path, {"ui/keycodemapdb": sha},
                                   _gitmodules(["ui/keycodemapdb"]))
    store = _store(tmp_path)
    pin = pins_of(tree, commit)[0]
    content, record = store.get(pin)
    assert (content / "README").read_text() == "keycodes\n" and not (content / ".git").exists()
    assert record["commit"] == sha and record["from"] == f"fetched: {UPSTREAM}keycodemapdb.git"
    again, _ = store.get(pin)
    assert again == content and store.fetched == [pin.describe()]  # fetched once


def test_revision_the_mirror_lacks_is_one_line_and_leaves_nothing(tmp_path: Path, mirrors: Path
                                                                  ) -> None:
    _subproject(mirrors, "berkeley-testfloat-3", {"README": "tf\n"})
    missing = "40619cbb3bf32872df8c53cc457039229428a263"
    tree, commit = _submodule_tree(tmp_path, {"tests/fp/berkeley-testfloat-3": missing},
                                   _gitmodules(["tests/fp/berkeley-testfloat-3"]))
    store = _store(tmp_path)
    with pytest.raises(SubprojectUnavailable) as info:
        store.get(pins_of(tree, commit)[0])
    text = str(info.value)
    assert isinstance(info.value, BuildFailed) and "\n" not in text
    for part in ("berkeley-testfloat-3", "40619cbb3bf3", f"{UPSTREAM}berkeley-testfloat-3.git",
                 "insteadOf", "vendors it"):
        assert part in text, text
    leftovers = [p.name for p in (store.root / "berkeley-testfloat-3").iterdir()
                 if p.name not in ("repo.git", ".lock")]
    assert leftovers == []


def test_vendored_copy_is_used_without_fetching(tmp_path: Path) -> None:
    imports = tmp_path / "debian"
    vendor = imports / "trixie" / "1%10.0" / "subprojects"
    (vendor / "berkeley-testfloat-3").mkdir(parents=True)
    (vendor / "berkeley-testfloat-3" / "README.md").write_text("vendored\n")
    (vendor / "berkeley-testfloat-3.wrap").write_text(
        f"[wrap-git]\nurl = {UPSTREAM}berkeley-testfloat-3\nrevision = {'e' * 40}\n")
    store = _store(tmp_path, [imports])
    pin = parse_wrap("subprojects/berkeley-testfloat-3.wrap",
                     f"[wrap-git]\nurl = {UPSTREAM}berkeley-testfloat-3.git\nrevision = {'e' * 40}\n"
                     "patch_directory = berkeley-testfloat-3\n")
    content, record = store.get(pin)
    assert (content / "README.md").read_text() == "vendored\n"
    assert record["from"].startswith("vendored: ") and store.fetched == []
    other = parse_wrap("x/berkeley-testfloat-3.wrap",
                       f"[wrap-git]\nurl = {UPSTREAM}berkeley-testfloat-3\nrevision = {'d' * 40}\n")
    assert store.vendored(other) is None  # another revision: not this copy


def test_complete_copies_the_needed_ones_with_the_overlay(tmp_path: Path, mirrors: Path) -> None:
    sha = _subproject(mirrors, "berkeley-testfloat-3", {"source/a.c": "int a;\n"})
    kcm = _subproject(mirrors, "keycodemapdb", {"README": "k\n"})
    tree = tmp_path / "qemu"
    repo = git.Repo.init(tree)
    (tree / "VERSION").write_text("10.2.50\n")
    (tree / "configure").write_text("mkvenv ensuregroup meson\n")
    overlay = tree / "subprojects" / "packagefiles" / "berkeley-testfloat-3"
    overlay.mkdir(parents=True)
    (overlay / "meson.build").write_text("project('testfloat')\n")
    (tree / "subprojects" / "berkeley-testfloat-3.wrap").write_text(
        f"[wrap-git]\nurl = {UPSTREAM}berkeley-testfloat-3\nrevision = {sha}\n"
        "patch_directory = berkeley-testfloat-3\ndepth = 1\n")
    (tree / "subprojects" / "keycodemapdb.wrap").write_text(
        f"[wrap-git]\nurl = {UPSTREAM}keycodemapdb.git\nrevision = {kcm}\n")
    (tree / "subprojects" / "slirp.wrap").write_text(
        f"[wrap-git]\nurl = https://gitlab.freedesktop.org/slirp/libslirp.git\nrevision = {'2' * 40}\n")
    repo.git.add("-A")
    commit = _commit(repo, "wraps")
    store = _store(tmp_path)
    done = complete(tree, tree, commit, ("--disable-slirp",), lambda: (1, 7), store)
    assert {d["name"] for d in done} == {"berkeley-testfloat-3", "keycodemapdb"}  # not slirp
    tf = tree / "subprojects" / "berkeley-testfloat-3"
    assert (tf / "source" / "a.c").is_file() and (tf / "meson.build").read_text() == \
        "project('testfloat')\n"
    assert not (tree / "subprojects" / "slirp").exists()
    (tf / "source" / "a.c").write_text("changed\n")
    complete(tree, tree, commit, ("--disable-slirp",), lambda: (1, 7), store)
    assert (tf / "source" / "a.c").read_text() == "changed\n"  # stamped: not copied again
    assert len(store.fetched) == 2


def test_wrap_file_is_downloaded_and_its_hash_checked(tmp_path: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as t:
        body = b"int z;\n"
        info = tarfile.TarInfo("zlib-1.3/z.c")
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    archive = tmp_path / "zlib-1.3.tar.gz"
    archive.write_bytes(data.getvalue())
    digest = hashlib.sha256(data.getvalue()).hexdigest()
    text = (f"[wrap-file]\ndirectory = zlib-1.3\nsource_url = {archive.as_uri()}\n"
            f"source_filename = zlib-1.3.tar.gz\nsource_hash = {{}}\n")
    content, _ = _store(tmp_path).get(parse_wrap("subprojects/zlib.wrap", text.format(digest)))
    assert (content / "z.c").read_text() == "int z;\n"
    with pytest.raises(SubprojectUnavailable, match="sha256"):
        _store(tmp_path / "other").get(parse_wrap("subprojects/zlib.wrap", text.format("1" * 64)))


def test_a_revision_that_is_no_plain_name_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "qemu"
    repo = git.Repo.init(tree)
    (tree / "subprojects").mkdir()
    (tree / "subprojects" / "x.wrap").write_text(
        f"[wrap-git]\nurl = {UPSTREAM}x\nrevision = ../../../escape\n")
    repo.git.add("-A")
    commit = _commit(repo, "a wrap whose revision would leave the store")
    with pytest.raises(UsageError, match="not a plain name and commit id or tag"):
        pins_of(tree, commit)


def test_a_vendored_directory_outside_its_tree_is_not_used(tmp_path: Path) -> None:
    imports = tmp_path / "debian"
    (imports / "trixie" / "1%10.0" / "subprojects").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("not theirs\n")
    (imports / "trixie" / "1%10.0" / "subprojects" / "kcm.wrap").write_text(
        f"[wrap-git]\nurl = {UPSTREAM}kcm\nrevision = {'e' * 40}\ndirectory = ../../../../outside\n")
    pin = Pin("kcm", "subprojects/kcm", WRAP_GIT, f"{UPSTREAM}kcm", "e" * 40)
    assert _store(tmp_path, [imports]).vendored(pin) is None


def test_a_subproject_the_commit_vendors_is_its_own_copy(tmp_path: Path, mirrors: Path) -> None:
    """A Debian tree vendors berkeley-testfloat-3 with its meson.build inside (no
    packagefiles/): the store's raw copy of that revision, fetched first for another tree,
    must not replace it (that tree then failed: "Subproject exists but has no meson.build")."""
    sha = _subproject(mirrors, "berkeley-testfloat-3", {"source/a.c": "int a;\n"})
    store = _store(tmp_path)
    wrap = (f"[wrap-git]\nurl = {UPSTREAM}berkeley-testfloat-3\nrevision = {sha}\n"
            "patch_directory = berkeley-testfloat-3\n")
    store.get(parse_wrap("subprojects/berkeley-testfloat-3.wrap", wrap))  # raw, fetched first
    tree = tmp_path / "debian-qemu"
    repo = git.Repo.init(tree)
    (tree / "VERSION").write_text("10.0.13\n")
    (tree / "configure").write_text("mkvenv ensuregroup meson\n")
    (tree / "subprojects").mkdir()
    (tree / "subprojects" / "berkeley-testfloat-3.wrap").write_text(wrap)
    vendored = tree / "subprojects" / "berkeley-testfloat-3"
    (vendored / "source").mkdir(parents=True)
    (vendored / "source" / "a.c").write_text("int a;\n")
    (vendored / "meson.build").write_text("project('testfloat')\n")
    repo.git.add("-A")
    commit = _commit(repo, "a source package that vendors its subprojects")
    done = complete(tree, tree, commit, ("--disable-slirp",), lambda: (1, 7), store)
    assert done == [{"name": "berkeley-testfloat-3", "path": "subprojects/berkeley-testfloat-3",
                     "revision": sha, "from": "the tree's own copy"}]
    assert (vendored / "meson.build").read_text() == "project('testfloat')\n"
    assert repo.git.status("--porcelain") == ""  # nothing of the commit's was touched
