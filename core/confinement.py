"""How containers are confined: Docker's defaults as data, and what options change.

The core resolves a container's :class:`~dockyard.models.runtime.Confinement`
here, once, from its ``HostConfig`` (:func:`resolve`); every exec driver receives
it in ``RuntimeSpec.confinement`` and only translates it (LXC keys, an OCI
``config.json``...).  Nothing in this module touches the host beyond reading a
few facts about it (:class:`HostFacts`).

What Docker gives a container by default, and so does dockyard:

* **capabilities**: the 14 of :data:`DEFAULT_CAPABILITIES` (``CapBnd
  00000000a80425fb``); ``--cap-add``/``--cap-drop`` adjust them (``ALL`` works both
  ways), ``--privileged`` grants every capability the kernel has;
* **seccomp**: Docker's default profile (``seccomp_default.json``, an allow-list
  translated from moby's ``profiles/seccomp/default.json``), resolved for the host
  architecture, the container's capabilities and the running kernel;
  ``--security-opt seccomp=unconfined`` turns it off, ``seccomp=<profile JSON>``
  (the docker CLI sends a file's content) replaces it; ``--privileged`` is
  unconfined unless a profile is named;
* **masked paths** (:func:`masked_paths`) and **read-only paths**
  (:data:`READONLY_PATHS`) under /proc and /sys; ``--privileged`` and
  ``--security-opt systempaths=unconfined`` (``HostConfig.MaskedPaths``/
  ``ReadonlyPaths`` = ``[]``) lift them;
* **devices**: the device cgroup allows only the standard nodes
  (:data:`DEFAULT_DEVICE_RULES`); ``--device`` adds nodes, ``--privileged`` every
  host device;
* **AppArmor**: the ``dockyard-default`` profile (:func:`apparmor_profile_text`)
  where the host has AppArmor enabled;
* ``no-new-privileges``, ``--read-only`` and namespaced ``--sysctl`` values on request.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dockyard.errors import InvalidParameter
from dockyard.models.runtime import Confinement, Device, DeviceRule, Seccomp, SeccompAction, SeccompArg, SeccompSyscall

__all__ = [
    "APPARMOR_PROFILE",
    "CAPABILITIES",
    "DaemonSecurity",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_RULES",
    "HostFacts",
    "READONLY_PATHS",
    "SeccompProfile",
    "SecurityOptions",
    "apparmor_profile_text",
    "capabilities",
    "check_sysctls",
    "default_confinement",
    "default_seccomp_profile",
    "host_devices",
    "info_security_options",
    "load_apparmor_profile",
    "load_seccomp_profile",
    "masked_paths",
    "parse_device",
    "parse_device_cgroup_rule",
    "parse_security_opts",
    "resolve",
    "resolve_seccomp",
]

# ---------------------------------------------------------------------------------------------------------------
# capabilities
# ---------------------------------------------------------------------------------------------------------------

#: every capability, by number (capability.h); the kernel may know fewer (``cap_last_cap``)
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: Docker's default set (moby ``oci/caps.DefaultCapabilities``), in kernel order
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
)

# ---------------------------------------------------------------------------------------------------------------
# paths and devices
# ---------------------------------------------------------------------------------------------------------------

#: Docker's masked paths (moby ``oci.DefaultLinuxSpec``), before the per-CPU thermal_throttle ones
_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

#: Docker's read-only paths
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: device cgroup: deny everything, then what runc allows every container (mknod of any node, the
#: standard character devices, ptys and /dev/net/tun)
DEFAULT_DEVICE_RULES = (
    DeviceRule(allow=False, type="a"),
    DeviceRule(allow=True, type="c", access="m"),
    DeviceRule(allow=True, type="b", access="m"),
    DeviceRule(allow=True, type="c", major=1, minor=3),  # null
    DeviceRule(allow=True, type="c", major=1, minor=5),  # zero
    DeviceRule(allow=True, type="c", major=1, minor=7),  # full
    DeviceRule(allow=True, type="c", major=1, minor=8),  # random
    DeviceRule(allow=True, type="c", major=1, minor=9),  # urandom
    DeviceRule(allow=True, type="c", major=5, minor=0),  # tty
    DeviceRule(allow=True, type="c", major=5, minor=1),  # console
    DeviceRule(allow=True, type="c", major=5, minor=2),  # ptmx
    DeviceRule(allow=True, type="c", major=136),  # pts
    DeviceRule(allow=True, type="c", major=10, minor=200),  # tun
)

#: parts of the host's /dev a privileged container does not get (runc's ``HostDevices``)
_HOST_DEV_SKIP = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"}

# ---------------------------------------------------------------------------------------------------------------
# host facts
# ---------------------------------------------------------------------------------------------------------------

#: platform.machine() -> the architecture names Docker's profile conditions use (Go's, via libseccomp)
_NATIVE_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
    "loongarch64": "loong64",
}
#: and to libseccomp's architecture tokens
_SECCOMP_ARCH = {
    "amd64": "SCMP_ARCH_X86_64",
    "x86": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "ppc64": "SCMP_ARCH_PPC64",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
}


@dataclass(frozen=True)
class HostFacts:
    """What confinement depends on about the host; :meth:`current` reads them once."""

    #: Docker's name of the native architecture ("amd64", "arm64", ...)
    arch: str = "amd64"
    #: running kernel (major, minor)
    kernel: tuple[int, int] = (6, 1)
    #: capabilities the kernel knows and the daemon holds in its bounding set
    capabilities: tuple[str, ...] = CAPABILITIES
    seccomp: bool = True
    apparmor: bool = False
    #: masked thermal_throttle directories, one per CPU that has one
    thermal_throttle: tuple[str, ...] = field(default=())

    @classmethod
    @functools.cache
    def current(cls) -> "HostFacts":
        return cls(
            arch=_NATIVE_ARCH.get(platform.machine(), platform.machine()),
            kernel=_kernel_version(platform.release()),
            capabilities=_available_capabilities(),
            seccomp=Path("/proc/sys/kernel/seccomp/actions_avail").exists(),
            apparmor=_apparmor_enabled(),
            thermal_throttle=_thermal_throttle_paths(),
        )


def _available_capabilities() -> tuple[str, ...]:
    """What the kernel knows (cap_last_cap) and this process may still grant (its bounding
    set): a daemon inside a restricted environment cannot hand out more."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = CAPABILITIES.index("CAP_AUDIT_READ")
    bounding = (1 << (last + 1)) - 1
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return tuple(c for i, c in enumerate(CAPABILITIES[: last + 1]) if bounding >> i & 1)


