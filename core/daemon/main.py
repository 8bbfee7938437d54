"""Running the daemon in the foreground: lock, logging, engine, listeners, signals."""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path

from dockyard.confinement import DaemonSecurity
from dockyard.daemon.app import serve
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.ui import UiAssets
from dockyard.engine import Engine
from dockyard.errors import Conflict, DockyardError

log = logging.getLogger("dockyard")


def _lock_pidfile(path: Path) -> int:
    """Hold an exclusive lock on the pid file for the daemon's lifetime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode().strip() or "?"
        os.close(fd)
        raise Conflict(
            f"another dockyard daemon (pid {other}) is using {path}; only one daemon may run on a data root"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def setup_logging(config: DaemonConfig) -> None:
    level = logging.DEBUG if config.debug else logging.INFO
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    root.handlers.clear()
    log_file = config.data_root / "dockyard.log"
    os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
    os.chmod(log_file, 0o600)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    logging.getLogger("pyroute2").setLevel(logging.WARNING)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Bound glibc's malloc arenas.  glibc gives threads that allocate concurrently arenas of their
    own (up to 8 per core) and seldom returns what is freed in them, so under load the daemon's
    worker threads ratchet its RSS up for good (51 MB in a 2-minute, 16-client soak; 4.5 MB with
    two arenas).  Python's own allocator serves most small objects, so two cost no contention."""
    try:
        ctypes.CDLL(None).mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def run(config: DaemonConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    # A client that leaves while we write to it must cost an EPIPE on that one connection, never the
    # process: whoever started us (a CLI entry point, an init system) may have set SIGPIPE to SIG_DFL.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    limit_malloc_arenas()
    config.data_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    setup_logging(config)
    try:
        lock_fd = _lock_pidfile(config.pid_path)
    except DockyardError as exc:
        log.error("%s", exc)
        return 1
    try:
        tls = config.tls_settings().context()
        ui = UiAssets.find(config.ui_vendor) if config.ui else None
        security = DaemonSecurity.from_options(config.seccomp_profile, config.no_new_privileges)
        engine = Engine.open(
            config.data_root,
            config.storage_driver,
            config.exec_driver,
            config.network_driver,
            {
                "storage": config.storage_opts,
                "network": config.network_opts,
                "exec": config.exec_options(),
                "distribution": config.distribution_options(),
            },
            migrate_storage=config.storage_migrate,
            security=security,
            log_config=config.log_config(),
        )
    except DockyardError as exc:
        log.error("cannot start: %s", exc)
        return 1
    log.info(
        "dockyard daemon: data root %s, storage %s, exec %s, network %s",
        config.data_root,
        *(engine.drivers.names[k] for k in ("storage", "exec", "network")),
    )
    engine.observers.daemon_configured(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(
            engine,
            config.addresses(),
            stop,
            tls=tls,
            cors_origin=config.api_cors_header,
            ui_assets=ui,
            debug=config.debug,
        )

    try:
        asyncio.run(main())
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    finally:
        engine.close()
        os.close(lock_fd)
    log.info("dockyard daemon stopped")
    return 0
