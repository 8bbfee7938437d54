"""The ``dockyard`` command: the global options, then one command built on demand.

Which commands exist, where each one's function lives and under which names
(``dockyard container ls`` and ``dockyard ps`` run the same function, as with
docker/cli's ``RegisterLegacy``) is the table in :mod:`dockyard.cli.commands`; the
root group (:class:`~dockyard.cli.context.DockyardGroup`) lists it and builds only
the command that runs, so that ``dockyard ps`` starts in a few tens of
milliseconds.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from enum import Enum
from importlib import import_module
from typing import Annotated, Any, NoReturn

import typer

from .commands import COMMANDS, COMMON, DAEMON, MANAGEMENT, Command, Group, lookup
from .context import DockyardGroup, Globals

__all__ = ["app", "main", "serves"]
__all__ += ["COMMANDS", "COMMON", "DAEMON", "MANAGEMENT"]  # the help panels, for apps extending this one

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


#: global options that take a value (they come before the command's name)
_VALUED = ("-H", "--host", "-l", "--log-level")


def serves(argv: list[str]) -> bool:
    """Whether ``argv`` (without the program name) runs a server (``daemon``, ``registry serve``)."""
    words: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _VALUED:
            next(args, None)
        elif not arg.startswith("-"):
            words.append(arg)
            entry = lookup(words)
            if not isinstance(entry, Group):
                return isinstance(entry, Command) and entry.serves
    return False


def main() -> None:
    if serves(sys.argv[1:]):
        # Servers keep Python's SIGPIPE disposition (ignored), so a client that leaves mid-stream is an
        # EPIPE for one request, never the death of the server.
        app(prog_name="dockyard")
        return
    # A client dies quietly on a closed pipe (`dockyard logs x | head`), as Go programs like docker do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        app(prog_name="dockyard")
    except SystemExit as done:
        leave(done.code)


def leave(code: object) -> NoReturn:
    """End a client command at once, without tearing the interpreter down.

    Freeing typer's and our modules one by one costs ~15 ms of every command, for a
    process that is about to vanish.  What that tear-down would still do for a client
    is done here: wait for non-daemon threads (the CLI starts none), run the atexit
    handlers, flush the standard streams (Python's status 120 if that fails), and exit
    with ``sys.exit``'s status for ``code``.  Files a command writes are closed by the
    command itself.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120
    os._exit(status)


def __getattr__(name: str) -> Any:
    # ``main.container`` and the like: the resource modules (and their typer sub-apps) for code
    # written against the eagerly assembled CLI; imported on first use.
    if name in ("build", "container", "events", "exec_commands", "image", "inspect", "layers", "network",
                "registry", "system"):
        return import_module(f"dockyard.cli.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
