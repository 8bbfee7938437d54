"""``dockyard daemon``: run the engine in the foreground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer


def daemon(
    host: Annotated[Optional[list[str]], typer.Option("-H", "--host", help="Listen address: unix:///path, "
                    "tcp://host:port (default port 4243); repeat for several")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", "-g", help="Root of persistent state "
                         "[default: /var/lib/dockyard]")] = None,
    storage_driver: Annotated[Optional[str], typer.Option("--storage-driver", "-s",
                              help="Storage driver name (default: the first usable)")] = None,
    exec_driver: Annotated[Optional[str], typer.Option("--exec-driver", "-e", help="Execution driver")] = None,
    network_driver: Annotated[Optional[str], typer.Option("--network-driver", help="Network driver")] = None,
    storage_opt: Annotated[Optional[list[str]], typer.Option("--storage-opt", help="KEY=VALUE for the "
                           "storage driver")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="TOML file with the same keys as "
                           "these flags (flags win)")] = None,
    debug: Annotated[Optional[bool], typer.Option("--debug", "-D", help="Debug logging (also DEBUG=1)")] = None,
    pidfile: Annotated[Optional[Path], typer.Option("--pidfile", "-p", help="Pid file "
                       "[default: <data-root>/dockyard.pid]")] = None,
) -> None:
    """Run the dockyard daemon in the foreground (needs root)."""
    from dockyard.daemon import config as daemon_config
    from dockyard.daemon.main import run
    from dockyard.errors import DockyardError

    opts = {}
    for item in storage_opt or []:
        key, sep, value = item.partition("=")
        if not sep:
            typer.echo(f"invalid --storage-opt {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(125)
        opts[key] = value
    if debug is None and os.environ.get("DEBUG", "0") not in ("", "0"):
        debug = True
    flags = {"hosts": host, "data_root": data_root, "storage_driver": storage_driver, "exec_driver": exec_driver,
             "network_driver": network_driver, "storage_opts": opts, "debug": debug, "pidfile": pidfile}
    try:
        config = daemon_config.load(config_file, flags)
    except DockyardError as exc:
        typer.echo(f"dockyard daemon: {exc}", err=True)
        raise typer.Exit(125) from None
    raise typer.Exit(run(config))
