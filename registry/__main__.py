"""``python -m dockyard.registry``: the registry server without the dockyard CLI."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .app import run_forever
from .config import RegistryConfig


def parse(argv: list[str] | None = None) -> RegistryConfig:
    p = argparse.ArgumentParser(prog="dockyard-registry")
    p.add_argument("--listen")
    p.add_argument("--root")
    p.add_argument("--config", type=Path)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--auth", dest="auth_mode", choices=["none", "basic", "token"])
    p.add_argument("--users")
    p.add_argument("--admin", dest="admins", action="append", default=[])
    p.add_argument("--token-ttl", type=int)
    p.add_argument("--secret-file", help="token signing key shared by replicas (hex)")
    p.add_argument("--accounts", choices=["closed", "open"], help="open: a login with a new name registers it")
    p.add_argument("--realm")
    p.add_argument("--storage-driver", dest="storage_driver", choices=["filesystem", "s3"])
    p.add_argument("--s3-bucket", dest="storage_bucket")
    p.add_argument("--s3-endpoint", dest="storage_endpoint_url")
    p.add_argument("--s3-prefix", dest="storage_prefix")
    p.add_argument("--s3-create-bucket", dest="storage_create_bucket", action="store_true", default=None)
    p.add_argument("--debug", action="store_true")
    args = vars(p.parse_args(argv))
    config = args.pop("config")
    debug = args.pop("debug")
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return RegistryConfig.load(config, **args)
    except (OSError, ValueError) as exc:
        p.exit(2, f"dockyard-registry: invalid settings: {exc}\n")


def main(argv: list[str] | None = None) -> None:
    config = parse(argv)
    try:
        run_forever(config)
    except ValueError as exc:  # settings the server refuses, e.g. token auth on 0.0.0.0 without a realm
        raise SystemExit(f"dockyard-registry: invalid settings: {exc}") from None


if __name__ == "__main__":
    main()