def _kernel_version(release: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _apparmor_enabled() -> bool:
    """As libapparmor's aa_is_enabled: the module says Y and securityfs shows it."""
    try:
        enabled = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False
    return enabled and Path("/sys/kernel/security/apparmor").is_dir()


def _thermal_throttle_paths() -> tuple[str, ...]:
    cpus = Path("/sys/devices/system/cpu")
    try:
        return tuple(
            sorted(str(p / "thermal_throttle") for p in cpus.glob("cpu[0-9]*") if (p / "thermal_throttle").exists())
        )
    except OSError:
        return ()


def masked_paths(host: HostFacts | None = None) -> list[str]:
    """Docker's masked paths, with the thermal_throttle directories this host has."""
    host = host or HostFacts.current()
    return [*_MASKED_PATHS, *host.thermal_throttle]


def host_devices(root: Path = Path("/dev")) -> list[Device]:
    """Every character and block device under the host's ``root``, for ``--privileged``."""
    found: list[Device] = []

    def walk(directory: Path) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name in _HOST_DEV_SKIP and directory == root:
                continue
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path))
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(_device(entry.path, entry.path, st))

    walk(root)
    return found


def _device(host_path: str, container_path: str, st: os.stat_result) -> Device:
    return Device(
        path_on_host=host_path,
        path_in_container=container_path,
        type="c" if stat.S_ISCHR(st.st_mode) else "b",
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
    )


