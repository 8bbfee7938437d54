"""``dockyard daemon``: run the engine in the foreground."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer


def daemon(
    host: Annotated[
        Optional[list[str]],
        typer.Option(
            "-H", "--host", help="Listen address: unix:///path, tcp://host:port (default port 4243); repeat for several"
        ),
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", "-g", help="Root of persistent state [default: /var/lib/dockyard]")
    ] = None,
    storage_driver: Annotated[
        Optional[str], typer.Option("--storage-driver", "-s", help="Storage driver name (default: the first usable)")
    ] = None,
    exec_driver: Annotated[Optional[str], typer.Option("--exec-driver", "-e", help="Execution driver")] = None,
    network_driver: Annotated[Optional[str], typer.Option("--network-driver", help="Network driver")] = None,
    exec_opt: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exec-opt",
            help="KEY=VALUE for the exec driver (oci: runtime, runtimes, conmon, log_level; lxc: seccomp, log_level)",
        ),
    ] = None,
    runtime: Annotated[
        Optional[str],
        typer.Option(
            "--runtime",
            "--default-runtime",
            help="Default runtime of the exec driver (oci: runc or crun); docker run --runtime picks another",
        ),
    ] = None,
    add_runtime: Annotated[
        Optional[list[str]],
        typer.Option("--add-runtime", help="NAME=PATH: one more runtime for docker run --runtime (oci driver)"),
    ] = None,
    storage_opt: Annotated[
        Optional[list[str]], typer.Option("--storage-opt", help="KEY=VALUE for the storage driver")
    ] = None,
    storage_migrate: Annotated[
        Optional[bool],
        typer.Option(
            "--storage-migrate",
            help="Move the layers of a data root made by another storage driver to --storage-driver",
        ),
    ] = None,
    network_opt: Annotated[
        Optional[list[str]],
        typer.Option(
            "--network-opt", help="KEY=VALUE for the network driver (bridge: bridge, bip, fixed_cidr, mtu, ...)"
        ),
    ] = None,
    bridge: Annotated[
        Optional[str], typer.Option("--bridge", "-b", help="Name of the default bridge (network option bridge)")
    ] = None,
    bip: Annotated[
        Optional[str], typer.Option("--bip", help="The bridge's address and prefix, e.g. 10.66.0.1/16")
    ] = None,
    fixed_cidr: Annotated[
        Optional[str], typer.Option("--fixed-cidr", help="Sub-range of the bridge subnet for container addresses")
    ] = None,
    insecure_registry: Annotated[
        Optional[list[str]],
        typer.Option(
            "--insecure-registry", help="Registry (host:port or CIDR) reached over plain HTTP; loopback always is"
        ),
    ] = None,
    registry_mirror: Annotated[
        Optional[list[str]],
        typer.Option(
            "--registry-mirror",
            help="Registry mirror URL "
            "(http[s]://host:port) tried first for images of the default index; repeat for "
            "several",
        ),
    ] = None,
    registry_opt: Annotated[
        Optional[list[str]],
        typer.Option(
            "--registry-opt",
            help="KEY=VALUE for the distribution driver (index-url, compression=zstd, compression-level, ...)",
        ),
    ] = None,
    max_concurrent_downloads: Annotated[
        Optional[int], typer.Option("--max-concurrent-downloads", help="Layers pulled at a time [default: 3]")
    ] = None,
    max_concurrent_uploads: Annotated[
        Optional[int], typer.Option("--max-concurrent-uploads", help="Layers pushed at a time [default: 5]")
    ] = None,
    observer_opt: Annotated[
        Optional[list[str]],
        typer.Option("--observer-opt", help="KEY=VALUE for observer plugins (e.g. webhook-url=http://...)"),
    ] = None,
    log_driver: Annotated[
        Optional[str],
        typer.Option("--log-driver", help="Default log driver of containers: json-file or none [default: json-file]"),
    ] = None,
    log_opt: Annotated[
        Optional[list[str]],
        typer.Option("--log-opt", help="KEY=VALUE default log option (json-file: max-size, max-file)"),
    ] = None,
    config_file: Annotated[
        Optional[Path], typer.Option("--config", help="TOML file with the same keys as these flags (flags win)")
    ] = None,
    debug: Annotated[Optional[bool], typer.Option("--debug", "-D", help="Debug logging (also DEBUG=1)")] = None,
    pidfile: Annotated[
        Optional[Path], typer.Option("--pidfile", "-p", help="Pid file [default: <data-root>/dockyard.pid]")
    ] = None,
    seccomp_profile: Annotated[
        Optional[Path],
        typer.Option(
            "--seccomp-profile",
            help="Seccomp profile (Docker's JSON format) for containers that name none [default: Docker's]",
        ),
    ] = None,
    no_new_privileges: Annotated[
        Optional[bool], typer.Option("--no-new-privileges", help="Set no-new-privileges for new containers by default")
    ] = None,
    tls: Annotated[Optional[bool], typer.Option("--tls", help="Serve TCP over TLS (--tlscert, --tlskey)")] = None,
    tlsverify: Annotated[
        Optional[bool],
        typer.Option(
            "--tlsverify",
            help="Serve TCP over TLS and require client certificates signed by --tlscacert (implies --tls)",
        ),
    ] = None,
    tlscacert: Annotated[
        Optional[Path],
        typer.Option(
            "--tlscacert",
            help="Trust client certificates signed by this CA [default: $DOCKER_CERT_PATH or ~/.docker, ca.pem]",
        ),
    ] = None,
    tlscert: Annotated[
        Optional[Path], typer.Option("--tlscert", help="The server's TLS certificate [default: cert.pem there]")
    ] = None,
    tlskey: Annotated[
        Optional[Path], typer.Option("--tlskey", help="The server's TLS key [default: key.pem there]")
    ] = None,
    api_cors_header: Annotated[
        Optional[str],
        typer.Option(
            "--api-cors-header",
            help="The Origin browsers may "
            "call the API from ('*' for any); without it cross-origin requests are refused",
        ),
    ] = None,
    ui: Annotated[
        Optional[bool],
        typer.Option("--ui", help="Serve the web UI at /ui/ (on a unix socket: reach it with `dockyard ui`)"),
    ] = None,
) -> None:
    """Run the dockyard daemon in the foreground (needs root)."""
    from dockyard.daemon import config as daemon_config
    from dockyard.daemon.main import run
    from dockyard.errors import DockyardError

    opts = _key_values("--storage-opt", storage_opt)
    net_opts = _key_values("--network-opt", network_opt)
    for key, value in (("bridge", bridge), ("bip", bip), ("fixed_cidr", fixed_cidr)):
        if value:
            net_opts[key] = value
    if debug is None and os.environ.get("DEBUG", "0") not in ("", "0"):
        debug = True
    flags = {
        "hosts": host,
        "data_root": data_root,
        "storage_driver": storage_driver,
        "exec_driver": exec_driver,
        "network_driver": network_driver,
        "storage_opts": opts,
        "storage_migrate": storage_migrate,
        "network_opts": net_opts,
        "exec_opts": _key_values("--exec-opt", exec_opt),
        "runtime": runtime,
        "add_runtimes": add_runtime,
        "registry_opts": _key_values("--registry-opt", registry_opt),
        "insecure_registries": insecure_registry,
        "registry_mirrors": registry_mirror,
        "max_concurrent_downloads": max_concurrent_downloads,
        "max_concurrent_uploads": max_concurrent_uploads,
        "observer_opts": _key_values("--observer-opt", observer_opt),
        "debug": debug,
        "pidfile": pidfile,
        "seccomp_profile": seccomp_profile,
        "no_new_privileges": no_new_privileges,
        "tls": tls,
        "tlsverify": tlsverify,
        "tlscacert": tlscacert,
        "tlscert": tlscert,
        "tlskey": tlskey,
        "api_cors_header": api_cors_header,
        "ui": ui,
        "log_driver": log_driver,
        "log_opts": _key_values("--log-opt", log_opt),
    }
    try:
        config = daemon_config.load(config_file, flags)
    except DockyardError as exc:
        typer.echo(f"dockyard daemon: {exc}", err=True)
        raise typer.Exit(125) from None
    raise typer.Exit(run(config))


def _key_values(flag: str, items: Optional[list[str]]) -> dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            typer.echo(f"invalid {flag} {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(125)
        result[key] = value
    return result
