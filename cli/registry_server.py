"""``dockyard registry ...``: run a registry and administer it.

``serve`` runs the server (:mod:`dockyard.registry`); ``user`` and ``gc`` work
on its storage directly (offline, or beside running replicas), reading the same
settings file; ``describe`` and ``delete`` talk to a running registry with the
credentials ``dockyard login`` stored.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import CliError
from .registry import Credentials, server_key

__all__ = ["app"]

#: ``dockyard registry`` and ``dockyard registry user``: the sub-apps' own settings; their commands are
#: listed in cli/commands.py
app = typer.Typer(name="registry", help="Run a registry, manage its accounts and repositories", no_args_is_help=True)
user_app = typer.Typer(name="user", help="Manage the accounts of a registry (in its storage)", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="Registry settings file (TOML)")]
RootOption = Annotated[
    Path | None, typer.Option("--root", help="Registry data directory (default /var/lib/dockyard-registry)")
]


def _settings(config: Path | None, root: Path | None, **flags):
    from dockyard.registry.config import RegistryConfig

    try:
        return RegistryConfig.load(config, root=root, **flags)
    except (OSError, ValueError) as exc:
        raise CliError(f"invalid registry settings: {exc}") from None


def serve(
    listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT (default 127.0.0.1:5000)")] = None,
    root: RootOption = None,
    config: ConfigOption = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM)")] = None,
    auth: Annotated[str | None, typer.Option("--auth", help="none, basic or token")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="htpasswd (bcrypt) file of accounts")] = None,
    admin: Annotated[list[str] | None, typer.Option("--admin", help="An administrator account")] = None,
    token_ttl: Annotated[int | None, typer.Option("--token-ttl", help="Token lifetime in seconds")] = None,
    secret_file: Annotated[
        Path | None, typer.Option("--secret-file", help="Token signing key (hex), the same for every replica")
    ] = None,
    accounts: Annotated[
        str | None, typer.Option("--accounts", help="closed, or open: a login with a new name registers it")
    ] = None,
    storage_driver: Annotated[str | None, typer.Option("--storage-driver", help="filesystem or s3")] = None,
    s3_bucket: Annotated[str | None, typer.Option("--s3-bucket")] = None,
    s3_endpoint: Annotated[str | None, typer.Option("--s3-endpoint")] = None,
    s3_prefix: Annotated[str | None, typer.Option("--s3-prefix")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log every request")] = False,
) -> None:
    """Run a registry (OCI distribution API v2, token auth, search) until SIGINT/SIGTERM."""
    import logging

    from dockyard.registry.app import run_forever

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = _settings(
        config,
        root,
        listen=listen,
        tls_cert=tls_cert,
        tls_key=tls_key,
        auth_mode=auth,
        users=users,
        admins=admin or [],
        token_ttl=token_ttl,
        secret_file=secret_file,
        accounts=accounts,
        storage_driver=storage_driver,
        storage_bucket=s3_bucket,
        storage_endpoint_url=s3_endpoint,
        storage_prefix=s3_prefix,
    )
    try:
        run_forever(cfg)
    except ValueError as exc:  # settings the server refuses (e.g. token auth on 0.0.0.0 without a realm)
        raise CliError(f"invalid registry settings: {exc}") from None


# -- accounts ------------------------------------------------------------------------------------


def _accounts(config: Path | None, root: Path | None):
    from dockyard.registry.accounts import Accounts
    from dockyard.registry.storage import make_backend

    cfg = _settings(config, root)
    try:
        backend = make_backend(cfg.storage, cfg.root)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CliError(f"cannot open the registry's storage: {exc}") from None
    return Accounts(backend, cfg.auth.users, cfg.auth.admins)


def _password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("passwords do not match")
    if not password:
        raise CliError("a password is required")
    return password


PasswordOption = Annotated[str | None, typer.Option("-p", "--password", help="Password")]
StdinOption = Annotated[bool, typer.Option("--password-stdin", help="Take the password from stdin")]


def user_add(
    username: Annotated[str, typer.Argument(help="Account name (lower case)")],
    root: RootOption = None,
    config: ConfigOption = None,
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            help="Write this htpasswd file instead of the registry's account store (docker-registry's format)",
        ),
    ] = None,
    email: Annotated[str, typer.Option("-e", "--email", help="E-mail address")] = "",
    password: PasswordOption = None,
    password_stdin: StdinOption = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an administrator")] = False,
) -> None:
    """Add an account (active at once), or with --users add or replace one in an htpasswd file."""
    from dockyard.registry.accounts import AccountError

    secret = _password(password, password_stdin)
    if users is not None:
        from dockyard.registry.auth import add_user

        try:
            add_user(users, username, secret, admin=admin)
        except (ValueError, OSError) as exc:
            raise CliError(str(exc)) from None
        typer.echo(f"{'Administrator' if admin else 'User'} {username} saved in {users}")
        return
    try:
        _accounts(config, root).add(username, secret, email=email, admin=admin)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"{'Administrator' if admin else 'User'} {username} added")


def adduser(
    username: Annotated[str, typer.Argument(help="Account name (lower case)")],
    root: RootOption = None,
    config: ConfigOption = None,
    users: Annotated[Path | None, typer.Option("--users", help="htpasswd file to write")] = None,
    password: PasswordOption = None,
    password_stdin: StdinOption = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an administrator")] = False,
) -> None:
    """The former spelling of ``user add``."""
    user_add(username, root, config, users, "", password, password_stdin, admin)


def user_passwd(
    username: Annotated[str, typer.Argument(help="Account name")],
    root: RootOption = None,
    config: ConfigOption = None,
    password: PasswordOption = None,
    password_stdin: StdinOption = False,
) -> None:
    """Set an account's password."""
    from dockyard.registry.accounts import AccountError

    secret = _password(password, password_stdin)
    try:
        _accounts(config, root).set_password(username, secret)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"Password of {username} changed")