def parse_device(
    path_on_host: str, path_in_container: str = "", permissions: str = "rwm"
) -> tuple[list[Device], list[DeviceRule]]:
    """One ``HostConfig.Devices`` entry: the node(s) it adds and the cgroup rules allowing them.

    A directory adds every device below it, as Docker does."""
    permissions = permissions or "rwm"
    if not path_on_host.startswith("/") or "\n" in path_on_host:
        raise InvalidParameter(f"invalid device path: {path_on_host!r}")
    if not re.fullmatch(r"[rwm]{1,3}", permissions) or len(set(permissions)) != len(permissions):
        raise InvalidParameter(f"invalid device cgroup permissions: {permissions!r}")
    target = path_in_container or path_on_host
    if not target.startswith("/") or ".." in target.split("/") or "\n" in target:
        raise InvalidParameter(f"invalid device path in the container: {target!r}")
    try:
        st = os.stat(path_on_host)
    except OSError as exc:
        raise InvalidParameter(
            f"error gathering device information while adding custom device "
            f"{path_on_host!r}: {exc.strerror.lower() if exc.strerror else exc}"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        devices = [
            d.model_copy(update={"path_in_container": target + d.path_on_host[len(path_on_host.rstrip("/")) :]})
            for d in host_devices(Path(path_on_host))
        ]
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        devices = [_device(path_on_host, target, st)]
    else:
        raise InvalidParameter(f"{path_on_host} is not a device node")
    rules = [DeviceRule(allow=True, type=d.type, major=d.major, minor=d.minor, access=permissions) for d in devices]
    return devices, rules


def parse_device_cgroup_rule(rule: str) -> DeviceRule:
    """``--device-cgroup-rule 'c 1:3 mr'`` (``*`` for any number, ``a`` for any type)."""
    match = re.fullmatch(r"([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})", rule.strip())
    if not match:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = match.groups()
    return DeviceRule(
        allow=True,
        type=kind,
        major=None if major == "*" else int(major),
        minor=None if minor == "*" else int(minor),
        access=access,
    )


# ---------------------------------------------------------------------------------------------------------------
# seccomp profiles
# ---------------------------------------------------------------------------------------------------------------


class _ProfileModel(BaseModel):
    # Docker's profile JSON is camelCase; dockyard's shipped file uses the field names
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class SeccompCondition(_ProfileModel):
    """``includes``/``excludes`` of a profile rule: every listed capability, one of the
    architectures (Docker's names: amd64, arm64, ...), a minimum kernel."""

    caps: list[str] = Field(default_factory=list)
    arches: list[str] = Field(default_factory=list)
    min_kernel: str | None = None

    @field_validator("min_kernel")
    @classmethod
    def _kernel(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)?", value):
            raise ValueError(f"invalid minKernel {value!r}")
        return value

    @field_validator("caps", "arches", mode="before")
    @classmethod
    def _null_list(cls, value):
        return [] if value is None else value


class SeccompProfileRule(_ProfileModel):
    name: str | None = None
    names: list[str] = Field(default_factory=list)
    action: SeccompAction
    errno_ret: int | None = None
    args: list[SeccompArg] = Field(default_factory=list)
    comment: str = ""
    includes: SeccompCondition = Field(default_factory=SeccompCondition)
    excludes: SeccompCondition = Field(default_factory=SeccompCondition)

    @field_validator("args", "names", mode="before")
    @classmethod
    def _null_list(cls, value):
        return [] if value is None else value

    @field_validator("includes", "excludes", mode="before")
    @classmethod
    def _null_condition(cls, value):
        return {} if value is None else value

    @model_validator(mode="after")
    def _one_name_field(self) -> "SeccompProfileRule":
        if self.name and self.names:
            raise ValueError(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
            )
        if not self.name and not self.names:
            raise ValueError("a seccomp rule names no syscall")
        return self

    @property
    def syscall_names(self) -> list[str]:
        return [self.name] if self.name else list(self.names)


class SeccompProfile(_ProfileModel):
    """A seccomp profile in Docker's format (``docker run --security-opt seccomp=profile.json``).

    Conditions (capabilities, architectures, kernel) are resolved per container by
    :func:`resolve_seccomp`."""

    description: str = ""
    default_action: SeccompAction
    default_errno_ret: int | None = None
    architectures: list[str] = Field(default_factory=list)
    #: native architecture -> its sub-architectures (Docker's ``archMap``, as a mapping)
    arch_map: dict[str, list[str]] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    syscalls: list[SeccompProfileRule] = Field(default_factory=list)

    @field_validator("arch_map", mode="before")
    @classmethod
    def _docker_arch_map(cls, value):
        # Docker: [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": [...]}]
        if isinstance(value, list):
            return {item["architecture"]: item.get("subArchitectures") or [] for item in value}
        return {} if value is None else value

    @field_validator("architectures", "flags", "syscalls", mode="before")
    @classmethod
    def _null_list(cls, value):
        return [] if value is None else value

    @model_validator(mode="after")
    def _one_arch_field(self) -> "SeccompProfile":
        if self.architectures and self.arch_map:
            raise ValueError(
                "both 'architectures' and 'archMap' are specified in the seccomp profile, use either "
                "'architectures' or 'archMap'"
            )
        return self


def load_seccomp_profile(text: str) -> SeccompProfile:
    """A profile given as JSON text (Docker's format); 400 naming what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(f"Decoding seccomp profile failed: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidParameter("Decoding seccomp profile failed: the profile must be a JSON object")
    for unsupported in ("listenerPath", "listenerMetadata"):
        if data.get(unsupported):
            raise InvalidParameter(
                f"seccomp profile: {unsupported} (SCMP_ACT_NOTIFY agents) is not supported by this daemon"
            )
    try:
        return SeccompProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidParameter(f"Decoding seccomp profile failed: {where}: {first.get('msg')}") from None


@functools.cache
def default_seccomp_profile() -> SeccompProfile:
    """Docker's default profile, from the JSON file shipped with dockyard."""
    text = resources.files("dockyard").joinpath("seccomp_default.json").read_text()
    return SeccompProfile.model_validate_json(text)


def resolve_seccomp(
    profile: SeccompProfile, capabilities: list[str] | tuple[str, ...], host: HostFacts | None = None
) -> Seccomp:
    """The filter a container gets: the rules whose conditions hold for its
    capabilities (the bounding set), the host architecture and the running kernel
    (moby ``setupSeccomp``)."""
    host = host or HostFacts.current()
    caps = set(capabilities)
    architectures = list(profile.architectures)
    native = _SECCOMP_ARCH.get(host.arch)
    if native in profile.arch_map:
        architectures = [native, *profile.arch_map[native]]
    rules = []
    for rule in profile.syscalls:
        ex, inc = rule.excludes, rule.includes
        if ex.arches and host.arch in ex.arches:
            continue
        if ex.caps and caps.intersection(ex.caps):
            continue
        if ex.min_kernel and host.kernel >= _kernel_version(ex.min_kernel):
            continue
        if inc.arches and host.arch not in inc.arches:
            continue
        if inc.caps and not caps.issuperset(inc.caps):
            continue
        if inc.min_kernel and host.kernel < _kernel_version(inc.min_kernel):
            continue
        rules.append(
            SeccompSyscall(names=rule.syscall_names, action=rule.action, errno_ret=rule.errno_ret, args=rule.args)
        )
    return Seccomp(
        default_action=profile.default_action,
        default_errno_ret=profile.default_errno_ret,
        architectures=architectures,
        flags=profile.flags,
        syscalls=rules,
    )


# ---------------------------------------------------------------------------------------------------------------
# --security-opt
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityOptions:
    """``HostConfig.SecurityOpt``, parsed.  ``seccomp``: None = the default profile,
    "unconfined", or a profile's JSON text."""

    seccomp: str | None = None
    apparmor: str | None = None
    no_new_privileges: bool = False
    #: ``label=disable``: a no-op without SELinux, accepted as Docker accepts it
    label_disabled: bool = False


def parse_security_opts(options: list[str] | None) -> SecurityOptions:
    """Docker's ``parseSecurityOpt``; what dockyard cannot apply is refused (400), never ignored."""
    seccomp: str | None = None
    apparmor: str | None = None
    nnp = False
    label_disabled = False
    for opt in options or []:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            label_disabled = True
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:  # the deprecated spelling (label:disable, seccomp:unconfined)
            key, _, value = opt.partition(":")
        else:
            raise InvalidParameter(f"invalid --security-opt 1: {opt!r}")
        if key == "seccomp":
            seccomp = None if value in ("builtin", "default", "") else value
        elif key == "apparmor":
            if not value or "\n" in value:
                raise InvalidParameter(f"invalid --security-opt 2: {opt!r}")
            apparmor = value
        elif key == "no-new-privileges":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise InvalidParameter(f"invalid --security-opt 2: {opt!r}")
            nnp = value.lower() in ("1", "t", "true")
        elif key == "label":
            if value != "disable":
                raise InvalidParameter(f"--security-opt {opt}: SELinux labels are not supported by this daemon")
            label_disabled = True
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {opt!r}")
    return SecurityOptions(seccomp=seccomp, apparmor=apparmor, no_new_privileges=nnp, label_disabled=label_disabled)


# ---------------------------------------------------------------------------------------------------------------
# sysctls
# ---------------------------------------------------------------------------------------------------------------

#: IPC-namespaced parameters (runc's validator)
_IPC_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}


