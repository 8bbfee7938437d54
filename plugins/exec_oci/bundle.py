"""The OCI runtime-spec ``config.json`` of a container, and the process spec of a ``docker exec``.

Everything the runtime needs comes from the :class:`~dockyard.models.runtime.RuntimeSpec`
the core resolved (user and groups as numbers, the rootfs the storage driver mounted,
the netns the network driver prepared), its confinement included
(:mod:`dockyard.confinement` decided capabilities, seccomp, masked paths, devices...; this
module only spells them the OCI way).  The shape follows what Docker writes (moby
``oci/defaults.go``): the same namespaces and mounts.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.errors import InvalidParameter
from dockyard.models.runtime import Confinement, Device, DeviceRule, ProcessSpec, Resources, RuntimeSpec

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _capabilities(caps: list[str], uid: int) -> dict:
    """As Docker hands them to runc: all sets for root; another user keeps them only in the
    bounding set (none effective), so a setuid binary can still gain them."""
    effective = list(caps) if uid == 0 else []
    return {"bounding": list(caps), "effective": effective, "permitted": effective, "inheritable": []}


def _device_rule(rule: DeviceRule) -> dict:
    out: dict = {"allow": rule.allow, "access": rule.access}
    if rule.type != "a":
        out["type"] = rule.type
    if rule.major is not None:
        out["major"] = rule.major
    if rule.minor is not None:
        out["minor"] = rule.minor
    return out


def _device(dev: Device) -> dict:
    return {
        "path": dev.path_in_container,
        "type": dev.type,
        "major": dev.major,
        "minor": dev.minor,
        "fileMode": dev.file_mode,
        "uid": dev.uid,
        "gid": dev.gid,
    }


def _seccomp(confine: Confinement) -> dict | None:
    if confine.seccomp is None:
        return None
    return confine.seccomp.model_dump(by_alias=True, exclude_none=True)


def _check(value: str, what: str) -> str:
    if "\0" in value:
        raise InvalidParameter(f"invalid {what}: it contains a NUL byte")
    return value


def environment(spec: RuntimeSpec) -> list[str]:
    """The container's environment: the spec's, plus Docker's defaults when absent."""
    env: dict[str, str] = {}
    for item in spec.env:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = _check(value, "environment variable")
    defaults = {
        "PATH": DEFAULT_PATH,
        "HOSTNAME": spec.hostname or spec.container_id[:12],
        "HOME": "/root" if spec.uid == 0 else "/",
    }
    if spec.tty:
        defaults["TERM"] = "xterm"
    return [f"{k}={v}" for k, v in defaults.items() if k not in env] + [f"{k}={v}" for k, v in env.items()]


def resources(res: Resources, *, swap_accounting: bool, device_rules: list[DeviceRule] | None = None) -> dict:
    """``linux.resources`` for cgroup limits (the runtime maps them to v1 or v2 files)."""
    out: dict = {"devices": [_device_rule(r) for r in device_rules or []]}
    memory: dict = {}
    if res.memory > 0:
        memory["limit"] = res.memory
        if swap_accounting:
            if res.memory_swap > 0:
                memory["swap"] = max(res.memory_swap, res.memory)
            elif res.memory_swap == 0:
                memory["swap"] = 2 * res.memory  # Docker's default: as much swap as memory
            elif res.memory_swap == -1:
                memory["swap"] = -1
    if memory:
        out["memory"] = memory
    cpu: dict = {}
    if res.cpu_shares > 0:
        cpu["shares"] = max(2, res.cpu_shares)
    if res.cpuset_cpus:
        cpu["cpus"] = _check(res.cpuset_cpus, "cpuset")
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit > 0:
        out["pids"] = {"limit": res.pids_limit}
    return out


def _mounts(spec: RuntimeSpec) -> list[dict]:
    # --privileged: /sys and the cgroup file system read-write, as Docker mounts them
    ro = [] if spec.confinement.privileged else ["ro"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*ro, "nosuid", "noexec", "nodev"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
    ]
    for host, target, read_only in spec.binds:
        target = _check(str(target), "mount target")
        if not target.startswith("/") or target.rstrip("/") == "":
            raise InvalidParameter(f"invalid mount target {target!r}: it must be an absolute path below /")
        mounts.append(
            {
                "destination": target,
                "type": "bind",
                "source": _check(str(host), "bind source"),
                "options": ["rbind", "rprivate"] + (["ro"] if read_only else []),
            }
        )
    return mounts


def config(spec: RuntimeSpec, *, cgroups_path: str, swap_accounting: bool) -> dict:
    """The whole ``config.json`` of ``spec``."""
    if not spec.args:
        raise InvalidParameter("no command specified")
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    confine = spec.confinement
    namespaces: list[dict] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if spec.netns is not None:
        namespaces.append({"type": "network", "path": _check(str(spec.netns), "netns path")})
    process = {
        "terminal": spec.tty,
        "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": list(spec.additional_gids)},
        "args": [_check(a, "argument") for a in spec.args],
        "env": environment(spec),
        "cwd": _check(cwd, "working directory"),
        "capabilities": _capabilities(confine.capabilities, spec.uid),
        "noNewPrivileges": confine.no_new_privileges,
        "oomScoreAdj": 0,
    }
    if confine.apparmor_profile:
        process["apparmorProfile"] = confine.apparmor_profile
    linux: dict = {
        "cgroupsPath": cgroups_path,
        "resources": resources(spec.resources, swap_accounting=swap_accounting, device_rules=confine.device_rules),
        "namespaces": namespaces,
        "maskedPaths": list(confine.masked_paths),
        "readonlyPaths": list(confine.readonly_paths),
    }
    if confine.devices:
        linux["devices"] = [_device(dev) for dev in confine.devices]
    if confine.sysctls:
        linux["sysctl"] = dict(confine.sysctls)
    seccomp = _seccomp(confine)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": _check(str(spec.rootfs), "rootfs"), "readonly": confine.readonly_rootfs},
        "hostname": _check(spec.hostname or spec.container_id[:12], "hostname"),
        "mounts": _mounts(spec),
        "linux": linux,
    }


def process(spec: ProcessSpec, hostname: str, confine: Confinement) -> dict:
    """The process spec of a ``docker exec`` (``runtime exec --process``): the environment the
    core resolved (the container's under the exec's own) plus PATH, HOSTNAME and, with a tty,
    TERM where absent, as Docker adds them; the container's confinement (seccomp is the container's:
    the runtime applies it to every process it starts in there)."""
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    if not spec.args or not spec.args[0]:
        raise InvalidParameter("No exec command specified")
    env: dict[str, str] = {}
    for item in spec.env:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = _check(value, "environment variable")
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    if spec.tty:
        env.setdefault("TERM", "xterm")
    out = {
        "terminal": spec.tty,
        "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": list(spec.additional_gids)},
        "args": [_check(a, "argument") for a in spec.args],
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": _check(cwd, "working directory"),
        "capabilities": _capabilities(confine.capabilities, spec.uid),
        "noNewPrivileges": confine.no_new_privileges,
    }
    if confine.apparmor_profile:
        out["apparmorProfile"] = confine.apparmor_profile
    return out


def swap_accounting(cgroup_root: Path, cgroup2: bool) -> bool:
    """Whether memory+swap limits can be set (runc refuses ``memory.swap`` otherwise)."""
    if cgroup2:
        try:
            return any((p / "memory.swap.max").exists() for p in cgroup_root.iterdir() if p.is_dir())
        except OSError:
            return False
    return (cgroup_root / "memory" / "memory.memsw.limit_in_bytes").exists()
