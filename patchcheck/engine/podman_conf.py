"""The containers.conf drop-in scripts/setup-host writes for Podman
(/etc/containers/containers.conf.d/patchcheck.conf):

- `runtime = "runc"`: with crun installed Podman prefers it, and crun fails on hosts with
  cgroups in hybrid mode;
- `default_ulimits` no higher than the service's own limits: what `podman run` (the
  reproducers a person pastes) asks for. patchcheck's own containers and image builds pass
  these limits explicitly (podman_runtime.py) and do not depend on this file.

    python3 -m patchcheck.engine.podman_conf [unix:///run/podman/podman.sock]

prints the drop-in for the service answering there (SAFE_LIMITS when its process cannot be
read; without a socket: runc only, for the service's first start).
"""

from __future__ import annotations

import sys

from patchcheck.engine.podman import Limits, service_limits


def dropin(limits: Limits | None) -> str:
    lines = ["# Written by patchcheck's scripts/setup-host (patchcheck/engine/podman_conf.py).", ""]
    if limits is not None:
        values = ", ".join(f'"{name}={value}:{value}"' for name, value in limits.items())
        lines += ["[containers]", f"default_ulimits = [{values}]", ""]
    lines += ["[engine]", 'runtime = "runc"']
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    sys.stdout.write(dropin(service_limits(argv[1]) if len(argv) > 1 else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