def check_sysctls(sysctls: dict[str, str] | None, host_network: bool) -> dict[str, str]:
    """Only parameters namespaced to the container may be set (``--sysctl``)."""
    checked: dict[str, str] = {}
    for key, value in (sysctls or {}).items():
        value = str(value)
        if not re.fullmatch(r"[a-z0-9_]+(\.[A-Za-z0-9_-]+)+", key) or any(c in value for c in "\n\r\0"):
            raise InvalidParameter(f"invalid sysctl {key!r}={value!r}")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            checked[key] = value
        elif key.startswith("net."):
            if host_network:
                raise InvalidParameter(f"sysctl {key!r} is not allowed in host network namespace")
            checked[key] = value
        elif key == "kernel.domainname":
            checked[key] = value
        else:
            raise InvalidParameter(f"sysctl {key!r} is not in a separate kernel namespace")
    return checked


# ---------------------------------------------------------------------------------------------------------------
# AppArmor
# ---------------------------------------------------------------------------------------------------------------

APPARMOR_PROFILE = "dockyard-default"


def apparmor_profile_text(name: str = APPARMOR_PROFILE) -> str:
    """The default AppArmor profile, to the same effect as Docker's ``docker-default``:
    everything a container does normally is allowed; writing kernel knobs under
    /proc and /sys, mounting, and reading the kernel's memory are not."""
    return f"""#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  # signals only between processes of the same profile, and from the host
  signal (receive) peer=unconfined,
  signal (send,receive) peer={name},

  # /proc: files at its top and under other processes' directories are read-only
  deny @{{PROC}}/* w,
  deny @{{PROC}}/{{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}}/** w,
  deny @{{PROC}}/sys/[^k]** w,
  deny @{{PROC}}/sys/kernel/{{?,??,[^s][^h][^m]**}} w,
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,

  deny mount,

  # /sys is read-only except the cgroup file system
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,

  # ptrace only within the profile
  ptrace (trace,read,tracedby,readby) peer={name},
}}
"""


