"""Dockerfile-style config changes for ``commit --change`` and ``import --change``.

Only instructions that change the image config are allowed (Docker's list):
CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
"""

from __future__ import annotations

import json
import shlex

from dockyard.errors import InvalidParameter
from dockyard.models.container import ContainerConfig

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def _command(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:  # legacy "ENV KEY value with spaces"
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise InvalidParameter(f"expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


def apply(config: ContainerConfig, changes: list[str]) -> ContainerConfig:
    """Return ``config`` with each change line applied in order."""
    update = config.model_dump(by_alias=False)
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction not in ALLOWED:
            raise InvalidParameter(f"{instruction} is not a valid change command")
        if instruction == "CMD":
            update["cmd"] = _command(rest)
        elif instruction == "ENTRYPOINT":
            update["entrypoint"] = _command(rest)
        elif instruction == "ENV":
            env = list(update.get("env") or [])
            for key, value in _pairs(rest):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            update["env"] = env
        elif instruction == "LABEL":
            update["labels"] = {**(update.get("labels") or {}), **dict(_pairs(rest))}
        elif instruction == "EXPOSE":
            ports = dict(update.get("exposed_ports") or {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            update["exposed_ports"] = ports
        elif instruction == "VOLUME":
            paths = json.loads(rest) if rest.startswith("[") else rest.split()
            update["volumes"] = {**(update.get("volumes") or {}), **{p: {} for p in paths}}
        elif instruction == "WORKDIR":
            update["working_dir"] = rest
        elif instruction == "USER":
            update["user"] = rest
        elif instruction == "STOPSIGNAL":
            update["stop_signal"] = rest
        elif instruction == "ONBUILD":
            update["on_build"] = [*(update.get("on_build") or []), rest]
    return ContainerConfig.model_validate(update)
