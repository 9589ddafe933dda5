"""Fix states and how they are put into a tree.

A build asks for one fix state:
  none        the tree without any known fix (a fix the tree already has is reverted)
  reverted    like none, but it is an error when the tree carries no known fix
  as-is       the tree as it is; whether it carries a known fix is detected (series, bisect)
  v1, v2      the scenario's known fixes (patchcheck/scenarios/<name>/patches/)
  <path>      a user patch file or a `git format-patch` mbox
  none+<fix>  the tree without any known fix (as `none`), then <fix> (a path or a known
              fix's name) applied: a patch judged on a tree that has the bug (`check --patch`)

Patches are applied with git (`--3way` as the fallback; `git am --3way` for an mbox); a
patch that reverse-applies is already present and is reported as such rather than applied
again. Whether a tree carries a known fix is detected by ancestry first (the fix's upstream
commit is an ancestor of the tree's, where the repository has that commit), then by text
(the patch reverse-applies, or every block of lines it adds is in its file: the code around
it may have moved). When only part of a fix's lines are there and neither tells, the state
is unknown (FixStateUnknown): the tree without the fix is not built rather than guessed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from patchcheck.errors import BuildFailed, UsageError
from patchcheck.source import gitcmd

NO_FIX = ("none", "reverted")
AS_IS = "as-is"
ON_BUG = "none+"  # prefix: the tree without any known fix, then this fix applied


class FixStateUnknown(BuildFailed):
    """Neither ancestry nor text tells whether a tree carries a known fix: the commit
    cannot be tested for it (check: 125, series: untestable, bisect: skipped)."""


@dataclass(frozen=True)
class Patch:
    name: str
    path: Path

    @property
    def text(self) -> bytes:
        return self.path.read_bytes()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    @property
    def is_mbox(self) -> bool:
        return self.text.startswith(b"From ")


@dataclass(frozen=True)
class FixResult:
    """What was asked and what was done; recorded in every build record."""

    state: str  # as requested: none, reverted, v1, v2 or a patch path
    patch: str | None  # the patch applied or reverted
    applied: str  # clean | 3way | reverted | already-present | unchanged
    has_fix: bool  # does the resulting tree carry the fix (input to the expectation model)
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class KnownFixes:
    """A scenario's fixes by name, in the order a tree is searched for one it carries."""

    scenario: str
    patches: tuple[Patch, ...]
    upstream: tuple[tuple[str, str], ...] = ()  # (fix name, upstream commit id)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.patches)

    def get(self, name: str) -> Patch | None:
        return next((p for p in self.patches if p.name == name), None)

    def commit_of(self, name: str) -> str:
        return dict(self.upstream).get(name, "")

    @property
    def digest(self) -> str:
        """Of every known fix's content: which fix `none` takes out depends on all of them."""
        return hashlib.sha256("".join(p.digest for p in self.patches).encode()).hexdigest()


def known_fixes(scenario: str = "") -> KnownFixes:
    """The known fixes of a scenario ("": the default one)."""
    from patchcheck.scenarios import registry as scenarios

    scen = scenarios.get(scenario)
    return KnownFixes(scen.name, tuple(Patch(name, path) for name, path in scen.fixes().items()),
                      tuple(scen.upstream_commits().items()))


def on_bug(state: str) -> str:
    """`none+<fix>` -> <fix>; any other state -> ""."""
    return state.removeprefix(ON_BUG) if state.startswith(ON_BUG) else ""


def resolve(state: str, known: KnownFixes | None = None) -> Patch | None:
    """Turn a fix state into the patch it names (None for none/reverted/as-is); validate
    files."""
    if state in (*NO_FIX, AS_IS):
        return None
    known = known or known_fixes()
    if on_bug(state):
        return resolve(on_bug(state), known)
    patch = known.get(state)
    if patch is not None:
        return patch
    path = Path(state).expanduser()
    if not path.is_file():
        names = ", ".join(["none", "reverted", AS_IS, *known.names, "FILE"])
        raise UsageError(f"fix '{state}': no such patch file (states: {names})")
    data = path.read_bytes()
    if not data.strip():
        raise UsageError(f"patch {path}: the file is empty")
    if b"\0" in data[:8192]:
        raise UsageError(f"patch {path}: binary file, not a patch")
    if not re.search(rb"^(diff --git |--- |\+\+\+ )", data, re.M):
        raise UsageError(f"patch {path}: not a patch (no diff in it)")
    return Patch(path.name, path.resolve())