# ---------------------------------------------------------------------------------------------------------------
# a container's confinement
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_apparmor_profile() -> None:
    """Load (or replace) the default profile into the kernel, once per process; exec drivers call it
    before starting a container confined by it.  Raises ``System``."""
    import shutil
    import subprocess

    from dockyard.errors import System

    parser = shutil.which("apparmor_parser")
    if parser is None:
        raise System("AppArmor is enabled but apparmor_parser is missing (install the apparmor package)")
    try:
        subprocess.run(
            [parser, "-Kr"], input=apparmor_profile_text().encode(), check=True, capture_output=True, timeout=60
        )
    except subprocess.CalledProcessError as exc:
        raise System(
            f"cannot load the AppArmor profile {APPARMOR_PROFILE}: {exc.stderr.decode(errors='replace').strip()}"
        ) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise System(f"cannot load the AppArmor profile {APPARMOR_PROFILE}: {exc}") from None


@dataclass(frozen=True)
class DaemonSecurity:
    """Daemon-wide defaults (``dockyard daemon --seccomp-profile --no-new-privileges``)."""

    #: replaces Docker's default profile for containers that name none
    seccomp_profile: SeccompProfile | None = None
    no_new_privileges: bool = False

    @classmethod
    def from_options(cls, seccomp_profile: Path | None = None, no_new_privileges: bool = False) -> "DaemonSecurity":
        profile = None
        if seccomp_profile is not None:
            try:
                profile = load_seccomp_profile(Path(seccomp_profile).read_text())
            except OSError as exc:
                raise InvalidParameter(f"cannot read the seccomp profile {seccomp_profile}: {exc.strerror}") from None
        return cls(seccomp_profile=profile, no_new_privileges=no_new_privileges)


