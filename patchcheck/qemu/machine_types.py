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


# Both x86 PC families, for the compatibility sweep: pc-q35-X.Y and pc-i440fx-X.Y.
_PC = re.compile(r"^(pc-(?:q35|i440fx))-(\d+(?:\.\d+)+)$")
FAMILIES = ("pc-q35", "pc-i440fx")


def family_version(name: str) -> tuple[str, tuple[int, ...]]:
    """("pc-q35", (4, 0, 1)) for "pc-q35-4.0.1"; a name of neither family is a UsageError."""
    match = _PC.match(name)
    if not match:
        raise UsageError(f"'{name}' is not a pc-q35-X.Y or pc-i440fx-X.Y machine type")
    return match.group(1), tuple(int(p) for p in match.group(2).split("."))


def is_pc(name: str) -> bool:
    return bool(_PC.match(name))


def order_pc(machines: Iterable[str]) -> list[str]:
    """Both families, q35 first, each in numeric order; other names dropped."""
    return sorted({m for m in machines if _PC.match(m)},
                  key=lambda m: (FAMILIES.index(family_version(m)[0]), family_version(m)[1]))


def select_pc(machines: Sequence[str], spec: str) -> list[str]:
    """Filter machine types of both families by a list of names, families ("q35", "i440fx")
    and inclusive ranges of one family ("pc-q35-5.2..7.2", "pc-i440fx-6.0.."); a name that
    is not among `machines` is a UsageError (the caller says which build lacks it)."""
    ordered = order_pc(machines)
    if not spec.strip():
        return ordered
    chosen: set[str] = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        chosen |= set(_select_part(ordered, part))
    return order_pc(chosen)


def _select_part(ordered: Sequence[str], part: str) -> list[str]:
    if part in ("q35", "i440fx"):
        return [m for m in ordered if family_version(m)[0] == f"pc-{part}"]
    if ".." in part:
        low_text, _, high_text = part.partition("..")
        family, low = family_version(low_text)
        high = family_version(high_text if high_text.startswith("pc-")
                              else f"{family}-{high_text}")[1] if high_text else None
        if high is not None and low > high:
            raise UsageError(f"machine range '{part}' is empty (its start is after its end)")
        return [m for m in ordered if family_version(m)[0] == family
                and family_version(m)[1] >= low and (high is None or family_version(m)[1] <= high)]
    family_version(part)
    if part not in ordered:
        raise UsageError(f"machine type '{part}' is not one that both builds know")
    return [part]