def fix_key(state: str, known: KnownFixes | None = None) -> str:
    """A stable key for a fix state: the scenario's name and the fix's (also for none and
    reverted: they revert the scenario's fix), or the hash of the user patch's content."""
    known = known or known_fixes()
    if on_bug(state):
        return f"{fix_key('none', known)}+{fix_key(on_bug(state), known)}"
    patch = resolve(state, known)
    if patch is None:  # which fix a tree loses depends on the scenario's known fixes
        return f"{known.scenario}-{state}-{known.digest[:12]}" if known.patches else state
    if known.get(state) is not None:  # its content too: an edited patch is another tree
        return f"{known.scenario}-{state}-{patch.digest[:12]}"
    return f"file-{patch.digest[:16]}"


def _paths(tree: Path, patch: Patch) -> list[str]:
    out = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "apply", "--numstat", "-", stdin=patch.text)
    if out.returncode != 0:
        raise UsageError(f"patch {patch.path}: {_first_error(out.stderr)}")
    paths = [line.split("\t", 2)[2] for line in out.stdout.decode().splitlines() if "\t" in line]
    if not paths:
        raise UsageError(f"patch {patch.path}: not a patch (it changes no file)")
    for p in paths:
        if p.startswith("/") or ".." in Path(p).parts:
            raise UsageError(f"patch {patch.path}: touches '{p}', outside the tree")
    return paths


def _first_error(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("error: patch failed:"):
            return "does not apply: hunk at " + line.split(":", 2)[2].strip()
    return (lines[0].removeprefix("error: ") if lines else "git apply failed")


def applies(tree: Path, patch: Patch, *, reverse: bool = False) -> bool:
    args = ["apply", "--check", *(["--reverse"] if reverse else []), "-"]
    return gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, *args, stdin=patch.text).returncode == 0


@dataclass(frozen=True)
class Detected:
    """Whether a tree carries one of the known fixes, and how that was told."""

    state: str  # present | absent | unknown
    patch: Patch | None = None  # the fix present
    how: str = ""  # "ancestry (<commit>)" | "text"


def _has_ancestor(tree: Path, commit: str) -> bool | None:
    """Is `commit` an ancestor of the tree's HEAD (None: the repository lacks it)."""
    if not gitcmd.ok(tree, *gitcmd.SHARED_INODES, "cat-file", "-e", f"{commit}^{{commit}}"):
        return None
    return gitcmd.ok(tree, *gitcmd.SHARED_INODES, "merge-base", "--is-ancestor", commit, "HEAD")


def detect(tree: Path, known: KnownFixes | None = None) -> Detected:
    """Which known fix the checked-out tree carries: by ancestry, then by text (the patch
    reverse-applies, or every block of lines it adds is in its file, wherever the code
    around it moved). Absent when no block of any known fix is there; unknown when only
    some blocks of one are (or a fix that adds nothing neither applies nor reverts)."""
    known = known or known_fixes()
    partial = False
    for patch in known.patches:
        commit = known.commit_of(patch.name)
        if commit and _has_ancestor(tree, commit):
            return Detected("present", patch, f"ancestry ({commit[:12]})")
        if applies(tree, patch, reverse=True):
            return Detected("present", patch, "text")
        found, total = _blocks_found(tree, patch)
        if total and found == total:
            return Detected("present", patch, "text (its lines, moved)")
        partial = partial or (found > 0 if total else not applies(tree, patch))
    return Detected("unknown" if partial else "absent")


def added_blocks(patch: Patch) -> list[tuple[str, str]]:
    """(path, block) for each run of lines the patch adds, whitespace folded."""
    blocks: list[tuple[str, str]] = []
    path, run = "", []
    for line in [*patch.text.decode(errors="replace").splitlines(), ""]:
        if line.startswith("+") and not line.startswith("+++"):
            run.append(line[1:])
            continue
        block = " ".join(" ".join(run).split())
        if block:
            blocks.append((path, block))
        run = []
        if line.startswith("+++ "):
            path = line[4:].strip().removeprefix("b/")
    return blocks


def _blocks_found(tree: Path, patch: Patch) -> tuple[int, int]:
    """How many of the patch's added blocks the tree's files hold, of how many."""
    blocks = added_blocks(patch)
    texts: dict[str, str] = {}
    for path in {p for p, _ in blocks}:
        try:
            texts[path] = " ".join((tree / path).read_text(errors="replace").split())
        except OSError:
            texts[path] = ""
    return sum(1 for p, block in blocks if block in texts[p]), len(blocks)


