"""Every git command patchcheck runs, with one environment rule (docs/git.md says why git
runs as a subprocess rather than through GitPython).

git runs with an argument list, in the directory given (`git -C <cwd>`), never a shell. Its
environment is the caller's, changed the same way for every command (`environment`):

- removed: every GIT_* variable, except those that only say how to reach a remote
  (GIT_SSH*, GIT_ASKPASS, GIT_PROXY*, GIT_SSL*, GIT_HTTP*, GIT_CURL*, GIT_TERMINAL_PROMPT,
  GIT_TRACE*). GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY, ... would
  point git at another repository than the one given (a `git bisect run` predicate, a hook
  or an alias runs with them set); GIT_AUTHOR_* and GIT_COMMITTER_* would change who made
  patchcheck's commits.
- set: LC_ALL=C and LANGUAGE=C. git's messages are read (`fatal:`, `error: patch failed:`,
  "is the first bad commit"): they are never translated.
- set: GIT_AUTHOR_NAME/EMAIL and GIT_COMMITTER_NAME/EMAIL to patchcheck
  <patchcheck@localhost>: the commits patchcheck makes need no user configuration and are
  the same for every user. `commit_env(date)` fixes their dates too (an imported source
  package: its commit id is a cache key); without it, the time of the commit (an applied
  fix: its tree id is the cache key, not its commit id).
- set: GIT_CEILING_DIRECTORIES to the parent of the directory given: git takes the
  repository in that directory, never one above it (a cache inside a checkout, say).
- patchcheck's own repositories (mirrors, imports, prepared trees, bisection worktrees,
  the subproject store: the default): GIT_CONFIG_NOSYSTEM=1 and GIT_CONFIG_GLOBAL=/dev/null,
  and the GIT_CONFIG_* variables removed. No user or system setting (core.autocrlf,
  commit.gpgSign, apply.whitespace, core.hooksPath, ...) changes what patchcheck writes
  into its cache, its tree ids or its commit ids.
- the user's repository (`user=True`: a ref as the user's git means it, a Tested-by
  identity, `git bisect run`, whose predicate works on the user's repository), and every
  command that reaches a remote (clone, fetch, ls-remote): the user's configuration applies
  as it would to their own git, including the GIT_CONFIG_* variables that say where it is
  or add to it (url.<base>.insteadOf, proxies, credentials, safe.directory).
- last, the variables a call names (`env=`): a private index for an export
  (GIT_INDEX_FILE, GIT_WORK_TREE), the object stores of other repositories to read from
  (GIT_ALTERNATE_OBJECT_DIRECTORIES).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

IDENTITY = {"GIT_AUTHOR_NAME": "patchcheck", "GIT_AUTHOR_EMAIL": "patchcheck@localhost",
            "GIT_COMMITTER_NAME": "patchcheck", "GIT_COMMITTER_EMAIL": "patchcheck@localhost"}
# how to reach a remote: the user's, whatever the repository
_TRANSPORT = ("GIT_SSH", "GIT_ASKPASS", "GIT_PROXY", "GIT_SSL", "GIT_HTTP", "GIT_CURL",
              "GIT_TERMINAL_PROMPT", "GIT_TRACE")
# where the user's configuration is, or what it adds (kept where the user's config applies)
_USER_CONFIG = ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM",
                "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "GIT_CONFIG_PARAMETERS")
_REMOTE = ("clone", "fetch", "ls-remote")  # commands that read the user's configuration
# Prepared trees share inodes (tree/link.py), and link() changes an inode's ctime: git runs on
# them with core.trustctime=false (size, mtime and inode must still match).
SHARED_INODES = ("-c", "core.trustctime=false")


class GitError(Exception):
    """A git command that exited with an error (or ran out of time)."""

    def __init__(self, args: Sequence[str], status: int, stderr: str) -> None:
        self.command = list(args)
        self.status = status
        self.stderr = stderr
        super().__init__(f"git {' '.join(self.command)}: {reason(self)}")


def reason(exc: GitError) -> str:
    """git's reason in words: its `fatal:`/`error:` lines (joined), else its last line."""
    lines = [ln.strip() for ln in exc.stderr.splitlines() if ln.strip()]
    errors = [re.sub(r"^(fatal|error):\s*", "", ln) for ln in lines
              if ln.startswith(("fatal:", "error:"))]
    text = "; ".join(dict.fromkeys(errors)) or (lines[-1] if lines else "")
    return text or f"git exited with status {exc.status}"