def _normalize_caps(names: list[str] | None, host: HostFacts) -> list[str]:
    """``net_admin``, ``NET_ADMIN``, ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``ALL`` kept (moby
    ``NormalizeLegacyCapabilities``)."""
    out = []
    for name in names or []:
        cap = str(name).upper()
        if cap != "ALL":
            cap = cap if cap.startswith("CAP_") else "CAP_" + cap
            if cap not in CAPABILITIES:
                raise InvalidParameter(f'unknown capability: "{cap}"')
            if cap not in host.capabilities:
                raise InvalidParameter(
                    f'capability not supported by your kernel or not available in the current environment: "{cap}"'
                )
        out.append(cap)
    return out


def capabilities(
    add: list[str] | None = None,
    drop: list[str] | None = None,
    privileged: bool = False,
    base: list[str] | None = None,
    host: HostFacts | None = None,
) -> list[str]:
    """The container's capability set (moby ``TweakCapabilities``), in kernel order.

    ``base`` (``HostConfig.Capabilities``) replaces Docker's default set."""
    host = host or HostFacts.current()
    if privileged:
        return list(host.capabilities)
    basics = _normalize_caps(base, host) if base is not None else list(DEFAULT_CAPABILITIES)
    adds, drops = _normalize_caps(add, host), _normalize_caps(drop, host)
    if "ALL" in adds:
        caps = [c for c in host.capabilities if c not in drops]
    elif "ALL" in drops:
        caps = adds
    else:
        caps = [c for c in basics if c not in drops] + adds
    return [c for c in CAPABILITIES if c in set(caps)]


