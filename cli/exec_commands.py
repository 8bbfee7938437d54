"""``exec``, ``pause``, ``unpause``, ``top``, ``stats`` and ``update``.

``exec`` follows docker/cli ``container/exec.go``: ``POST /containers/{id}/exec``,
then ``POST /exec/{id}/start`` (hijacked unless ``-d``), the streams until the
daemon closes the connection, and ``GET /exec/{id}/json`` for the exit status.
``stats`` computes its columns as docker/cli ``stats_helpers.go`` does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from . import formatting as fmt
from . import hijack
from .client import APIClient, CliError, iter_json_messages, quote_ref
from .container import _each
from .context import Failures, client, stderr_bytes, stdout_bytes, warn
from .run_options import parse_bytes
from .session import raw_terminal, send_terminal_size
from .stdcopy import demux_to

__all__ = ["exec_", "pause", "unpause", "top", "stats", "update", "register"]

Containers = Annotated[list[str], typer.Argument(metavar="CONTAINER...", help="Containers (name or ID)")]


# -- exec ------------------------------------------------------------------------------------------


def _exec_resize(api: APIClient, exec_id: str) -> None:
    send_terminal_size(api, exec_id, f"/exec/{exec_id}/resize")


def exec_(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(metavar="CONTAINER", help="Container (name or ID)")],
    command: Annotated[list[str], typer.Argument(metavar="COMMAND [ARG...]", help="Command and arguments")],
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Detached mode: run command in the background")
    ] = False,
    interactive: Annotated[
        bool, typer.Option("-i", "--interactive", help="Keep STDIN open even if not attached")
    ] = False,
    tty: Annotated[bool, typer.Option("-t", "--tty", help="Allocate a pseudo-TTY")] = False,
    env: Annotated[list[str] | None, typer.Option("-e", "--env", help="Set environment variables")] = None,
    user: Annotated[
        str | None, typer.Option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    ] = None,
    workdir: Annotated[
        str | None, typer.Option("-w", "--workdir", help="Working directory inside the container")
    ] = None,
    privileged: Annotated[bool, typer.Option("--privileged", help="Give extended privileges to the command")] = False,
) -> None:
    """Execute a command in a running container."""
    api = client(ctx)
    body: dict[str, Any] = {
        "User": user or "",
        "Privileged": privileged,
        "Tty": tty,
        "AttachStdin": interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "Detach": detach,
        "Env": [e if "=" in e else f"{e}={os.environ[e]}" for e in env or [] if "=" in e or e in os.environ],
        "WorkingDir": workdir or "",
        "Cmd": list(command),
    }
    created = api.post(f"/containers/{quote_ref(container)}/exec", body).json()
    exec_id = created["Id"]
    if detach:
        api.post(f"/exec/{exec_id}/start", {"Detach": True, "Tty": tty})
        return
    stdin = bool(body["AttachStdin"])
    conn = hijack.open_hijack(
        api.host,
        f"/exec/{exec_id}/start",
        body=json.dumps({"Detach": False, "Tty": tty}).encode(),
        content_type="application/json",
    )
    with conn:
        if stdin:
            hijack.pump_stdin(conn, sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)
        else:
            conn.close_write()
        handlers = {}
        if tty and threading.current_thread() is threading.main_thread():
            handlers[signal.SIGWINCH] = lambda *_: threading.Thread(
                target=_exec_resize, args=(api, exec_id), daemon=True
            ).start()
        saved = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
        try:
            with raw_terminal(tty and stdin):
                if tty:
                    _exec_resize(api, exec_id)
                demux_to(conn.chunks(), stdout_bytes(), stderr_bytes(), tty=tty)
        finally:
            for sig, h in saved.items():
                signal.signal(sig, h)
    info = api.get_json(f"/exec/{exec_id}/json")
    code = info.get("ExitCode")
    if code:
        raise typer.Exit(int(code))


# -- pause / unpause -------------------------------------------------------------------------------


def pause(ctx: typer.Context, containers: Containers) -> None:
    """Pause all processes within one or more containers."""
    _each(ctx, containers, "pause")


def unpause(ctx: typer.Context, containers: Containers) -> None:
    """Unpause all processes within one or more containers."""
    _each(ctx, containers, "unpause")


# -- top -------------------------------------------------------------------------------------------


def top_table(titles: list[str], processes: list[list[str]]) -> str:
    """Go's tabwriter(minwidth=20, tabwidth=1, padding=3, ' ') as docker top uses it."""
    rows = [list(titles)] + [list(p) for p in processes]
    columns = max(len(r) for r in rows)
    widths = [max(20, max((len(r[i]) for r in rows if i < len(r) - 1), default=0) + 3) for i in range(columns - 1)]
    lines = []
    for row in rows:
        lines.append("".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + (row[-1] if row else ""))
    return "\n".join(lines) + "\n"


