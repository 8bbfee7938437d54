"""The ``dockyard`` command: resource sub-apps plus docker's top-level aliases.

``dockyard container ls`` and ``dockyard ps`` run the same function; the alias
table below plays the role of docker/cli's ``RegisterLegacy``.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from . import build as build_cmd, container, events, exec_commands, image, layers, network, registry, system
from .context import DockyardGroup, Globals
from .daemon import daemon
from .inspect import inspect

__all__ = ["app", "main"]

COMMON = "Common Commands"
MANAGEMENT = "Management Commands"
COMMANDS = "Other Commands"
DAEMON = "Daemon"

app = typer.Typer(
    name="dockyard",
    cls=DockyardGroup,
    help="A self-sufficient runtime for containers (speaks the Docker Engine API).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warn = "warn"
    error = "error"
    fatal = "fatal"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"Dockyard version {system.client_version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    host: Annotated[
        list[str] | None,
        typer.Option("-H", "--host", envvar="DOCKYARD_HOST", metavar="HOST",
                     show_default="unix:///var/run/dockyard.sock",
                     help="Daemon socket to connect to (unix:///path, tcp://host:port)"),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("-l", "--log-level", help="Set the logging level", case_sensitive=False)
    ] = LogLevel.info,
    version: Annotated[
        bool, typer.Option("-v", "--version", callback=_print_version, is_eager=True,
                           help="Print version information and quit")
    ] = False,
) -> None:
    """A self-sufficient runtime for containers (speaks the Docker Engine API)."""
    _setup_logging(log_level)
    ctx.obj = Globals(host_value=host[0] if host else None, log_level=log_level.value)


def _setup_logging(log_level: LogLevel) -> None:
    """Only the client's own logger follows --log-level (httpx stays quiet, and
    ``dockyard daemon`` keeps full control of the root and ``dockyard`` loggers)."""
    level = {"warn": logging.WARNING, "fatal": logging.CRITICAL}.get(log_level.value, log_level.value.upper())
    logger = logging.getLogger("dockyard.cli")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


app.add_typer(container.app, rich_help_panel=MANAGEMENT)
app.add_typer(image.app, rich_help_panel=MANAGEMENT)
app.add_typer(network.app, rich_help_panel=MANAGEMENT)
app.add_typer(registry.app, rich_help_panel=MANAGEMENT)
app.add_typer(system.app, rich_help_panel=MANAGEMENT)

#: (top-level name, function, help panel, click context settings)
LEGACY: list[tuple[str, Callable[..., Any], str, dict[str, Any] | None]] = [
    ("run", container.run, COMMON, container.PASSTHROUGH),
    ("build", build_cmd.build, COMMON, None),
    ("ps", container.ls, COMMON, None),
    ("images", image.ls, COMMON, None),
    ("version", system.version, COMMON, None),
    ("info", system.info, COMMON, None),
    ("create", container.create, COMMANDS, container.PASSTHROUGH),
    ("import", image.import_, COMMANDS, None),
    ("inspect", inspect, COMMANDS, None),
    ("kill", container.kill, COMMANDS, None),
    ("logs", container.logs, COMMANDS, None),
    ("restart", container.restart, COMMANDS, None),
    ("rm", container.rm, COMMANDS, None),
    ("rmi", image.rm, COMMANDS, None),
    ("start", container.start, COMMANDS, None),
    ("stop", container.stop, COMMANDS, None),
    ("wait", container.wait, COMMANDS, None),
    ("diff", layers.diff, COMMANDS, None),
    ("commit", layers.commit, COMMANDS, None),
    ("export", layers.export, COMMANDS, None),
    ("history", layers.history, COMMANDS, None),
    ("tag", layers.tag, COMMANDS, None),
    ("save", layers.save, COMMANDS, None),
    ("load", layers.load, COMMANDS, None),
    ("port", container.port, COMMANDS, None),
    ("rename", container.rename, COMMANDS, None),
    ("cp", container.cp, COMMANDS, None),
    ("attach", container.attach, COMMANDS, None),
    ("events", events.events, COMMANDS, None),
    ("pull", registry.pull, COMMON, None),
    ("push", registry.push, COMMON, None),
    ("login", registry.login, COMMANDS, None),
    ("logout", registry.logout, COMMANDS, None),
    ("search", registry.search, COMMANDS, None),
]

image.app.command("build")(build_cmd.build)
image.app.command("pull")(registry.pull)
image.app.command("push")(registry.push)

for _name, _func, _panel, _settings in LEGACY:
    app.command(_name, rich_help_panel=_panel, context_settings=_settings)(_func)
exec_commands.register(app, container.app, COMMANDS)  # dockyard exec ... and dockyard container exec ...

app.command("daemon", rich_help_panel=DAEMON)(daemon)


#: commands that serve clients: they keep Python's SIGPIPE disposition (ignored), so a client that
#: leaves mid-stream is an EPIPE for one request, never the death of the server
SERVERS = (("daemon",), ("registry", "serve"))
#: global options that take a value (they come before the command's name)
_VALUED = ("-H", "--host", "-l", "--log-level")


def serves(argv: list[str]) -> bool:
    """Whether ``argv`` (without the program name) runs one of :data:`SERVERS`."""
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            words.append(arg)
            if len(words) == 2:
                break
    return any(tuple(words[:len(command)]) == command for command in SERVERS)


def main() -> None:
    if not serves(sys.argv[1:]):
        # A client dies quietly on a closed pipe (`dockyard logs x | head`), as Go programs like docker do.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app(prog_name="dockyard")


if __name__ == "__main__":
    main()
