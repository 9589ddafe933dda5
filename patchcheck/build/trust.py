"""Whether a build is trusted: the one place that decides, from where its tree came from.

An untrusted build runs code nobody vouched for (a patch from a mailing list, a series
commit, a stranger's remote): it gets the compiler cache read-only, a sandboxed container,
its own cache key, and no later build starts from its build directory (builder.py;
docs/reliability.md, "Untrusted builds"). Trusted: Debian source packages (signed by the
archive), a local repository (the user's own code), a remote in `patchcheck.trust.remotes`,
and the scenarios' own patches (patchcheck's code). `patchcheck.trust.all` trusts every build.
"""

from __future__ import annotations

from dataclasses import dataclass

from patchcheck.config.settings import BuildSpec, TrustSettings
from patchcheck.source import specs as sources
from patchcheck.tree import fixes


@dataclass(frozen=True)
class Trust:
    trusted: bool
    reason: str  # why, in words: "untrusted: a patch not shipped with patchcheck (x.patch)"

    def __str__(self) -> str:
        return ("trusted" if self.trusted else "untrusted") + (f": {self.reason}"
                                                                if self.reason else "")


TRUSTED = Trust(True, "")


def decide(spec: BuildSpec, settings: TrustSettings, known: fixes.KnownFixes) -> Trust:
    """The trust of the build `spec` asks for; the first reason to distrust it wins."""
    if settings.all:
        return Trust(True, "patchcheck.trust.all")
    if spec.untrusted:
        return Trust(False, spec.untrusted)
    patch = fixes.resolve(spec.fix, known)
    if patch is not None and not shipped(patch, known):
        return Trust(False, f"a patch not shipped with patchcheck ({patch.path.name})")
    source = sources.parse_spec(spec.source)
    if isinstance(source, sources.GitSpec):
        return _remote(source.url, settings.remotes)
    return TRUSTED


def shipped(patch: fixes.Patch, known: fixes.KnownFixes) -> bool:
    """One of the scenario's own patches (patchcheck/scenarios/*/patches), or the same bytes."""
    return any(p.path == patch.path or p.digest == patch.digest for p in known.patches)


def _remote(url: str, allowed: tuple[str, ...]) -> Trust:
    if sources.local_repository(url) is not None:
        return TRUSTED  # a repository on this machine: the user's own code
    if normalize(url) in {normalize(a) for a in allowed}:
        return TRUSTED
    return Trust(False, f"git remote {url} is not in patchcheck.trust.remotes")


def normalize(url: str) -> str:
    """A remote's URL compared without a trailing slash or `.git`, case-blind in its host."""
    text = url.strip().rstrip("/").removesuffix(".git")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"