def top(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(metavar="CONTAINER", help="Container (name or ID)")],
    ps_options: Annotated[list[str] | None, typer.Argument(metavar="[ps OPTIONS]", help="Options for ps")] = None,
) -> None:
    """Display the running processes of a container."""
    api = client(ctx)
    params = {"ps_args": " ".join(ps_options)} if ps_options else {}
    answer = api.get_json(f"/containers/{quote_ref(container)}/top", **params)
    typer.echo(top_table(answer.get("Titles") or [], answer.get("Processes") or []), nl=False)


# -- stats -----------------------------------------------------------------------------------------


def cpu_percent(sample: dict[str, Any]) -> float:
    cpu, pre = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if system_delta > 0 and cpu_delta > 0 and pre:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(sample: dict[str, Any]) -> tuple[float, float]:
    """(usage without page cache, limit), as docker 20.10+ computes them."""
    mem = sample.get("memory_stats") or {}
    usage = float(mem.get("usage") or 0)
    st = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in st and st[key] < usage:
            usage -= st[key]
            break
    return usage, float(mem.get("limit") or 0)


def stats_row(sample: dict[str, Any], no_trunc: bool = False) -> list[str]:
    usage, limit = memory_usage(sample)
    rx = sum((n or {}).get("rx_bytes", 0) for n in (sample.get("networks") or {}).values())
    tx = sum((n or {}).get("tx_bytes", 0) for n in (sample.get("networks") or {}).values())
    blk_r = blk_w = 0
    for entry in (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            blk_r += entry.get("value", 0)
        elif op == "write":
            blk_w += entry.get("value", 0)
    name = (sample.get("name") or "").lstrip("/") or "--"
    running = bool(sample.get("memory_stats") or sample.get("cpu_stats"))
    if not running:
        return [
            fmt.short_id(sample.get("id", ""), no_trunc),
            name,
            "0.00%",
            "0B / 0B",
            "0.00%",
            "0B / 0B",
            "0B / 0B",
            "0",
        ]
    return [
        fmt.short_id(sample.get("id", ""), no_trunc),
        name,
        f"{cpu_percent(sample):.2f}%",
        f"{fmt.bytes_size(usage)} / {fmt.bytes_size(limit)}",
        f"{(usage / limit * 100.0) if limit else 0.0:.2f}%",
        f"{fmt.human_size(rx)} / {fmt.human_size(tx)}",
        f"{fmt.human_size(blk_r)} / {fmt.human_size(blk_w)}",
        str((sample.get("pids_stats") or {}).get("current", 0)),
    ]


STATS_HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def _one_sample(api: APIClient, ref: str) -> dict[str, Any]:
    """Two samples one second apart (so CPU % has a base), as docker's --no-stream shows."""
    last: dict[str, Any] = {}
    with api.clone() as c, c.stream("GET", f"/containers/{quote_ref(ref)}/stats", params={"stream": "1"}) as resp:
        for i, sample in enumerate(iter_json_messages(resp)):
            last = sample
            if i >= 1:
                break
    return last


def stats(
    ctx: typer.Context,
    containers: Annotated[list[str] | None, typer.Argument(metavar="[CONTAINER...]", help="Containers")] = None,
    all_: Annotated[bool, typer.Option("-a", "--all", help="Show all containers (default shows just running)")] = False,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Disable streaming stats and only pull the first result")
    ] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output")] = False,
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    api = client(ctx)
    refs = list(containers or [])
    if not refs:
        listed = api.get_json("/containers/json", all="1" if all_ else "0")
        refs = [c["Id"] for c in listed]
    failures = Failures()

    def collect() -> list[list[str]]:
        rows = []
        for ref in refs:
            try:
                rows.append(stats_row(_one_sample(api, ref) if no_stream else _latest(api, ref), no_trunc))
            except CliError as exc:
                failures.report(exc)
        return rows

    if no_stream:
        typer.echo(fmt.render_table(STATS_HEADERS, collect()), nl=False)
        failures.exit_if_any()
        return
    try:
        while True:
            rows = collect()
            sys.stdout.write("\033[2J\033[H" + fmt.render_table(STATS_HEADERS, rows))
            sys.stdout.flush()
            if failures.count and not rows:
                failures.exit_if_any()
            threading.Event().wait(1.0)
    except KeyboardInterrupt:
        return


_previous: dict[str, dict[str, Any]] = {}


def _latest(api: APIClient, ref: str) -> dict[str, Any]:
    """One sample now, with the previous one as its CPU base (streaming display)."""
    sample = api.get_json(f"/containers/{quote_ref(ref)}/stats", **{"stream": "0", "one-shot": "1"})
    prev = _previous.get(ref)
    if prev:
        sample["precpu_stats"] = prev.get("cpu_stats") or {}
    _previous[ref] = sample
    return sample


# -- update ----------------------------------------------------------------------------------------


def update(
    ctx: typer.Context,
    containers: Containers,
    memory: Annotated[str | None, typer.Option("-m", "--memory", help="Memory limit")] = None,
    memory_swap: Annotated[
        str | None,
        typer.Option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
    ] = None,
    cpu_shares: Annotated[int | None, typer.Option("-c", "--cpu-shares", help="CPU shares (relative weight)")] = None,
    cpuset_cpus: Annotated[
        str | None, typer.Option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    ] = None,
    pids_limit: Annotated[
        int | None, typer.Option("--pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    ] = None,
) -> None:
    """Update configuration of one or more containers."""
    body: dict[str, Any] = {}
    if memory is not None:
        body["Memory"] = parse_bytes(memory, "--memory")
    if memory_swap is not None:
        body["MemorySwap"] = parse_bytes(memory_swap, "--memory-swap")
    if cpu_shares is not None:
        body["CpuShares"] = cpu_shares
    if cpuset_cpus is not None:
        body["CpusetCpus"] = cpuset_cpus
    if pids_limit is not None:
        body["PidsLimit"] = pids_limit
    if not body:
        raise CliError("you must provide one or more flags when using this command")
    api = client(ctx)
    failures = Failures()
    for name in containers:
        try:
            answer = api.post(f"/containers/{quote_ref(name)}/update", body).json()
        except CliError as exc:
            failures.report(exc)
            continue
        for warning in (answer or {}).get("Warnings") or []:
            warn(warning)
        typer.echo(name)
    failures.exit_if_any()


def register(app: typer.Typer, container_app: typer.Typer | None = None, panel: str = "Commands") -> None:
    """Add these commands to a typer app assembled by hand (and to its ``container`` sub-app).

    ``dockyard`` itself does not need this: cli/commands.py lists them and they are built on demand.
    """
    from .commands import ROOT, Command
    from .examples import epilog

    for name in ("exec", "pause", "unpause", "top", "stats", "update"):
        entry = ROOT[name]
        assert isinstance(entry, Command)
        func = globals()[entry.target.partition(":")[2]]
        app.command(name, rich_help_panel=panel, context_settings=entry.settings, epilog=epilog(entry.target))(func)
        if container_app is not None:
            container_app.command(name, context_settings=entry.settings, epilog=epilog(entry.target))(func)
