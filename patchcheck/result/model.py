"""Result dataclasses: written once, read by every report. results.json is their list."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from patchcheck.paths import slug
from patchcheck.result.files import write_whole
from patchcheck.result.outcome import Observed


@dataclass(frozen=True)
class Case:
    """One migration: machine type, source build -> destination build, guest action, -globals."""

    machine: str
    source: str
    destination: str
    guest: str
    globals: tuple[str, ...] = ()

    @property
    def classname(self) -> str:
        return f"migration.{self.machine}"

    @property
    def name(self) -> str:
        extra = "".join(f"+{g.split('=')[0].split('.')[-1]}={g.split('=')[-1]}"
                        for g in self.globals)
        return f"{self.source}->{self.destination}[{self.guest}]{extra}"

    @property
    def id(self) -> str:
        return f"{self.machine}:{self.name}"

    @property
    def slug(self) -> str:
        """The case's directory name under cases/: a safe name (patchcheck.paths)."""
        return slug(self.id)


@dataclass(frozen=True)
class Side:
    build: str
    qemu_version: str
    fix: str
    fix_applied: str
    has_fix: bool
    binary: str


@dataclass
class CaseResult:
    machine: str
    guest: str
    globals: list[str]
    source: Side
    destination: Side
    observed: Observed
    expected: Observed
    destination_error: str = ""
    message: str = ""
    seconds: float = 0.0
    source_status: str = ""  # what the source said; recorded, never used for the verdict
    destination_status: str = ""
    # What the guest action left in the device, read back (the scenario's GuestState).
    guest_state: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    reproduce: str = ""
    # Which migration of its source QEMU this case was: 1 = the source was started for it;
    # more: a booted Linux guest shared with the cases before it (migrate.run_cases).
    source_migration: int = 1
    # Earlier attempts of this case, each "observed: message (logs: DIR)": a destination whose
    # guest did not survive a migration that loaded is tried once more (migrate.run_cases).
    earlier_attempts: list[str] = field(default_factory=list)
    finished: str = ""  # when it finished (UTC, ISO 8601): cases start while builds still run

    @property
    def case(self) -> Case:
        return Case(self.machine, self.source.build, self.destination.build, self.guest,
                    tuple(self.globals))

    @property
    def deviates(self) -> bool:
        """It came out otherwise than the model says: a failure with another error always
        (the model only knows the bug's), a flaky case where a failure was expected. An
        error or a skipped case observed nothing, and a flaky pass is neither a pass nor a
        deviation: both are counted apart (patchcheck.verdict.judge)."""
        if self.observed.inconclusive:
            return False
        if self.observed == Observed.FLAKY:
            return self.expected != Observed.PASSED
        return self.observed != self.expected

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["observed"] = self.observed.value
        data["expected"] = self.expected.value
        data["id"] = self.case.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["source"] = Side(**data["source"])
        values["destination"] = Side(**data["destination"])
        values["observed"] = Observed(data["observed"])
        values["expected"] = Observed(data["expected"])
        return cls(**values)


def write_json(path: Path, data: Any) -> None:
    """Atomic write: a reader never sees half a file."""
    write_whole(path, json.dumps(data, indent=2, default=str) + "\n")


@dataclass
class RunResults:
    run_id: str
    builds: dict[str, dict[str, Any]]
    cases: list[CaseResult]
    started: str
    seconds: float = 0.0
    partial: bool = False
    host: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "started": self.started, "seconds": self.seconds,
            "partial": self.partial, "host": self.host, "settings": self.settings,
            "builds": self.builds, "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def load(cls, path: Path) -> RunResults:
        data = json.loads(path.read_text())
        return cls(run_id=data["run_id"], builds=data.get("builds", {}),
                   cases=[CaseResult.from_dict(c) for c in data.get("cases", [])],
                   started=data.get("started", ""), seconds=data.get("seconds", 0.0),
                   partial=data.get("partial", False), host=data.get("host", {}),
                   settings=data.get("settings", {}))
