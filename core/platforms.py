"""``platform`` parameters (``os[/arch[/variant]]``): dockyard runs Linux images of the host's architecture."""

from __future__ import annotations

import platform as _platform

from dockyard.errors import InvalidParameter

__all__ = ["check", "host_arch"]

_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_arch() -> str:
    """The host's architecture as OCI names it (``amd64``, ``arm64``...)."""
    machine = _platform.machine()
    return _ARCH.get(machine, machine)


def check(value: str) -> None:
    """Accept ``""``, ``linux`` and ``linux/<host arch>[/variant]``; refuse any other platform with a 400."""
    if not value:
        return
    parts = value.lower().split("/")
    if len(parts) > 3 or parts[0] != "linux" or (len(parts) > 1 and _ARCH.get(parts[1], parts[1]) != host_arch()):
        raise InvalidParameter(
            f"platform {value!r} is not supported by this daemon: it runs linux/{host_arch()} images only"
        )
