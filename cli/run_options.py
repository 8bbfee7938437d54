"""Options ``run`` and ``create`` share beyond the basics: ports and networks,
volumes, restart policy, resources, labels, env files.

Each is an ``Annotated`` type so both commands declare them identically;
:func:`apply` folds their values into a create body the way the docker CLI does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import CliError
from .network import port_bindings

NET, STORAGE, RES, META, SEC = "Network", "Volumes", "Resources", "Metadata", "Security"


def _opt(*names: str, help: str, panel: str) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel)


# \\[ is rich markup for a literal [
Publish = Annotated[
    list[str] | None,
    _opt(
        "-p",
        "--publish",
        help="Publish a container's port(s) to the host (\\[ip:]\\[hostPort:]containerPort\\[/udp])",
        panel=NET,
    ),
]
PublishAll = Annotated[bool, _opt("-P", "--publish-all", help="Publish all exposed ports to random ports", panel=NET)]
Network = Annotated[
    str,
    _opt(
        "--network",
        "--net",
        help="Connect a container to a network (bridge, none, host, container:<name|id>, or a network name)",
        panel=NET,
    ),
]
Dns = Annotated[list[str] | None, _opt("--dns", help="Set custom DNS servers", panel=NET)]
AddHost = Annotated[list[str] | None, _opt("--add-host", help="Add a custom host-to-IP mapping (host:ip)", panel=NET)]
Expose = Annotated[list[str] | None, _opt("--expose", help="Expose a port or a range of ports", panel=NET)]
Volume = Annotated[
    list[str] | None,
    _opt("-v", "--volume", help="Bind mount a volume ([host-dir|name:]container-dir[:ro|rw])", panel=STORAGE),
]
Bind = Annotated[
    list[str] | None,
    _opt("-b", "--bind", help="Bind mount host:container:rw|ro (Docker 0.x's spelling of -v)", panel=STORAGE),
]
VolumesFrom = Annotated[
    list[str] | None,
    _opt("--volumes-from", help="Mount volumes from the specified container(s) (CONTAINER[:ro])", panel=STORAGE),
]
Restart = Annotated[
    str, _opt("--restart", help="Restart policy: no, on-failure[:max-retries], always, unless-stopped", panel=META)
]
Label = Annotated[list[str] | None, _opt("-l", "--label", help="Set meta data on a container", panel=META)]
LogDriver = Annotated[
    str,
    _opt("--log-driver", help="Logging driver for the container (json-file, none; default: the daemon's)", panel=META),
]
LogOpt = Annotated[
    list[str] | None, _opt("--log-opt", help="Log driver options (max-size=10m, max-file=3)", panel=META)
]
EnvFile = Annotated[list[Path] | None, _opt("--env-file", help="Read in a file of environment variables", panel=META)]
Memory = Annotated[str | None, _opt("-m", "--memory", help="Memory limit (e.g. 64m, 1g)", panel=RES)]
MemorySwap = Annotated[str | None, _opt("--memory-swap", help="Memory + swap limit; -1 for unlimited swap", panel=RES)]
CpuShares = Annotated[int, _opt("-c", "--cpu-shares", help="CPU shares (relative weight)", panel=RES)]
CpusetCpus = Annotated[str, _opt("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)", panel=RES)]
PidsLimit = Annotated[int, _opt("--pids-limit", help="Tune container pids limit (-1 for unlimited)", panel=RES)]

Privileged = Annotated[
    bool,
    _opt(
        "--privileged",
        help="Give extended privileges to this container (every capability and device, no seccomp filter)",
        panel=SEC,
    ),
]
CapAdd = Annotated[list[str] | None, _opt("--cap-add", help="Add Linux capabilities", panel=SEC)]
CapDrop = Annotated[list[str] | None, _opt("--cap-drop", help="Drop Linux capabilities", panel=SEC)]
SecurityOpt = Annotated[
    list[str] | None,
    _opt(
        "--security-opt",
        help="Security options (seccomp=unconfined|"
        "<profile.json>, no-new-privileges, apparmor=<profile>, "
        "systempaths=unconfined)",
        panel=SEC,
    ),
]
ReadOnly = Annotated[bool, _opt("--read-only", help="Mount the container's root filesystem as read only", panel=SEC)]
Device = Annotated[
    list[str] | None, _opt("--device", help="Add a host device to the container (host[:container][:rwm])", panel=SEC)
]
DeviceCgroupRule = Annotated[
    list[str] | None,
    _opt("--device-cgroup-rule", help="Add a rule to the cgroup allowed devices list ('c 1:3 mr')", panel=SEC),
]
Sysctl = Annotated[list[str] | None, _opt("--sysctl", help="Namespaced kernel parameters (name=value)", panel=SEC)]
Userns = Annotated[str, _opt("--userns", help="User namespace to use ('host' or empty)", panel=SEC)]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(value: str | None, flag: str) -> int:
    """docker's RAMInBytes: ``64m`` -> 67108864; ``-1`` passes through."""
    if value is None or value == "":
        return 0
    if value.strip() == "-1":
        return -1
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)b?\s*", value.lower())
    if not match:
        raise CliError(f"invalid argument {value!r} for \"{flag}\" flag: invalid size: '{value}'")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_restart(value: str) -> dict[str, Any]:
    name, _, count = (value or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise CliError(f"invalid restart policy {value!r}")
    if count and (name != "on-failure" or not count.isdigit()):
        raise CliError(f"invalid restart policy {value!r}: a maximum retry count needs on-failure")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def read_env_files(paths: list[Path] | None) -> list[str]:
    env = []
    for path in paths or []:
        try:
            text = path.read_text()
        except OSError as exc:
            raise CliError(f"open {path}: {exc.strerror}") from None
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                env.append(line)
    return env


def apply(
    body: dict[str, Any],
    *,
    publish: list[str] | None = None,
    publish_all: bool = False,
    network: str = "default",
    dns: list[str] | None = None,
    add_host: list[str] | None = None,
    expose: list[str] | None = None,
    volume: list[str] | None = None,
    bind: list[str] | None = None,
    volumes_from: list[str] | None = None,
    restart: str = "no",
    label: list[str] | None = None,
    env_file: list[Path] | None = None,
    memory: str | None = None,
    memory_swap: str | None = None,
    cpu_shares: int = 0,
    cpuset_cpus: str = "",
    pids_limit: int = 0,
) -> dict[str, Any]:
    host = body["HostConfig"]
    bindings, exposed = port_bindings(publish or [])
    for port in expose or []:
        exposed[port if "/" in port else f"{port}/tcp"] = {}
    binds = [*(volume or []), *(bind or [])]
    host.update(
        {
            "PortBindings": bindings,
            "PublishAllPorts": publish_all,
            "NetworkMode": network or "default",
            "Dns": dns or [],
            "ExtraHosts": add_host or None,
            "Binds": binds or None,
            "VolumesFrom": volumes_from or None,
            "RestartPolicy": parse_restart(restart),
            "Memory": parse_bytes(memory, "--memory"),
            "MemorySwap": parse_bytes(memory_swap, "--memory-swap"),
            "CpuShares": cpu_shares,
            "CpusetCpus": cpuset_cpus,
            "PidsLimit": pids_limit or None,
        }
    )
    if exposed:
        body["ExposedPorts"] = {**(body.get("ExposedPorts") or {}), **exposed}
    if label:
        body["Labels"] = {k: v for k, _, v in (item.partition("=") for item in label)}
    file_env = read_env_files(env_file)
    if file_env:
        body["Env"] = [*file_env, *(body.get("Env") or [])]
    return body


def parse_device(spec: str) -> dict[str, str]:
    """``--device host[:container][:permissions]`` as the docker CLI parses it."""
    parts = spec.split(":")
    permissions = "rwm"
    if len(parts) > 1 and re.fullmatch(r"[rwm]{1,3}", parts[-1]):
        permissions = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise CliError(f"invalid device specification: {spec}")
    return {
        "PathOnHost": parts[0],
        "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
        "CgroupPermissions": permissions,
    }


def security_opts(options: list[str] | None, host: dict[str, Any]) -> list[str]:
    """``--security-opt`` as the docker CLI sends it: a seccomp profile's *content*
    rather than its path, and ``systempaths=unconfined`` as empty masked/read-only lists."""
    out = []
    for opt in options or []:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp" and sep and value not in ("unconfined", "builtin"):
            try:
                profile = json.loads(Path(value).read_text())
            except OSError as exc:
                raise CliError(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None
            except ValueError as exc:
                raise CliError(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
            out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
        elif key == "systempaths" and sep:
            if value != "unconfined":
                raise CliError(f"invalid --security-opt systempaths={value}: only 'unconfined' is accepted")
            host["MaskedPaths"], host["ReadonlyPaths"] = [], []
        else:
            out.append(opt)
    return out


def apply_logging(body: dict[str, Any], *, log_driver: str = "", log_opt: list[str] | None = None) -> dict[str, Any]:
    """``--log-driver`` and ``--log-opt KEY=VALUE`` into ``HostConfig.LogConfig``; the daemon checks them
    (an empty driver is its default)."""
    config = {}
    for item in log_opt or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f'invalid argument {item!r} for "--log-opt" flag: log options must be key=value')
        config[key] = value
    body["HostConfig"]["LogConfig"] = {"Type": log_driver, "Config": config}
    return body


def apply_security(
    body: dict[str, Any],
    *,
    privileged: bool = False,
    cap_add: list[str] | None = None,
    cap_drop: list[str] | None = None,
    security_opt: list[str] | None = None,
    read_only: bool = False,
    device: list[str] | None = None,
    device_cgroup_rule: list[str] | None = None,
    sysctl: list[str] | None = None,
    userns: str = "",
) -> dict[str, Any]:
    """Fold the Security options into a create body."""
    host = body["HostConfig"]
    sysctls = {}
    for item in sysctl or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f'invalid argument {item!r} for "--sysctl" flag: sysctl must be name=value')
        sysctls[key] = value
    host.update(
        {
            "Privileged": privileged,
            "CapAdd": cap_add or None,
            "CapDrop": cap_drop or None,
            "SecurityOpt": security_opts(security_opt, host) or None,
            "ReadonlyRootfs": read_only,
            "Devices": [parse_device(d) for d in device or []] or None,
            "DeviceCgroupRules": device_cgroup_rule or None,
            "Sysctls": sysctls or None,
            "UsernsMode": userns,
        }
    )
    return body
