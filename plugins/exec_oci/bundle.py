"""The OCI runtime-spec ``config.json`` of a container, and the process spec of a ``docker exec``.

Everything the runtime needs comes from the :class:`~dockyard.models.runtime.RuntimeSpec`
the core resolved (user and groups as numbers, the rootfs the storage driver mounted,
the netns the network driver prepared).  The shape follows what Docker writes (moby
``oci/defaults.go``): the same namespaces, mounts, devices and default confinement.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.errors import InvalidParameter
from dockyard.models.runtime import ProcessSpec, Resources, RuntimeSpec

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# -- default confinement ------------------------------------------------------------------
# Seam: these are Docker's defaults.  Issue 13 moves Docker's confinement (capabilities,
# masked and read-only paths, seccomp, --privileged, --cap-add/--cap-drop, read-only
# rootfs) into the core's runtime spec model; once it has landed, ``confinement`` reads it
# from the RuntimeSpec instead of these constants.

#: Docker's default capability set (CapBnd 00000000a80425fb)
DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def confinement(spec: RuntimeSpec | ProcessSpec) -> dict:
    """Capabilities and paths hidden from the container (see the seam note above)."""
    caps = list(DEFAULT_CAPABILITIES)
    return {"capabilities": caps, "masked_paths": list(MASKED_PATHS), "readonly_paths": list(READONLY_PATHS)}


def _capabilities(caps: list[str], uid: int) -> dict:
    """As runc wants them: root keeps the set effective; another user only in the bounding set."""
    effective = caps if uid == 0 else []
    return {"bounding": caps, "effective": effective, "permitted": effective, "inheritable": []}


#: Docker's default device cgroup rules: deny all, then mknod of any, then the usual nodes
def _device_rules() -> list[dict]:
    rules: list[dict] = [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "access": "m"},
                         {"allow": True, "type": "b", "access": "m"}]
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None), (10, 200)):
        rule = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


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
    defaults = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.hostname or spec.container_id[:12],
                "HOME": "/root" if spec.uid == 0 else "/"}
    if spec.tty:
        defaults["TERM"] = "xterm"
    return [f"{k}={v}" for k, v in defaults.items() if k not in env] + [f"{k}={v}" for k, v in env.items()]


def resources(res: Resources, *, swap_accounting: bool) -> dict:
    """``linux.resources`` for cgroup limits (the runtime maps them to v1 or v2 files)."""
    out: dict = {"devices": _device_rules()}
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
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]
    for host, target, read_only in spec.binds:
        target = _check(str(target), "mount target")
        if not target.startswith("/") or target.rstrip("/") == "":
            raise InvalidParameter(f"invalid mount target {target!r}: it must be an absolute path below /")
        mounts.append({"destination": target, "type": "bind", "source": _check(str(host), "bind source"),
                       "options": ["rbind", "rprivate"] + (["ro"] if read_only else [])})
    return mounts


def config(spec: RuntimeSpec, *, cgroups_path: str, swap_accounting: bool) -> dict:
    """The whole ``config.json`` of ``spec``."""
    if not spec.args:
        raise InvalidParameter("no command specified")
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    confine = confinement(spec)
    namespaces: list[dict] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if spec.netns is not None:
        namespaces.append({"type": "network", "path": _check(str(spec.netns), "netns path")})
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": spec.tty,
            "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": list(spec.additional_gids)},
            "args": [_check(a, "argument") for a in spec.args],
            "env": environment(spec),
            "cwd": _check(cwd, "working directory"),
            "capabilities": _capabilities(confine["capabilities"], spec.uid),
            "oomScoreAdj": 0,
        },
        "root": {"path": _check(str(spec.rootfs), "rootfs"), "readonly": False},
        "hostname": _check(spec.hostname or spec.container_id[:12], "hostname"),
        "mounts": _mounts(spec),
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources(spec.resources, swap_accounting=swap_accounting),
            "namespaces": namespaces,
            "maskedPaths": confine["masked_paths"],
            "readonlyPaths": confine["readonly_paths"],
        },
    }


def process(spec: ProcessSpec, container_env: list[str]) -> dict:
    """The process spec of a ``docker exec`` (``runtime exec --process``): the container's
    environment under the exec's own (as Docker merges them), same confinement."""
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    if not spec.args or not spec.args[0]:
        raise InvalidParameter("No exec command specified")
    env: dict[str, str] = {}
    for item in [*container_env, *spec.env]:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = _check(value, "environment variable")
    if spec.tty:
        env.setdefault("TERM", "xterm")
    confine = confinement(spec)
    return {
        "terminal": spec.tty,
        "user": {"uid": spec.uid, "gid": spec.gid, "additionalGids": list(spec.additional_gids)},
        "args": [_check(a, "argument") for a in spec.args],
        "env": [f"{k}={v}" for k, v in env.items()],
        "cwd": _check(cwd, "working directory"),
        "capabilities": _capabilities(confine["capabilities"], spec.uid),
    }


def swap_accounting(cgroup_root: Path, cgroup2: bool) -> bool:
    """Whether memory+swap limits can be set (runc refuses ``memory.swap`` otherwise)."""
    if cgroup2:
        try:
            return any((p / "memory.swap.max").exists() for p in cgroup_root.iterdir() if p.is_dir())
        except OSError:
            return False
    return (cgroup_root / "memory" / "memory.memsw.limit_in_bytes").exists()
