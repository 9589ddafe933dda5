"""Machine types by name: pc-q35-X.Y parsed, ordered numerically, and selected by a list or a
range as a person writes it ("6.0,7.2", "5.2..7.2")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from patchcheck.errors import UsageError

_Q35 = re.compile(r"^pc-q35-(\d+(?:\.\d+)+)$")


def q35_version(name: str) -> tuple[int, ...]:
    match = _Q35.match(name)
    if not match:
        raise UsageError(f"'{name}' is not a pc-q35-X.Y machine type")
    return tuple(int(p) for p in match.group(1).split("."))


def order(machines: Iterable[str]) -> list[str]:
    """Numeric order: pc-q35-4.0 < pc-q35-4.0.1 < pc-q35-4.1 < ... < pc-q35-9.2 < pc-q35-10.0."""
    return sorted({m for m in machines if _Q35.match(m)}, key=q35_version)


def as_type(text: str) -> str:
    text = text.strip()
    return text if text.startswith("pc-q35-") else f"pc-q35-{text}"


def select(machines: Sequence[str], spec: str) -> list[str]:
    """Filter ordered machine types by a list ("6.0,7.2") or an inclusive range ("5.2..7.2")."""
    ordered = order(machines)
    if not spec.strip():
        return ordered
    chosen: list[str] = []
    for part in (p for p in spec.split(",") if p.strip()):
        if ".." in part:
            low_text, _, high_text = part.partition("..")
            low = q35_version(as_type(low_text)) if low_text.strip() else ()
            high = q35_version(as_type(high_text)) if high_text.strip() else None
            if high is not None and low > high:
                raise UsageError(f"machine range '{part}' is empty (its start is after its end)")
            chosen += [m for m in ordered
                       if q35_version(m) >= low and (high is None or q35_version(m) <= high)]
        else:
            name = as_type(part)
            q35_version(name)
            if name in ordered:
                chosen.append(name)
    result = order(chosen)
    if not result:
        raise UsageError(f"--machines '{spec}' matches none of the common machine types "
                         f"({ordered[0] if ordered else '?'} .. {ordered[-1] if ordered else '?'})")
    return result


def check_filter(spec: str) -> None:
    """Reject a malformed --machines value before anything is built."""
    for part in (p for p in spec.split(",") if p.strip()):
        for end in part.split("..") if ".." in part else [part]:
            if end.strip():
                q35_version(as_type(end))
        if ".." in part:
            low, _, high = part.partition("..")
            if low.strip() and high.strip() and \
                    q35_version(as_type(low)) > q35_version(as_type(high)):
                raise UsageError(f"machine range '{part}' is empty (its start is after its end)")