def user_rm(
    usernames: Annotated[list[str], typer.Argument(help="Account names")],
    root: RootOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove accounts (their repositories stay)."""
    from dockyard.registry.accounts import AccountError

    accounts = _accounts(config, root)
    failed = False
    for name in usernames:
        try:
            accounts.remove(name)
            typer.echo(name)
        except AccountError as exc:
            typer.echo(f"Error: {exc}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


def user_list(
    root: RootOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List the accounts."""
    accounts = [a.public() for a in _accounts(config, root).list()]
    if as_json:
        typer.echo(json.dumps(accounts, indent=2))
        return
    rows = [["NAME", "EMAIL", "ACTIVE", "ADMIN", "SOURCE"]]
    rows += [
        [a["name"], a["email"], "yes" if a["active"] else "no", "yes" if a["admin"] else "no", a["source"]]
        for a in accounts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


# -- garbage collection --------------------------------------------------------------------------


def gc(
    root: RootOption = None,
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; delete nothing")] = False,
    delete_untagged: Annotated[
        bool, typer.Option("--delete-untagged", help="Also delete manifests no tag reaches")
    ] = False,
    grace: Annotated[
        float | None,
        typer.Option("--grace", help="Seconds: younger content stays [default: gc.grace of the settings, 3600]"),
    ] = None,
) -> None:
    """Delete blobs no manifest references (safe while replicas serve; see docs/registry.md)."""
    from dockyard.registry.gc import CollectionRunning, collect
    from dockyard.registry.storage import make_backend

    cfg = _settings(config, root)
    backend = make_backend(cfg.storage, cfg.root)
    try:
        report = collect(
            backend,
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            grace=cfg.gc.grace if grace is None else grace,
            window=cfg.gc.window,
        )
    except CollectionRunning as exc:
        raise CliError(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    for item in report.revisions:
        typer.echo(f"manifest {item}: {verb}")
    for digest, size in report.blobs:
        typer.echo(f"blob {digest} ({size} bytes): {verb}")
    summary = (
        f"{len(report.blobs)} blobs ({report.freed} bytes) and {len(report.revisions)} untagged manifests "
        f"{verb}, {report.kept_blobs} blobs kept"
    )
    if not dry_run:
        summary += (
            f", {report.spared} spared by requests during the collection, {report.sessions} abandoned "
            f"upload sessions and {report.incomplete} incomplete writes removed"
        )
    typer.echo(summary)


# -- repositories on a running registry -----------------------------------------------------------


def _registry_request(method: str, name: str, body: dict | None = None):
    """A request to a dockyard registry's ``/v1/repositories/<name>`` with the stored credentials.

    HTTPS first; plain HTTP only for loopback and insecure registries
    (:mod:`dockyard.registry_hosts`, the distribution driver's policy too).
    """
    import httpx

    from dockyard.reference import parse
    from dockyard.registry_hosts import is_insecure, tls_verify

    ref = parse(name)
    creds = Credentials().get(server_key(ref.domain))
    insecure = is_insecure(ref.domain)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if creds:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    failure: Exception | None = None
    with httpx.Client(verify=tls_verify(ref.domain, insecure), timeout=30.0) as http:
        for scheme in ("https", "http") if insecure else ("https",):
            try:
                response = http.request(
                    method,
                    f"{scheme}://{ref.domain}/v1/repositories/{ref.path}",
                    headers=headers,
                    content=json.dumps(body).encode() if body is not None else None,
                )
                break
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
                failure = exc  # a plain-HTTP registry refuses the TLS handshake: try the next scheme
            except httpx.HTTPError as exc:
                raise CliError(f"{method} {ref.domain}: {exc}") from None
        else:
            raise CliError(f"{method} {ref.domain}: {failure}")
    if response.status_code >= 400:
        try:
            error = response.json()["errors"][0]
            message = f"{error['code'].lower()}: {error['message']}"
        except (ValueError, KeyError, IndexError, TypeError):
            message = f"HTTP {response.status_code}"
        raise CliError(f"Error response from registry: {message}")
    return response


def describe(
    name: Annotated[str, typer.Argument(metavar="HOST/REPOSITORY", help="Repository on a registry")],
    description: Annotated[str | None, typer.Option("-d", "--description", help="New description")] = None,
    private: Annotated[bool | None, typer.Option("--private/--public", help="Readable by its owner only")] = None,
) -> None:
    """Show or set a repository's description and visibility (owner or admin)."""
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if private is not None:
        changes["private"] = private
    response = _registry_request("PATCH" if changes else "GET", name, changes if changes else None)
    typer.echo(json.dumps(response.json(), indent=2))


def delete(name: Annotated[str, typer.Argument(metavar="HOST/REPOSITORY", help="Repository to delete")]) -> None:
    """Delete a repository from a registry (owner or admin)."""
    _registry_request("DELETE", name)
    typer.echo(f"Deleted {name}")
