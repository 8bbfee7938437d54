"""``dockyard version`` and ``dockyard system info`` (alias ``info``)."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from . import formatting as fmt
from .client import API_VERSION, CliError
from .context import client, globals_of, warn
from .template import TemplateError, render

__all__ = ["app", "info", "version", "client_version", "render_version", "render_info"]

#: ``dockyard system``: the sub-app's own settings; its commands are listed in cli/commands.py
app = typer.Typer(name="system", help="Manage dockyard", no_args_is_help=True)

Format = Annotated[str | None, typer.Option("-f", "--format", help="Format output using a Go template subset")]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def client_version() -> str:
    # The package's own constant, as the daemon reports it (importlib.metadata would cost ~10 ms
    # of every `version`; tests/unit/test_packaging.py holds the two equal).
    from dockyard import __version__

    return __version__


def _ansic(value: str) -> str:
    """RFC 3339 -> Go's ANSIC layout ("Thu May  7 21:09:36 2026"), as docker prints Built."""
    ts = fmt.parse_timestamp(value)
    if ts is None:
        return value
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return f"{dt:%a %b} {dt.day:2d} {dt:%H:%M:%S %Y}"


def _aligned(lines: list[tuple[str, str]], minwidth: int = 20) -> list[str]:
    """tabwriter(minwidth=20, padding=1) over "label:<TAB>value" lines."""
    width = max([minwidth] + [len(label) + 1 for label, _ in lines])
    return [label.ljust(width) + value for label, value in lines]


def render_version(client_info: dict[str, Any], server: dict[str, Any] | None) -> str:
    out = ["Client:"]
    out += _aligned(
        [
            (" Version:", client_info["Version"]),
            (" API version:", client_info["ApiVersion"]),
            (" Python version:", client_info["PythonVersion"]),
            (" OS/Arch:", f"{client_info['Os']}/{client_info['Arch']}"),
        ]
    )
    if server is None:
        return "\n".join(out) + "\n"
    name = (server.get("Platform") or {}).get("Name") or ""
    out += ["", "Server:" + (f" {name}" if name else "")]
    components = server.get("Components") or [
        {
            "Name": "Engine",
            "Version": server.get("Version", ""),
            "Details": {
                "ApiVersion": server.get("ApiVersion", ""),
                "MinAPIVersion": server.get("MinAPIVersion", ""),
                "GitCommit": server.get("GitCommit", ""),
                "BuildTime": server.get("BuildTime", ""),
                "Os": server.get("Os", ""),
                "Arch": server.get("Arch", ""),
                "Experimental": str(server.get("Experimental", "false")).lower(),
            },
        }
    ]
    for component in components:
        details = component.get("Details") or {}
        out.append(f" {component.get('Name', '')}:")
        if component.get("Name") == "Engine":
            lines = [
                ("  Version:", component.get("Version", "")),
                (
                    "  API version:",
                    f"{details.get('ApiVersion', '')} (minimum version {details.get('MinAPIVersion', '')})",
                ),
            ]
            for key, label in (
                ("GoVersion", "Go version"),
                ("PythonVersion", "Python version"),
                ("GitCommit", "Git commit"),
            ):
                if details.get(key):
                    lines.append((f"  {label}:", str(details[key])))
            lines += [
                ("  Built:", _ansic(str(details.get("BuildTime", "")))),
                ("  OS/Arch:", f"{details.get('Os', '')}/{details.get('Arch', '')}"),
                ("  Experimental:", str(details.get("Experimental", "false"))),
            ]
        else:
            lines = [("  Version:", component.get("Version", ""))]
            lines += [(f"  {key}:", str(value)) for key, value in details.items()]
        out += _aligned(lines)
    return "\n".join(out) + "\n"


def version(ctx: typer.Context, format: Format = None) -> None:
    """Show the dockyard version information."""
    client_info = {
        "Version": client_version(),
        "ApiVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform if sys.platform != "linux" else "linux",
        "Arch": _ARCH.get(platform.machine(), platform.machine()),
    }
    server: dict[str, Any] | None = None
    error: CliError | None = None
    try:
        server = client(ctx).get_json("/version")
    except CliError as exc:
        error = exc
    if format:
        try:
            typer.echo(render(format, {"Client": client_info, "Server": server}))
        except TemplateError as exc:
            raise CliError(f"template: {exc}") from None
    else:
        typer.echo(render_version(client_info, server if error is None else None), nl=False)
    if error is not None:
        if not format:
            typer.echo("")
        raise error


