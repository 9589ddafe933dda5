"""The trust decision (patchcheck/build/trust.py), the keys and records it gives, the
settings it reads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from patchcheck.build.builder import Builder
from patchcheck.build.record import BuildRecord
from patchcheck.build.trust import TRUSTED, Trust, decide, normalize
from patchcheck.config import settings as config_mod
from patchcheck.config.settings import BuildSpec, TrustSettings
from patchcheck.tree import fixes

KNOWN = fixes.known_fixes("pds")
V2 = KNOWN.get("v2")
DEFAULT = TrustSettings()


def _patch(tmp_path: Path, text: bytes) -> str:
    path = tmp_path / "user.patch"
    path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize(("source", "fix", "trusted"), [
    ("debian:bookworm", "none", True),
    ("debian:bookworm", "v2", True),  # the scenario's own patch
    ("debian:bookworm", "none+v1", True),
    ("git:https://gitlab.com/qemu-project/qemu.git@master", "none", True),
    ("git:https://GitLab.com/qemu-project/qemu/@master", "as-is", True),
    ("git:https://github.com/someone/qemu@master", "none", False),
    ("git:file:///srv/qemu@master", "none", False),  # a URL: not the user's own directory
    ("git:git@example.org:qemu.git@master", "none", False),
])
def test_where_the_tree_came_from_decides(source, fix, trusted):
    trust = decide(BuildSpec("b", source, fix), DEFAULT, KNOWN)
    assert trust.trusted is trusted
    assert str(trust).startswith("trusted" if trusted else "untrusted: git remote")


def test_a_local_repository_is_the_users_own_code(tmp_path):
    assert decide(BuildSpec("b", f"git:{tmp_path}@HEAD", "none"), DEFAULT, KNOWN).trusted


def test_a_users_patch_is_untrusted_unless_it_is_a_shipped_one(tmp_path):
    own = decide(BuildSpec("b", "debian:bookworm", _patch(tmp_path, b"--- a/x\n+++ b/x\n")),
                 DEFAULT, KNOWN)
    assert not own.trusted and str(own) == ("untrusted: a patch not shipped with patchcheck "
                                            "(user.patch)")
    assert V2 is not None
    same_bytes = _patch(tmp_path, V2.text)
    assert decide(BuildSpec("b", "debian:bookworm", same_bytes), DEFAULT, KNOWN).trusted
    on_bug = decide(BuildSpec("b", "debian:bookworm", "none+" + _patch(tmp_path, b"--- a\n")),
                    DEFAULT, KNOWN)
    assert not on_bug.trusted


def test_a_series_commit_is_untrusted_and_trust_all_trusts_everything(tmp_path):
    series = BuildSpec("commit", f"git:{tmp_path}@HEAD", "as-is", untrusted="a series commit")
    assert str(decide(series, DEFAULT, KNOWN)) == "untrusted: a series commit"
    everything = TrustSettings(all=True)
    assert decide(series, everything, KNOWN).trusted
    remote = BuildSpec("b", "git:https://example.org/q.git@x", "none")
    assert decide(remote, everything, KNOWN).trusted
    listed = TrustSettings(remotes=("https://example.org/q",))
    assert decide(remote, listed, KNOWN).trusted


def test_remotes_compare_without_slash_dot_git_or_host_case():
    assert normalize("https://GitLab.com/qemu-project/qemu.git/") == \
        "https://gitlab.com/qemu-project/qemu"
    assert normalize("https://gitlab.com/Qemu-Project/qemu") != \
        normalize("https://gitlab.com/qemu-project/qemu")  # the path is the server's to judge


def test_settings_read_the_trust_section():
    def load(trust: object) -> TrustSettings:
        return config_mod.load({"patchcheck": {"trust": trust}}).trust
    assert load({}) == TrustSettings()
    assert load({"remotes": [], "all": "yes"}) == TrustSettings(remotes=(), all=True)
    with pytest.raises(config_mod.ConfigError, match="trust.all"):
        load({"all": "maybe"})


def test_an_older_record_without_trust_loads_as_trusted():
    record = BuildRecord.from_dict({**_record(), "trusted": False})
    assert record.trusted is False
    older = _record()
    del older["trusted"], older["trust"]
    assert BuildRecord.from_dict(older).trusted is True
    del older["pch"]
    with pytest.raises(ValueError, match="damaged: no pch"):
        BuildRecord.from_dict(older)


def test_an_untrusted_build_has_a_key_of_its_own(tmp_path):
    builder = Builder(None, tmp_path, ["--opt"])  # type: ignore[arg-type]
    tree = SimpleNamespace(tree_id="t")
    trusted = builder.key(tree, "img")  # type: ignore[arg-type]
    assert trusted == builder.key(tree, "img", TRUSTED)  # type: ignore[arg-type]
    assert trusted != builder.key(tree, "img", Trust(False, "x"))  # type: ignore[arg-type]


def _record() -> dict[str, object]:
    return BuildRecord(name="n", key="k", source="debian:bookworm", commit="c", tree_id="t",
                       qemu_version="7.2", package_version=None, fix={}, generation="bookworm",
                       image="img", image_id="id", configure=[], seconds=1.0, ccache="",
                       binary="/b", binary_sha256="s", reproduce="r").to_dict()
