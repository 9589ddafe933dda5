"""Commits of a user's repository in sequence: refs resolved as the user's repository means
them (GitSources.resolve: HEAD, a branch, BASE..TIP's two ends), the commits then read from
patchcheck's own mirror of it (the user's checkout, index and bisect state are never
touched): a range's commits, ancestry, subjects, and the check that uncommitted changes are
not silently left out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from patchcheck.errors import UsageError
from patchcheck.source import gitcmd
from patchcheck.source.specs import GitSources, GitSpec, Tree, rev_parse_in


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:12]


def parse_range(text: str) -> tuple[str, str]:
    """'BASE..TIP' -> (BASE, TIP)."""
    base, sep, tip = text.strip().partition("..")
    if not sep or tip.startswith(".") or not base.strip() or not tip.strip():
        raise UsageError(f"--range '{text}': expected BASE..TIP (two refs, e.g. v7.2.0..HEAD)")
    return base.strip(), tip.strip()


def check_clean(repo: str, refs: tuple[str, ...]) -> None:
    """A local repository whose checked-out HEAD is asked for must not have uncommitted
    changes to tracked files: they are in no commit, so they would not be tested."""
    path = Path(repo).expanduser()
    if not (path / ".git").exists():
        return  # a URL, or a bare repository: nothing checked out
    if not _dirty(path):
        return
    # refs that the checkout does not know (None) are resolved (and reported) later
    head = rev_parse_in(path, "HEAD")
    if head is not None and head in {rev_parse_in(path, ref) for ref in refs}:
        raise UsageError(f"repository {repo} has uncommitted changes on its HEAD, which is "
                         "asked for: they are in no commit and would not be tested; commit "
                         "or stash them")


def _dirty(path: Path) -> bool:
    """Changes to tracked files, staged or not (False too when git cannot tell)."""
    for staged in (("--cached",), ()):
        diff = gitcmd.run_bytes(path, "diff", *staged, "--quiet", user=True)
        if diff.returncode != 0:
            return diff.returncode == 1
    return False


class History:
    """One repository's commits: refs resolved in it (a repository on disk) or its remote,
    the commits read from the mirror in patchcheck's cache."""

    def __init__(self, sources: GitSources, repo: str) -> None:
        self.repo = repo
        self.sources = sources

    def resolve(self, ref: str) -> Tree:
        return self.sources.resolve(GitSpec(self.repo, ref))

    @property
    def mirror(self) -> Path:
        return self.sources.mirror(self.repo)

    def subject(self, sha: str) -> str:
        return gitcmd.subject(self.mirror, sha)

    def between(self, base: str, tip: str) -> list[Commit]:
        """The commits of BASE..TIP, oldest first (first parents: a series as applied)."""
        base_tree, tip_tree = self.resolve(base), self.resolve(tip)
        shas = gitcmd.out(self.mirror, "rev-list", "--reverse", "--first-parent",
                          f"{base_tree.commit}..{tip_tree.commit}").split()
        if not shas:
            raise UsageError(f"range {base}..{tip} of {self.repo} has no commits (is {tip} "
                             f"an ancestor of {base}, or the same commit?)")
        return [Commit(sha, self.subject(sha)) for sha in shas]

    def is_ancestor(self, older: str, newer: str) -> bool:
        return gitcmd.ok(self.mirror, "merge-base", "--is-ancestor", older, newer)

    def ordered(self, good: str, bad: str) -> tuple[Tree, Tree]:
        """The two ends of a bisection, checked: good must be an ancestor of bad."""
        a, b = self.resolve(good), self.resolve(bad)
        if a.commit == b.commit:
            raise UsageError(f"--good {good} and --bad {bad} are the same commit")
        if not self.is_ancestor(a.commit, b.commit):
            if self.is_ancestor(b.commit, a.commit):
                raise UsageError(f"--good {good} is newer than --bad {bad}: swapped? (the "
                                 "good commit must be an ancestor of the bad one)")
            raise UsageError(f"--good {good} is not an ancestor of --bad {bad}: nothing to "
                             "bisect between them")
        return a, b