def present_fix(tree: Path, known: KnownFixes | None = None) -> Patch | None:
    """The known fix the tree already contains, if any (FixStateUnknown: cannot tell)."""
    known = known or known_fixes()
    found = detect(tree, known)
    if found.state == "unknown":
        raise FixStateUnknown(
            f"fix state unknown: the commit holds part of a known {known.scenario} fix "
            f"({', '.join(known.names)}), which does not revert from it, and ancestry does "
            "not tell; the tree without the fix is not built rather than guessed")
    return found.patch


def _commit(tree: Path, message: str) -> None:
    gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "add", "-A")
    out = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "commit", "-q", "--no-verify", "--allow-empty",
                           "-m", message)
    if out.returncode != 0:
        raise UsageError(f"cannot commit the fix in {tree}: {_first_error(out.stderr)}")


def apply_fix(tree: Path, state: str, known: KnownFixes | None = None) -> FixResult:
    """Bring the checked-out `tree` (a git worktree) into fix state `state`; commit the result."""
    known = known or known_fixes()
    if state == AS_IS:
        found = present_fix(tree, known)
        if found is None:
            return FixResult(state, None, "unchanged", has_fix=False)
        return FixResult(state, found.name, "already-present", has_fix=True,
                         note=f"the tree carries {found.name}; built as it is")
    if on_bug(state):  # the tree with the bug first, then the fix under test on it
        without = _without(tree, "none", known)
        patch = resolve(state, known)
        assert patch is not None  # on_bug names a fix
        result = _with(tree, state, patch, found=None)
        note = "; ".join(n for n in (without.note, result.note) if n)
        return dataclasses.replace(result, note=note)
    patch = resolve(state, known)
    if patch is None:
        return _without(tree, state, known)
    return _with(tree, state, patch, detect(tree, known) if known.get(state) else None)


def _without(tree: Path, state: str, known: KnownFixes) -> FixResult:
    """`none` or `reverted`: the known fix the tree carries is reverted."""
    present = present_fix(tree, known)
    if present is None:
        if state == "reverted":
            raise UsageError(f"fix 'reverted': the tree at {tree} carries no known fix to revert")
        return FixResult(state, None, "unchanged", has_fix=False)
    out = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "apply", "--index", "--reverse", "-",
                           stdin=present.text)
    if out.returncode != 0:
        raise UsageError(f"cannot revert {present.name}: {_first_error(out.stderr)}")
    _commit(tree, f"patchcheck: revert {present.name}")
    return FixResult(state, present.name, "reverted", has_fix=False,
                     note=f"the tree already carried {present.name}; reverted it")


def _with(tree: Path, state: str, patch: Patch, found: Detected | None) -> FixResult:
    """The patch applied, or found already there. `found`: what `detect` saw in the tree
    as it is, for a known fix (None: a user's patch, or a tree changed first)."""
    if found is not None and found.patch == patch:
        return FixResult(state, patch.name, "already-present", has_fix=True,
                         note=f"{patch.name} is already in the tree (by {found.how}); "
                              "built as it is")
    _paths(tree, patch)
    if applies(tree, patch, reverse=True):
        return FixResult(state, patch.name, "already-present", has_fix=True,
                         note=f"{patch.name} is already in the tree; built as it is")
    if patch.is_mbox:
        out = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "am", "--3way", "--keep-cr",
                               stdin=patch.text)
        if out.returncode != 0:
            gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "am", "--abort")
            check = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "apply", "--check", "-",
                                     stdin=patch.text)
            detail = _first_error(check.stderr if check.returncode else out.stderr)
            raise UsageError(f"patch {patch.path}: {detail}")
        return FixResult(state, patch.name, "clean", has_fix=True, note="applied with git am")
    how = "clean"
    out = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "apply", "--index", "-", stdin=patch.text)
    if out.returncode != 0:
        how = "3way"
        out3 = gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "apply", "--index", "--3way", "-",
                                stdin=patch.text)
        if out3.returncode != 0:
            gitcmd.run_bytes(tree, *gitcmd.SHARED_INODES, "reset", "-q", "--hard")
            raise UsageError(f"patch {patch.path}: {_first_error(out.stderr)}")
    _commit(tree, f"patchcheck: apply {patch.name}")
    return FixResult(state, patch.name, how, has_fix=True)
