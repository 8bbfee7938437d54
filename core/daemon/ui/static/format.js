// Numbers and names as the docker CLI prints them.
export function humanSize(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let size = Number(bytes) || 0;
  let unit = 0;
  while (size >= 1000 && unit < units.length - 1) {
    size /= 1000;
    unit++;
  }
  return `${Number(size.toPrecision(3))}${units[unit]}`;
}

export function shortId(id) {
  return (id || "").replace(/^sha256:/, "").slice(0, 12);
}

export function ago(unixSeconds) {
  if (!unixSeconds) return "";
  const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (seconds < 60) return `${Math.round(seconds)} seconds ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} hours ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export function containerName(container) {
  const names = container.Names || [];
  return (names[0] || container.Name || "").replace(/^\//, "") || shortId(container.Id);
}

export function ports(list) {
  return (list || [])
    .map((p) => (p.PublicPort ? `${p.IP || "0.0.0.0"}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`))
    .filter((text, i, all) => all.indexOf(text) === i)
    .join(", ");
}

// CPU % between two stats samples, as `docker stats` computes it.
export function cpuPercent(current, previous) {
  const cpu = current?.cpu_stats?.cpu_usage?.total_usage - previous?.cpu_stats?.cpu_usage?.total_usage;
  const system = current?.cpu_stats?.system_cpu_usage - previous?.cpu_stats?.system_cpu_usage;
  const cpus = current?.cpu_stats?.online_cpus || 1;
  return system > 0 && cpu >= 0 ? (cpu / system) * cpus * 100 : 0;
}

// Memory in use without the page cache (docker stats' "MEM USAGE").
export function memoryUsage(stats) {
  const memory = stats?.memory_stats || {};
  const cache = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? memory.stats?.cache ?? 0;
  return Math.max((memory.usage || 0) - cache, 0);
}