# -- info ---------------------------------------------------------------------------------------


def _line(out: list[str], indent: int, label: str, value: Any) -> None:
    if value is None or value == "" or value == []:
        return
    if isinstance(value, bool):
        value = "true" if value else "false"
    out.append(f"{' ' * indent}{label}: {value}")


def render_info(data: dict[str, Any]) -> str:
    """The Server section of ``docker info`` (fields the daemon does not send are left out)."""
    out = ["Server:"]
    _line(out, 1, "Containers", data.get("Containers"))
    _line(out, 2, "Running", data.get("ContainersRunning"))
    _line(out, 2, "Paused", data.get("ContainersPaused"))
    _line(out, 2, "Stopped", data.get("ContainersStopped"))
    _line(out, 1, "Images", data.get("Images"))
    _line(out, 1, "Server Version", data.get("ServerVersion"))
    _line(out, 1, "Storage Driver", data.get("Driver"))
    for pair in data.get("DriverStatus") or []:
        if len(pair) == 2:
            _line(out, 2, pair[0], pair[1])
    _line(out, 1, "Logging Driver", data.get("LoggingDriver"))
    _line(out, 1, "Cgroup Driver", data.get("CgroupDriver"))
    _line(out, 1, "Cgroup Version", data.get("CgroupVersion"))
    plugins = data.get("Plugins") or {}
    if plugins:
        out.append(" Plugins:")
        for kind in ("Volume", "Network", "Authorization", "Log"):
            if plugins.get(kind):
                _line(out, 2, kind, " ".join(plugins[kind]))
    swarm = data.get("Swarm") or {}
    _line(out, 1, "Swarm", swarm.get("LocalNodeState"))
    runtimes = data.get("Runtimes") or {}
    if runtimes:
        _line(out, 1, "Runtimes", " ".join(sorted(runtimes)))
    _line(out, 1, "Default Runtime", data.get("DefaultRuntime"))
    _line(out, 1, "Init Binary", data.get("InitBinary"))
    security = data.get("SecurityOptions") or []
    if security:
        out.append(" Security Options:")
        for option in security:
            fields = dict(kv.partition("=")[::2] for kv in option.split(","))
            out.append(f"  {fields.pop('name', option)}")
            for key, value in fields.items():
                out.append(f"   {key.title()}: {value}")
    _line(out, 1, "Kernel Version", data.get("KernelVersion"))
    _line(out, 1, "Operating System", data.get("OperatingSystem"))
    _line(out, 1, "OSType", data.get("OSType"))
    _line(out, 1, "Architecture", data.get("Architecture"))
    _line(out, 1, "CPUs", data.get("NCPU"))
    if data.get("MemTotal") is not None:
        _line(out, 1, "Total Memory", fmt.bytes_size(data["MemTotal"]))
    _line(out, 1, "Name", data.get("Name"))
    _line(out, 1, "ID", data.get("ID"))
    _line(out, 1, "Docker Root Dir", data.get("DockerRootDir"))
    _line(out, 1, "Debug Mode", data.get("Debug"))
    _line(out, 1, "Experimental", data.get("ExperimentalBuild"))
    insecure = (data.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if insecure:
        out.append(" Insecure Registries:")
        out += [f"  {cidr}" for cidr in insecure]
    mirrors = (data.get("RegistryConfig") or {}).get("Mirrors") or []
    if mirrors:
        out.append(" Registry Mirrors:")
        out += [f"  {mirror}" for mirror in mirrors]
    _line(out, 1, "Live Restore Enabled", data.get("LiveRestoreEnabled"))
    return "\n".join(out) + "\n"


def info(ctx: typer.Context, format: Format = None) -> None:
    """Display system-wide information."""
    data = client(ctx).get_json("/info") if format else None
    if format:
        try:
            typer.echo(render(format, data))
        except TemplateError as exc:
            raise CliError(f"template: {exc}") from None
        return
    debug = globals_of(ctx).log_level == "debug"
    typer.echo("Client:")
    typer.echo(f" Version:    {client_version()}")
    typer.echo(f" Debug Mode: {'true' if debug else 'false'}")
    typer.echo("")
    try:
        data = client(ctx).get_json("/info")
    except CliError as exc:
        typer.echo("Server:")
        raise CliError(f"ERROR: {exc}\nerrors pretty printing info") from None
    typer.echo(render_info(data), nl=False)
    for warning in data.get("Warnings") or []:
        warn(warning)
