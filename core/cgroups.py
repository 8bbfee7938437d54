"""Direct cgroup access for a running container: freeze, processes, stats, limits.

Shared by the exec drivers: each puts a container's processes in the cgroup
``dockyard/<id>`` of every hierarchy (LXC's ``lxc.cgroup.dir.container``, the OCI
spec's ``linux.cgroupsPath``), so reading and changing it needs no runtime.

Layouts: *unified* (``/sys/fs/cgroup`` is cgroup2), *legacy* (one v1 hierarchy per
controller under ``/sys/fs/cgroup/<controller>``) and *hybrid* (legacy plus a
cgroup2 mount at ``/sys/fs/cgroup/unified``, which holds no controller we use but
offers ``cgroup.kill``); the limits are v1's on the last two.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dockyard.errors import InvalidParameter, System
from dockyard.models.runtime import Resources
from dockyard.timefmt import iso_now

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup2_host() -> bool:
    """True when /sys/fs/cgroup itself is a cgroup2 mount (pure unified hierarchy)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def hybrid_host() -> bool:
    """True for the hybrid layout: v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified."""
    return not cgroup2_host() and (CGROUP_ROOT / "unified" / "cgroup.controllers").exists()


def cgroup_dir(container_id: str) -> str:
    """The container's cgroup, relative to each hierarchy's root."""
    return f"dockyard/{container_id}"


