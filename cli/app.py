"""The ``dockyard`` typer app: the global options, and the root group that holds every command.

The commands are listed in :mod:`dockyard.cli.commands` and built on demand by the
root group (:class:`~dockyard.cli.context.DockyardGroup`); :mod:`dockyard.cli.main`
runs this app as the ``dockyard`` program.
"""

from __future__ import annotations

import gc
from enum import Enum
from typing import Annotated

import typer

from .client import TlsOptions
from .context import DockyardGroup, Globals

__all__ = ["LogLevel", "app"]

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
        from .system import client_version

        typer.echo(f"Dockyard version {client_version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "-H",
            "--host",
            envvar="DOCKYARD_HOST",
            metavar="HOST",
            show_default="unix:///var/run/dockyard.sock",
            help="Daemon socket to connect to (unix:///path, tcp://host:port)",
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("-l", "--log-level", help="Set the logging level", case_sensitive=False)
    ] = LogLevel.info,
    version: Annotated[
        bool,
        typer.Option(
            "-v", "--version", callback=_print_version, is_eager=True, help="Print version information and quit"
        ),
    ] = False,
    tls: Annotated[bool, typer.Option("--tls", help="Use TLS; implied by --tlsverify")] = False,
    tlsverify: Annotated[
        bool | None,
        typer.Option("--tlsverify", help="Use TLS and verify the daemon (also DOCKER_TLS_VERIFY)", show_default=False),
    ] = None,
    tlscacert: Annotated[
        str | None,
        typer.Option(
            "--tlscacert", help="Trust certs signed only by this CA [default: $DOCKER_CERT_PATH or ~/.docker, ca.pem]"
        ),
    ] = None,
    tlscert: Annotated[str | None, typer.Option("--tlscert", help="Path to TLS certificate file")] = None,
    tlskey: Annotated[str | None, typer.Option("--tlskey", help="Path to TLS key file")] = None,
) -> None:
    """A self-sufficient runtime for containers (speaks the Docker Engine API)."""
    # dockyard.cli.main pauses cycle collection while typer and the command are imported and
    # built (dozens of collections that free nothing); the command itself runs with it, over
    # the objects it makes: what start-up made (modules, classes, the command) lives until exit.
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
    _setup_logging(log_level)
    ctx.obj = Globals(
        host_value=host[0] if host else None,
        log_level=log_level.value,
        tls=TlsOptions.resolve(tls, tlsverify, tlscacert, tlscert, tlskey),
    )


def _setup_logging(log_level: LogLevel) -> None:
    """Only the client's own logger follows --log-level (``dockyard daemon`` keeps
    full control of the root and ``dockyard`` loggers).

    The client logs its requests at debug level and nothing at info or above, so the
    default level needs no set-up (and no ``import logging``, a few milliseconds of
    every command's start)."""
    if log_level is LogLevel.info:
        return
    import logging

    level = {"warn": logging.WARNING, "fatal": logging.CRITICAL}.get(log_level.value, log_level.value.upper())
    logger = logging.getLogger("dockyard.cli")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