def resolve(
    *,
    privileged: bool = False,
    cap_add: list[str] | None = None,
    cap_drop: list[str] | None = None,
    capabilities_base: list[str] | None = None,
    security_opt: list[str] | None = None,
    readonly_rootfs: bool = False,
    devices: list[dict] | None = None,
    device_cgroup_rules: list[str] | None = None,
    sysctls: dict[str, str] | None = None,
    masked: list[str] | None = None,
    readonly: list[str] | None = None,
    host_network: bool = False,
    daemon_seccomp: SeccompProfile | None = None,
    daemon_no_new_privileges: bool = False,
    host: HostFacts | None = None,
) -> Confinement:
    """A container's confinement from its ``HostConfig`` fields (400 for what cannot be honoured).

    ``masked``/``readonly`` are ``HostConfig.MaskedPaths``/``ReadonlyPaths``: None
    means Docker's defaults.  ``daemon_seccomp`` is the daemon's ``--seccomp-profile``
    (None: Docker's default)."""
    host = host or HostFacts.current()
    opts = parse_security_opts(security_opt)
    caps = capabilities(cap_add, cap_drop, privileged, capabilities_base, host)

    seccomp: Seccomp | None = None
    if opts.seccomp != "unconfined":
        if opts.seccomp is not None and not host.seccomp:
            raise InvalidParameter("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")
        if opts.seccomp is not None:
            seccomp = resolve_seccomp(load_seccomp_profile(opts.seccomp), caps, host)
        elif not privileged and host.seccomp:
            seccomp = resolve_seccomp(daemon_seccomp or default_seccomp_profile(), caps, host)

    apparmor = ""
    if opts.apparmor is not None and opts.apparmor != "unconfined" and not host.apparmor:
        raise InvalidParameter(f"--security-opt apparmor={opts.apparmor}: AppArmor is not enabled on this host")
    if host.apparmor:
        apparmor = opts.apparmor or ("unconfined" if privileged else APPARMOR_PROFILE)

    node_list: list[Device] = []
    rules = list(DEFAULT_DEVICE_RULES)
    if privileged:
        node_list = host_devices()
        rules = [DeviceRule(allow=True, type="a")]
    for item in devices or []:
        nodes, allow = parse_device(
            str(item.get("PathOnHost") or ""),
            str(item.get("PathInContainer") or ""),
            str(item.get("CgroupPermissions") or "rwm"),
        )
        node_list += nodes
        if not privileged:
            rules += allow
    if not privileged:
        rules += [parse_device_cgroup_rule(r) for r in device_cgroup_rules or []]

    def paths(given: list[str] | None, default: list[str]) -> list[str]:
        if privileged:
            return []
        chosen = default if given is None else list(given)
        for p in chosen:
            if not str(p).startswith("/") or ".." in str(p).split("/") or "\n" in str(p):
                raise InvalidParameter(f"invalid masked or read-only path {p!r}")
        return chosen

    return Confinement(
        privileged=privileged,
        capabilities=caps,
        no_new_privileges=opts.no_new_privileges or daemon_no_new_privileges,
        seccomp=seccomp,
        apparmor_profile=apparmor,
        masked_paths=paths(masked, masked_paths(host)),
        readonly_paths=paths(readonly, list(READONLY_PATHS)),
        readonly_rootfs=readonly_rootfs,
        devices=node_list,
        device_rules=rules,
        sysctls=check_sysctls(sysctls, host_network),
    )


@functools.cache
def default_confinement() -> Confinement:
    """What a container gets when nothing is asked for (``RuntimeSpec``'s default)."""
    return resolve()


def info_security_options(
    daemon_no_new_privileges: bool = False, custom_seccomp: bool = False, host: HostFacts | None = None
) -> list[str]:
    """``SecurityOptions`` of ``GET /info``, spelled as Docker spells them."""
    host = host or HostFacts.current()
    out = []
    if host.apparmor:
        out.append("name=apparmor")
    if host.seccomp:
        out.append(f"name=seccomp,profile={'custom' if custom_seccomp else 'builtin'}")
    if daemon_no_new_privileges:
        out.append("name=no-new-privileges")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        out.append("name=cgroupns")
    return out