class Cgroups:
    def __init__(self, container_id: str, cgroup2: bool) -> None:
        self.id = container_id
        self.v2 = cgroup2
        self.rel = cgroup_dir(container_id)

    def path(self, controller: str) -> Path:
        if self.v2:
            return CGROUP_ROOT / self.rel
        return CGROUP_ROOT / controller / self.rel

    def read(self, controller: str, name: str) -> str | None:
        try:
            return (self.path(controller) / name).read_text()
        except OSError:
            return None

    def read_int(self, controller: str, name: str) -> int | None:
        text = self.read(controller, name)
        if text is None:
            return None
        text = text.strip()
        if text == "max":
            return None
        try:
            return int(text)
        except ValueError:
            return None

    def write(self, controller: str, name: str, value: str) -> None:
        try:
            (self.path(controller) / name).write_text(value)
        except OSError as exc:
            raise System(f"cannot set {name}={value} for container {self.id}: {exc}") from None

    # -- freezer -------------------------------------------------------------

    def freeze(self, timeout: float = 10.0) -> None:
        if self.v2:
            self.write("", "cgroup.freeze", "1")
            done = lambda: "frozen 1" in (self.read("", "cgroup.events") or "")  # noqa: E731
        else:
            self.write("freezer", "freezer.state", "FROZEN")
            done = lambda: (self.read("freezer", "freezer.state") or "").strip() == "FROZEN"  # noqa: E731
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not done():
            if time.monotonic() > deadline:
                raise System(f"container {self.id} did not freeze within {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self) -> None:
        if self.v2:
            self.write("", "cgroup.freeze", "0")
        else:
            self.write("freezer", "freezer.state", "THAWED")

    def frozen(self) -> bool:
        """Whether the container is frozen (or freezing); False when it has no cgroup."""
        if self.v2:
            return (self.read("", "cgroup.freeze") or "").strip() == "1"
        return (self.read("freezer", "freezer.state") or "").strip() in ("FROZEN", "FREEZING")

    def kill_all(self) -> bool:
        """SIGKILL every process with ``cgroup.kill`` (cgroup2, or the hybrid unified
        hierarchy when the runtime placed the container there); False if unavailable."""
        path = (CGROUP_ROOT if self.v2 else CGROUP_ROOT / "unified") / self.rel / "cgroup.kill"
        try:
            path.write_text("1")
        except OSError:
            return False
        return True

    def exists(self) -> bool:
        return self.path("pids").is_dir()

    # -- processes -----------------------------------------------------------

    def pids(self) -> list[int]:
        top = self.path("pids")
        out: list[int] = []
        for dirpath, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    out += [int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    continue
        return sorted(set(out))

    # -- stats ---------------------------------------------------------------

    @staticmethod
    def _kv(text: str | None) -> dict[str, int]:
        out = {}
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) == 2:
                try:
                    out[parts[0]] = int(parts[1])
                except ValueError:
                    pass
        return out

    @staticmethod
    def _system_cpu_usage() -> int:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
            return sum(int(x) for x in fields) * (10**9 // os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError):
            return 0

    def stats(self) -> dict:
        online = len(os.sched_getaffinity(0))
        if self.v2:
            return self._stats_v2(online)
        return self._stats_v1(online)

    def _stats_v1(self, online: int) -> dict:
        mem_stat = self._kv(self.read("memory", "memory.stat"))
        memory = {}
        usage = self.read_int("memory", "memory.usage_in_bytes")
        if usage is not None:
            limit = self.read_int("memory", "memory.limit_in_bytes") or 0
            host = _host_memory()
            memory = {
                "usage": usage,
                "max_usage": self.read_int("memory", "memory.max_usage_in_bytes") or 0,
                # unlimited (~8 EiB): report the host's memory, as Docker does
                "limit": min(limit, host) if limit and host else limit or host,
                "failcnt": self.read_int("memory", "memory.failcnt") or 0,
                "stats": mem_stat,
            }
        percpu = [int(x) for x in (self.read("cpuacct", "cpuacct.usage_percpu") or "").split()]
        acct = self._kv(self.read("cpuacct", "cpuacct.stat"))
        tick = 10**9 // os.sysconf("SC_CLK_TCK")
        throttle = self._kv(self.read("cpu", "cpu.stat"))
        cpu = {
            "cpu_usage": {
                "total_usage": self.read_int("cpuacct", "cpuacct.usage") or 0,
                "percpu_usage": percpu,
                "usage_in_kernelmode": acct.get("system", 0) * tick,
                "usage_in_usermode": acct.get("user", 0) * tick,
            },
            "system_cpu_usage": self._system_cpu_usage(),
            "online_cpus": online,
            "throttling_data": {
                "periods": throttle.get("nr_periods", 0),
                "throttled_periods": throttle.get("nr_throttled", 0),
                "throttled_time": throttle.get("throttled_time", 0),
            },
        }
        pids = {"current": self.read_int("pids", "pids.current") or 0}
        limit = self.read_int("pids", "pids.max")
        if limit:
            pids["limit"] = limit
        blkio = {
            "io_service_bytes_recursive": self._blkio_v1("blkio.throttle.io_service_bytes"),
            "io_serviced_recursive": self._blkio_v1("blkio.throttle.io_serviced"),
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        }
        return {
            "read": iso_now(),
            "num_procs": 0,
            "memory_stats": memory,
            "cpu_stats": cpu,
            "pids_stats": pids,
            "blkio_stats": blkio,
        }

    def _blkio_v1(self, name: str) -> list[dict] | None:
        out = []
        for line in (self.read("blkio", name) or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        return out or None

    def _stats_v2(self, online: int) -> dict:
        mem_stat = self._kv(self.read("", "memory.stat"))
        memory = {}
        usage = self.read_int("", "memory.current")
        if usage is not None:
            limit = self.read_int("", "memory.max")
            memory = {"usage": usage, "limit": limit if limit is not None else _host_memory(), "stats": mem_stat}
        cs = self._kv(self.read("", "cpu.stat"))
        cpu = {
            "cpu_usage": {
                "total_usage": cs.get("usage_usec", 0) * 1000,
                "usage_in_kernelmode": cs.get("system_usec", 0) * 1000,
                "usage_in_usermode": cs.get("user_usec", 0) * 1000,
            },
            "system_cpu_usage": self._system_cpu_usage(),
            "online_cpus": online,
            "throttling_data": {
                "periods": cs.get("nr_periods", 0),
                "throttled_periods": cs.get("nr_throttled", 0),
                "throttled_time": cs.get("throttled_usec", 0) * 1000,
            },
        }
        pids = {"current": self.read_int("", "pids.current") or 0}
        limit = self.read_int("", "pids.max")
        if limit:
            pids["limit"] = limit
        io = []
        for line in (self.read("", "io.stat") or "").splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = (int(x) for x in parts[0].split(":"))
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if key in kv:
                    io.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
        return {
            "read": iso_now(),
            "num_procs": 0,
            "memory_stats": memory,
            "cpu_stats": cpu,
            "pids_stats": pids,
            "blkio_stats": {"io_service_bytes_recursive": io or None},
        }

    # -- limits --------------------------------------------------------------

    def update(self, res: Resources) -> None:
        """Apply the non-zero fields of ``res`` (0 = unchanged, as the core sends them)."""
        if res.memory < 0 or res.cpu_shares < 0:
            raise InvalidParameter("negative resource limits are invalid")
        if self.v2:
            if res.memory > 0:
                self.write("", "memory.max", str(res.memory))
                if res.memory_swap > 0 and (self.path("") / "memory.swap.max").exists():
                    self.write("", "memory.swap.max", str(max(0, res.memory_swap - res.memory)))
            elif res.memory_swap == -1 and (self.path("") / "memory.swap.max").exists():
                self.write("", "memory.swap.max", "max")
            if res.cpu_shares > 0:
                weight = max(1, min(10000, 1 + ((res.cpu_shares - 2) * 9999) // 262142))
                self.write("", "cpu.weight", str(weight))
            if res.cpuset_cpus:
                self.write("", "cpuset.cpus", res.cpuset_cpus)
            if res.pids_limit:
                self.write("", "pids.max", str(res.pids_limit) if res.pids_limit > 0 else "max")
            return
        memsw_file = self.path("memory") / "memory.memsw.limit_in_bytes"
        if res.memory > 0 or res.memory_swap:
            memory = res.memory or self.read_int("memory", "memory.limit_in_bytes") or 0
            memsw = None
            if memsw_file.exists():
                if res.memory_swap > 0:
                    memsw = max(res.memory_swap, memory)
                elif res.memory_swap == -1:
                    memsw = -1
                elif res.memory > 0:
                    current = self.read_int("memory", "memory.memsw.limit_in_bytes") or 0
                    memsw = max(current, memory) if current < (1 << 62) else None
            # memsw must stay >= memory at every step: order the writes accordingly
            current_mem = self.read_int("memory", "memory.limit_in_bytes") or 0
            if memsw is not None and (memsw == -1 or memsw >= current_mem):
                self.write("memory", "memory.memsw.limit_in_bytes", str(memsw))
                if res.memory > 0:
                    self.write("memory", "memory.limit_in_bytes", str(res.memory))
            else:
                if res.memory > 0:
                    self.write("memory", "memory.limit_in_bytes", str(res.memory))
                if memsw is not None:
                    self.write("memory", "memory.memsw.limit_in_bytes", str(memsw))
        if res.cpu_shares > 0:
            self.write("cpu", "cpu.shares", str(max(2, res.cpu_shares)))
        if res.cpuset_cpus:
            self.write("cpuset", "cpuset.cpus", res.cpuset_cpus)
        if res.pids_limit:
            self.write("pids", "pids.max", str(res.pids_limit) if res.pids_limit > 0 else "max")


def _host_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
