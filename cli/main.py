"""The ``dockyard`` program: run the typer app (:mod:`dockyard.cli.app`) as a process.

Which commands exist, where each one's function lives and under which names
(``dockyard container ls`` and ``dockyard ps`` run the same function, as with
docker/cli's ``RegisterLegacy``) is the table in :mod:`dockyard.cli.commands`; the
root group lists it and builds only the command that runs.  This module adds what
only a process needs: the SIGPIPE disposition, no cycle collection during
start-up, and an exit without interpreter tear-down for client commands.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
from importlib import import_module
from typing import Any, NoReturn

from .commands import COMMANDS, COMMON, DAEMON, MANAGEMENT, Command, Group, lookup

__all__ = ["app", "leave", "main", "serves"]  # noqa: F822 - app comes from __getattr__, on demand
__all__ += ["COMMANDS", "COMMON", "DAEMON", "MANAGEMENT"]  # the help panels, for apps extending this one

#: global options that take a value (they come before the command's name)
_VALUED = ("-H", "--host", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey")


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
    # Importing typer and building the command make dozens of cycle collections that free
    # nothing (~5 ms); the root callback (cli/app.py) turns collection back on.
    gc.disable()
    if "_DOCKYARD_COMPLETE" in os.environ:  # a shell asks for candidates (cli/completion.py)
        from .completion import enable

        enable()
    program = sys.modules[__name__].app  # cli/app.py's (see __getattr__), or what a caller put in its place
    if serves(sys.argv[1:]):
        # Servers keep Python's SIGPIPE disposition (ignored), so a client that leaves mid-stream is an
        # EPIPE for one request, never the death of the server.
        program(prog_name="dockyard")
        return
    # A client dies quietly on a closed pipe (`dockyard logs x | head`), as Go programs like docker do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        program(prog_name="dockyard")
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
    # ``main.app`` (the typer app, for CliRunner and for scripts extending it) and ``main.container``
    # and the like (the resource modules and their typer sub-apps), imported on first use.
    if name in ("app", "LogLevel"):
        return getattr(import_module("dockyard.cli.app"), name)
    if name in (
        "build",
        "container",
        "events",
        "exec_commands",
        "image",
        "inspect",
        "layers",
        "network",
        "registry",
        "registry_server",
        "system",
    ):
        return import_module(f"dockyard.cli.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
