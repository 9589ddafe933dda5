"""Scenarios: one package per bug, whose scenario.py defines `SCENARIO` (a
scenarios.base.Scenario).

Adding a bug is a new package and one line in REGISTRY.
"""

from __future__ import annotations

from importlib import import_module

from patchcheck.errors import UsageError
from patchcheck.scenarios.base import Scenario

REGISTRY = {
    "pds": "patchcheck.scenarios.pds.scenario",
    "aer": "patchcheck.scenarios.aer.scenario",
}
DEFAULT = "pds"


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str = "") -> Scenario:
    """The scenario of that name ("": the default one)."""
    name = name or DEFAULT
    if name not in REGISTRY:
        raise UsageError(f"unknown scenario '{name}' (known: {', '.join(names())})")
    scenario = import_module(REGISTRY[name]).SCENARIO
    if not isinstance(scenario, Scenario):
        raise TypeError(f"{REGISTRY[name]}.SCENARIO is not a Scenario")
    return scenario