def environment(cwd: Path | str, *, user: bool = False,
                env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git command run in `cwd` (the rule: see the module's text)."""
    keep = _TRANSPORT + (_USER_CONFIG if user else ())
    out = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k.startswith(keep)}
    out.update(LC_ALL="C", LANGUAGE="C", **IDENTITY)
    out["GIT_CEILING_DIRECTORIES"] = str(Path(cwd).absolute().parent)
    if not user:
        out.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    out.update(env or {})
    return out


def _subcommand(args: Sequence[str]) -> str:
    """The git command of an argument list (after `-c name=value` options)."""
    rest = list(args)
    while rest and rest[0] == "-c":
        rest = rest[2:]
    return rest[0] if rest else ""


def _env(cwd: Path | str, args: Sequence[str], user: bool,
         env: Mapping[str, str] | None) -> dict[str, str]:
    return environment(cwd, user=user or _subcommand(args) in _REMOTE, env=env)


def run_bytes(cwd: Path | str, *args: str, stdin: bytes | None = None, user: bool = False,
              env: Mapping[str, str] | None = None, timeout: float | None = None
              ) -> subprocess.CompletedProcess[bytes]:
    """`git -C cwd args...`, its output as bytes; a failure is the caller's to read
    (returncode). Running out of `timeout` reads as exit status -9."""
    command = ["git", "-C", str(cwd), *args]
    try:
        return subprocess.run(command, input=stdin, capture_output=True, check=False,
                              env=_env(cwd, args, user, env), timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -9, b"",
                                           f"fatal: timed out after {timeout} s".encode())


def run(cwd: Path | str, *args: str, stdin: str | None = None, user: bool = False,
        env: Mapping[str, str] | None = None, timeout: float | None = None
        ) -> subprocess.CompletedProcess[str]:
    """As run_bytes, the output as text (paths that are not UTF-8 kept: surrogateescape)."""
    done = run_bytes(cwd, *args, stdin=None if stdin is None else stdin.encode(), user=user,
                     env=env, timeout=timeout)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8", "surrogateescape"),
        done.stderr.decode("utf-8", "replace"))


def out(cwd: Path | str, *args: str, stdin: str | None = None, user: bool = False,
        env: Mapping[str, str] | None = None, timeout: float | None = None) -> str:
    """git's output (its last newline dropped); GitError when it fails."""
    done = run(cwd, *args, stdin=stdin, user=user, env=env, timeout=timeout)
    if done.returncode != 0:
        raise GitError(args, done.returncode, done.stderr)
    return done.stdout.removesuffix("\n")


def ok(cwd: Path | str, *args: str, user: bool = False) -> bool:
    """Whether the git command succeeds (a test: `merge-base --is-ancestor`, `cat-file -e`)."""
    return run_bytes(cwd, *args, user=user).returncode == 0


def popen(cwd: Path | str, *args: str, user: bool = False,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """A running git command whose output (stderr with it) is read as it comes."""
    return subprocess.Popen(["git", "-C", str(cwd), *args], env=_env(cwd, args, user, env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace")


def commit_env(date: str | None = None) -> dict[str, str]:
    """The variables of a commit made at a fixed date (the identity is always set)."""
    return {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}


def git_path(tree: Path, name: str) -> Path:
    """Where the repository at `tree` keeps `name` (`index`: a linked worktree's own); the
    current directory's name "." (no file) when `tree` is no repository."""
    done = run(tree, "rev-parse", "--path-format=absolute", "--git-path", name)
    return Path(done.stdout.strip() if done.returncode == 0 else ".")


def common_dir(path: Path, *, user: bool = False) -> Path | None:
    """The git directory a repository (or a linked worktree of it) keeps its objects and
    refs in; None when `path` is no repository."""
    done = run(path, "rev-parse", "--path-format=absolute", "--git-common-dir", user=user)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def tree_id(path: Path) -> str:
    """The git tree id of the checked-out commit at `path` (GitError: none)."""
    return out(path, "rev-parse", "--verify", "HEAD^{tree}")


def subject(repo: Path, commit: str) -> str:
    """The first line of a commit's message."""
    return out(repo, "show", "-s", "--format=%B", commit, "--").split("\n", 1)[0]


def is_repository(path: Path | str) -> bool:
    """Whether `path` is a git repository (its work tree or its git directory), for the
    user's git: a directory inside one is not."""
    return Path(path).is_dir() and ok(path, "rev-parse", "--git-dir", user=True)
