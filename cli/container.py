"""``dockyard container ...``: create, run, start, ls, logs, inspect, stop, kill, restart, wait, rm.

Flags and output mirror the docker CLI.  Commands taking several containers
report each failure on stderr as it happens and exit 1 at the end.  ``run`` and
``create`` stop parsing options at the image name, so ``run busybox ls -l``
passes ``-l`` to ``ls``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Annotated, Any

import typer

from dockyard.reference import familiar_tagged

from . import formatting as fmt, run_options
from .client import APIClient, CliError, DaemonError, quote_ref
from .context import Failures, client, stderr_bytes, stdout_bytes, warn
from .filters import parse_filters
from .inspect import FormatOption, Kind, inspect_objects
from .listformat import CONTAINER, ListFormat, container_row, render_listing
from .session import StartFailed, attach_and_wait
from .stdcopy import demux_to

__all__ = ["app", "build_create_body", "parse_filters"]

#: ``dockyard container``: the sub-app's own settings; its commands are listed in cli/commands.py
app = typer.Typer(name="container", help="Manage containers", no_args_is_help=True)

Containers = Annotated[list[str], typer.Argument(metavar="CONTAINER...", help="Containers (name or ID)")]
Image = Annotated[str, typer.Argument(metavar="IMAGE", help="Image to create the container from")]
Command = Annotated[list[str] | None, typer.Argument(metavar="[COMMAND] [ARG...]", help="Command and arguments")]

# Options shared by run and create (a subset of docker's containerOptions).
CONFIG, TERMINAL, LIFECYCLE = "Container config", "Terminal", "Lifecycle"


def _opt(*names: str, help: str, panel: str | None = None) -> Any:
    return typer.Option(*names, help=help, rich_help_panel=panel)


Env = Annotated[list[str] | None, _opt("-e", "--env", help="Set environment variables (KEY=VALUE)", panel=CONFIG)]
Name = Annotated[str | None, _opt("--name", help="Assign a name to the container", panel=CONFIG)]
Hostname = Annotated[str | None, _opt("-h", "--hostname", help="Container host name", panel=CONFIG)]
Workdir = Annotated[str | None, _opt("-w", "--workdir", help="Working directory inside the container", panel=CONFIG)]
User = Annotated[str | None, _opt("-u", "--user", help="Username or UID (<name|uid>[:<group|gid>])", panel=CONFIG)]
Entrypoint = Annotated[str | None, _opt("--entrypoint", help="Overwrite the image's ENTRYPOINT", panel=CONFIG)]
Interactive = Annotated[bool, _opt("-i", "--interactive", help="Keep STDIN open even if not attached", panel=TERMINAL)]
Tty = Annotated[bool, _opt("-t", "--tty", help="Allocate a pseudo-TTY", panel=TERMINAL)]
SigProxy = Annotated[bool, _opt("--sig-proxy/--no-sig-proxy", help="Proxy signals to the process", panel=TERMINAL)]
Rm = Annotated[bool, _opt("--rm", help="Automatically remove the container when it exits", panel=LIFECYCLE)]
Detach = Annotated[bool, _opt("-d", "--detach", help="Run in background and print the container ID", panel=LIFECYCLE)]


# -- create / run -------------------------------------------------------------------------------


def _env(values: list[str] | None) -> list[str] | None:
    """``-e KEY`` copies KEY from our environment when set (docker ``ValidateEnv``)."""
    if not values:
        return None
    env = []
    for item in values:
        if "=" not in item and item in os.environ:
            item = f"{item}={os.environ[item]}"
        env.append(item)
    return env


def build_create_body(
    image: str,
    command: list[str] | None,
    *,
    env: list[str] | None = None,
    hostname: str | None = None,
    workdir: str | None = None,
    user: str | None = None,
    entrypoint: str | None = None,
    interactive: bool = False,
    tty: bool = False,
    attach: bool = True,
    auto_remove: bool = False,
) -> dict[str, Any]:
    """The ``POST /containers/create`` body, shaped like the docker CLI's.

    ``attach`` is false for ``run -d``: nothing is attached and ``StdinOnce``
    stays off so a later ``attach`` does not close stdin.
    """
    if entrypoint is None:
        entry = None
    else:
        entry = [entrypoint]  # "" resets the image's entrypoint, like docker
    return {
        "Hostname": hostname or "",
        "Domainname": "",
        "User": user or "",
        "AttachStdin": attach and interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": tty,
        "OpenStdin": interactive,
        "StdinOnce": attach and interactive,
        "Env": _env(env),
        "Cmd": list(command) if command else None,
        "Image": image,
        "Volumes": {},
        "WorkingDir": workdir or "",
        "Entrypoint": entry,
        "OnBuild": None,
        "Labels": {},
        "HostConfig": {
            "Binds": None,
            "LogConfig": {"Type": "", "Config": {}},
            "NetworkMode": "default",
            "PortBindings": {},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": auto_remove,
            "ConsoleSize": [0, 0],
        },
    }


def _puller(ctx: typer.Context, image: str) -> Any:
    def pull() -> None:
        from .registry import pull_image

        pull_image(ctx, image)

    return pull


def create_container(api: APIClient, body: dict[str, Any], name: str | None, *, command: str, pull: Any = None) -> str:
    """Create and return the ID; errors are printed docker-style and exit 125 (run) or 1.

    A missing image is pulled with ``pull()`` (if given) and the create retried
    once, as the docker CLI does."""
    exit_code = 125 if command == "run" else 1
    prefix = "dockyard: " if command == "run" else ""
    try:
        try:
            answer = api.post("/containers/create", body, name=name).json()
        except DaemonError as exc:
            if exc.status != 404 or pull is None or not exc.daemon_message.startswith("No such image"):
                raise
            warn(f"Unable to find image '{familiar_tagged(body['Image'])}' locally")
            try:
                pull()
            except CliError as pull_error:
                warn(f"{prefix}{pull_error}")
                raise typer.Exit(exit_code) from None
            answer = api.post("/containers/create", body, name=name).json()
    except DaemonError as exc:
        if exc.status == 404 and pull is None:
            warn(f"Unable to find image '{familiar_tagged(body['Image'])}' locally")
        warn(f"{prefix}{exc}")
        if command == "run":
            warn("\nRun 'dockyard run --help' for more information")
        raise typer.Exit(exit_code) from None
    for warning in answer.get("Warnings") or []:
        warn(f"WARNING: {warning}")
    return answer["Id"]


def create(
    ctx: typer.Context,
    image: Image,
    command: Command = None,
    env: Env = None,
    name: Name = None,
    hostname: Hostname = None,
    workdir: Workdir = None,
    user: User = None,
    entrypoint: Entrypoint = None,
    interactive: Interactive = False,
    tty: Tty = False,
    rm: Rm = False,
    publish: run_options.Publish = None,
    publish_all: run_options.PublishAll = False,
    network: run_options.Network = "default",
    dns: run_options.Dns = None,
    add_host: run_options.AddHost = None,
    expose: run_options.Expose = None,
    volume: run_options.Volume = None,
    bind: run_options.Bind = None,
    volumes_from: run_options.VolumesFrom = None,
    restart: run_options.Restart = "no",
    label: run_options.Label = None,
    log_driver: run_options.LogDriver = "",
    log_opt: run_options.LogOpt = None,
    env_file: run_options.EnvFile = None,
    memory: run_options.Memory = None,
    memory_swap: run_options.MemorySwap = None,
    cpu_shares: run_options.CpuShares = 0,
    cpuset_cpus: run_options.CpusetCpus = "",
    pids_limit: run_options.PidsLimit = 0,
    privileged: run_options.Privileged = False,
    cap_add: run_options.CapAdd = None,
    cap_drop: run_options.CapDrop = None,
    security_opt: run_options.SecurityOpt = None,
    read_only: run_options.ReadOnly = False,
    device: run_options.Device = None,
    device_cgroup_rule: run_options.DeviceCgroupRule = None,
    sysctl: run_options.Sysctl = None,
    userns: run_options.Userns = "",
) -> None:
    """Create a new container."""
    body = build_create_body(
        image,
        command,
        env=env,
        hostname=hostname,
        workdir=workdir,
        user=user,
        entrypoint=entrypoint,
        interactive=interactive,
        tty=tty,
        auto_remove=rm,
    )
    run_options.apply(
        body,
        publish=publish,
        publish_all=publish_all,
        network=network,
        dns=dns,
        add_host=add_host,
        expose=expose,
        volume=volume,
        bind=bind,
        volumes_from=volumes_from,
        restart=restart,
        label=label,
        env_file=env_file,
        memory=memory,
        memory_swap=memory_swap,
        cpu_shares=cpu_shares,
        cpuset_cpus=cpuset_cpus,
        pids_limit=pids_limit,
    )
    run_options.apply_security(
        body,
        privileged=privileged,
        cap_add=cap_add,
        cap_drop=cap_drop,
        security_opt=security_opt,
        read_only=read_only,
        device=device,
        device_cgroup_rule=device_cgroup_rule,
        sysctl=sysctl,
        userns=userns,
    )
    run_options.apply_logging(body, log_driver=log_driver, log_opt=log_opt)
    typer.echo(create_container(client(ctx), body, name, command="create", pull=_puller(ctx, image)))


def run(
    ctx: typer.Context,
    image: Image,
    command: Command = None,
    detach: Detach = False,
    rm: Rm = False,
    interactive: Interactive = False,
    tty: Tty = False,
    env: Env = None,
    name: Name = None,
    hostname: Hostname = None,
    workdir: Workdir = None,
    user: User = None,
    entrypoint: Entrypoint = None,
    sig_proxy: SigProxy = True,
    publish: run_options.Publish = None,
    publish_all: run_options.PublishAll = False,
    network: run_options.Network = "default",
    dns: run_options.Dns = None,
    add_host: run_options.AddHost = None,
    expose: run_options.Expose = None,
    volume: run_options.Volume = None,
    bind: run_options.Bind = None,
    volumes_from: run_options.VolumesFrom = None,
    restart: run_options.Restart = "no",
    label: run_options.Label = None,
    log_driver: run_options.LogDriver = "",
    log_opt: run_options.LogOpt = None,
    env_file: run_options.EnvFile = None,
    memory: run_options.Memory = None,
    memory_swap: run_options.MemorySwap = None,
    cpu_shares: run_options.CpuShares = 0,
    cpuset_cpus: run_options.CpusetCpus = "",
    pids_limit: run_options.PidsLimit = 0,
    privileged: run_options.Privileged = False,
    cap_add: run_options.CapAdd = None,
    cap_drop: run_options.CapDrop = None,
    security_opt: run_options.SecurityOpt = None,
    read_only: run_options.ReadOnly = False,
    device: run_options.Device = None,
    device_cgroup_rule: run_options.DeviceCgroupRule = None,
    sysctl: run_options.Sysctl = None,
    userns: run_options.Userns = "",
) -> None:
    """Create and run a new container from an image."""
    if tty and interactive and not detach and not sys.stdin.isatty():
        raise CliError("the input device is not a TTY")
    api = client(ctx)
    body = build_create_body(
        image,
        command,
        env=env,
        hostname=hostname,
        workdir=workdir,
        user=user,
        entrypoint=entrypoint,
        interactive=interactive,
        tty=tty,
        attach=not detach,
        auto_remove=rm,
    )
    run_options.apply(
        body,
        publish=publish,
        publish_all=publish_all,
        network=network,
        dns=dns,
        add_host=add_host,
        expose=expose,
        volume=volume,
        bind=bind,
        volumes_from=volumes_from,
        restart=restart,
        label=label,
        env_file=env_file,
        memory=memory,
        memory_swap=memory_swap,
        cpu_shares=cpu_shares,
        cpuset_cpus=cpuset_cpus,
        pids_limit=pids_limit,
    )
    run_options.apply_security(
        body,
        privileged=privileged,
        cap_add=cap_add,
        cap_drop=cap_drop,
        security_opt=security_opt,
        read_only=read_only,
        device=device,
        device_cgroup_rule=device_cgroup_rule,
        sysctl=sysctl,
        userns=userns,
    )
    run_options.apply_logging(body, log_driver=log_driver, log_opt=log_opt)
    container_id = create_container(api, body, name, command="run", pull=_puller(ctx, image))
    if detach:
        try:
            api.post(f"/containers/{container_id}/start")
        except CliError as exc:
            failed = StartFailed(exc)
            warn(f"dockyard: {failed}")
            raise typer.Exit(failed.exit_code) from None
        typer.echo(container_id)
        return
    try:
        status = attach_and_wait(
            api,
            container_id,
            tty=tty,
            stdin=interactive,
            condition="removed" if rm else "next-exit",
            sig_proxy=sig_proxy,
        )
    except StartFailed as exc:
        warn(f"dockyard: {exc}")
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(status)


# -- lifecycle ----------------------------------------------------------------------------------


def start(
    ctx: typer.Context,
    containers: Containers,
    attach: Annotated[bool, typer.Option("-a", "--attach", help="Attach STDOUT/STDERR and forward signals")] = False,
    interactive: Annotated[bool, typer.Option("-i", "--interactive", help="Attach container's STDIN")] = False,
) -> None:
    """Start one or more stopped containers."""
    api = client(ctx)
    if attach or interactive:
        if len(containers) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        info = api.inspect_container(containers[0])
        config = info.get("Config") or {}
        status = attach_and_wait(
            api,
            info["Id"],
            tty=bool(config.get("Tty")),
            stdin=interactive and bool(config.get("OpenStdin")),
            condition="next-exit",
        )
        raise typer.Exit(status)
    failures = Failures()
    for name in containers:
        try:
            api.post(f"/containers/{quote_ref(name)}/start")
        except CliError as exc:
            failures.report(exc)
            continue
        typer.echo(name)
    failures.exit_if_any()


def _each(ctx: typer.Context, containers: list[str], action: str, **params: Any) -> None:
    api = client(ctx)
    failures = Failures()
    for name in containers:
        try:
            api.post(f"/containers/{quote_ref(name)}/{action}", **params)
        except CliError as exc:
            failures.report(exc)
            continue
        typer.echo(name)
    failures.exit_if_any()


Timeout = Annotated[
    int | None, typer.Option("-t", "--time", "--timeout", help="Seconds to wait before killing the container")
]


def stop(ctx: typer.Context, containers: Containers, time: Timeout = None) -> None:
    """Stop one or more running containers."""
    _each(ctx, containers, "stop", t=time)


def restart(ctx: typer.Context, containers: Containers, time: Timeout = None) -> None:
    """Restart one or more containers."""
    _each(ctx, containers, "restart", t=time)


def kill(
    ctx: typer.Context,
    containers: Containers,
    signal: Annotated[str | None, typer.Option("-s", "--signal", help="Signal to send to the container")] = None,
) -> None:
    """Kill one or more running containers."""
    _each(ctx, containers, "kill", signal=signal)


def wait(ctx: typer.Context, containers: Containers) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    api = client(ctx)
    failures = Failures()
    for name in containers:
        try:
            answer = api.wait(name)
        except CliError as exc:
            failures.report(exc)
            continue
        typer.echo(str(answer.get("StatusCode", 0)))
    failures.exit_if_any()


def rm(
    ctx: typer.Context,
    containers: Containers,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Force the removal of a running container (uses SIGKILL)")
    ] = False,
    volumes: Annotated[
        bool, typer.Option("-v", "--volumes", help="Remove anonymous volumes associated with the container")
    ] = False,
) -> None:
    """Remove one or more containers."""
    api = client(ctx)
    failures = Failures()
    for name in containers:
        try:
            api.delete(f"/containers/{quote_ref(name)}", force=force, v=volumes)
        except CliError as exc:
            failures.report(exc)
            continue
        typer.echo(name)
    failures.exit_if_any()


# -- ls -----------------------------------------------------------------------------------------


def _names(names: list[str] | None, no_trunc: bool) -> str:
    stripped = [n[1:] if n.startswith("/") else n for n in names or []]
    if not no_trunc:
        for name in stripped:
            if "/" not in name:  # hide link aliases like /web/db
                return name
    return ",".join(stripped)


def ps_rows(containers: list[dict[str, Any]], no_trunc: bool, now: float | None = None) -> list[list[str]]:
    rows = []
    for c in containers:
        command = c.get("Command") or ""
        image = c.get("Image") or ""
        if not no_trunc:
            command = fmt.ellipsis(command, 20)
            if image.startswith("sha256:"):
                image = fmt.short_id(image)
        rows.append(
            [
                fmt.short_id(c.get("Id", ""), no_trunc),
                image,
                fmt.go_quote(command),
                fmt.time_ago(c.get("Created"), now),
                c.get("Status") or "",
                fmt.format_ports(c.get("Ports")),
                _names(c.get("Names"), no_trunc),
            ]
        )
    return rows


PS_HEADERS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]


def ls(
    ctx: typer.Context,
    all: Annotated[bool, typer.Option("-a", "--all", help="Show all containers (default shows just running)")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only display container IDs")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output")] = False,
    last: Annotated[
        int, typer.Option("-n", "--last", help="Show n last created containers (includes all states)")
    ] = -1,
    latest: Annotated[
        bool, typer.Option("-l", "--latest", help="Show the latest created container (includes all states)")
    ] = False,
    filter: Annotated[
        list[str] | None, typer.Option("-f", "--filter", help="Filter output based on conditions provided (name=value)")
    ] = None,
    size: Annotated[bool, typer.Option("-s", "--size", help="Display total file sizes")] = False,
    format: ListFormat = None,
) -> None:
    """List containers."""
    if latest and last == -1:
        last = 1
    limit = last if last > 0 else None
    containers = client(ctx).get_json(
        "/containers/json",
        all=all or limit is not None,
        limit=limit,
        filters=parse_filters(filter),
        size=size or None,
    )
    if quiet:
        for c in containers:
            typer.echo(fmt.short_id(c.get("Id", ""), no_trunc))
        return
    if format:
        typer.echo(render_listing(CONTAINER, format, (container_row(c, no_trunc) for c in containers)), nl=False)
        return
    rows = ps_rows(containers, no_trunc)
    headers = PS_HEADERS
    if size:
        headers = [*PS_HEADERS, "SIZE"]
        for row, c in zip(rows, containers, strict=True):
            row.append(f"{fmt.human_size(c.get('SizeRw') or 0)} (virtual {fmt.human_size(c.get('SizeRootFs') or 0)})")
    typer.echo(fmt.render_table(headers, rows), nl=False)


# -- logs / inspect -----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def timestamp_arg(value: str | None, now: float | None = None) -> str | None:
    """``--since``/``--until``: unix seconds, a Go duration ago ("10m", "1h30m") or RFC 3339."""
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if _DURATION.fullmatch(value) or re.fullmatch(rf"(?:{_DURATION.pattern})+", value):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
        return f"{(time.time() if now is None else now) - seconds:.9f}"
    ts = fmt.parse_timestamp(value if "T" in value or " " in value else value + "T00:00:00Z")
    if ts is None:
        raise CliError(f'invalid value for "since"/"until": {value}')
    return f"{ts:.9f}"


def logs(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Follow log output")] = False,
    tail: Annotated[
        str, typer.Option("-n", "--tail", help='Number of lines to show from the end of the logs ("all")')
    ] = "all",
    timestamps: Annotated[bool, typer.Option("-t", "--timestamps", help="Show timestamps")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help='Show logs since timestamp or relative (e.g. "42m")')
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help='Show logs before a timestamp or relative (e.g. "42m")')
    ] = None,
) -> None:
    """Fetch the logs of a container."""
    api = client(ctx)
    info = api.inspect_container(container)
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {
        "stderr": True,
        "stdout": True,
        "follow": follow,
        "tail": tail,
        "timestamps": timestamps,
        "since": timestamp_arg(since),
        "until": timestamp_arg(until),
    }
    with api.stream("GET", f"/containers/{info['Id']}/logs", params=params) as response:
        demux_to(response.iter_bytes(), stdout_bytes(), stderr_bytes(), tty=tty)


def inspect(
    ctx: typer.Context,
    containers: Containers,
    format: FormatOption = None,
) -> None:
    """Display detailed information on one or more containers."""
    inspect_objects(client(ctx), containers, [Kind.container], format)


def port(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CONTAINER")],
    private_port: Annotated[str | None, typer.Argument(metavar="[PRIVATE_PORT[/PROTO]]")] = None,
) -> None:
    """List port mappings or a specific mapping for the container."""
    from .network import port_lines

    lines = port_lines(client(ctx).inspect_container(name), private_port)
    if private_port and not lines:
        raise CliError(
            f"Error: No public port '{private_port if '/' in private_port else private_port + '/tcp'}'"
            f" published for {name}"
        )
    for line in lines:
        typer.echo(line)


def rename(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CONTAINER")],
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME")],
) -> None:
    """Rename a container."""
    client(ctx).post(f"/containers/{quote_ref(name)}/rename", None, name=new_name)


def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SRC", help="CONTAINER:SRC_PATH or a local path")],
    destination: Annotated[str, typer.Argument(metavar="DEST", help="CONTAINER:DEST_PATH or a local path")],
) -> None:
    """Copy files/folders between a container and the local filesystem."""
    from . import copy

    copy.copy(client(ctx), source, destination)


def attach(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CONTAINER")],
    no_stdin: Annotated[bool, typer.Option("--no-stdin", help="Do not attach STDIN")] = False,
    sig_proxy: SigProxy = True,
    detach_keys: Annotated[
        str | None,
        typer.Option(
            "--detach-keys", help="Override the key sequence for detaching a container (default ctrl-p,ctrl-q)"
        ),
    ] = None,
) -> None:
    """Attach local standard input, output, and error streams to a running container.

    Detach with ctrl-p ctrl-q (the container keeps running); otherwise the exit
    status is the container's.
    """
    from .session import attach_running

    api = client(ctx)
    info = api.inspect_container(name)
    if not info["State"]["Running"]:
        raise CliError("You cannot attach to a stopped container, start it first")
    if info["State"].get("Paused"):
        raise CliError("You cannot attach to a paused container, unpause it first")
    code = attach_running(
        api,
        info["Id"],
        tty=bool(info["Config"].get("Tty")),
        stdin=not no_stdin and bool(info["Config"].get("OpenStdin")),
        sig_proxy=sig_proxy,
        detach_keys=detach_keys,
    )
    raise typer.Exit(code)
