"""Registry commands: ``pull``, ``push``, ``login``, ``logout`` and ``search``
(``dockyard registry ...`` is :mod:`.registry_server`).

Credentials are kept as docker keeps them: ``~/.dockyard/config.json``
(``$DOCKYARD_CONFIG/config.json``), mode 0600, ``{"auths": {"<host[:port]>":
{"auth": base64("user:password")}}}``, and sent to the daemon as
``X-Registry-Auth: base64url({"username", "password", "serveraddress"})``.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.auth_header import encode as encode_auth

from .client import CliError, iter_json_messages, quote_ref
from .context import client, warn

__all__ = ["pull", "push", "login", "logout", "search", "pull_image", "Credentials", "server_key"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


# -- credentials ----------------------------------------------------------------------------------


class Credentials:
    """``config.json`` ``auths``, in docker's format."""

    def __init__(self, directory: Path | None = None) -> None:
        base = directory or Path(os.environ.get("DOCKYARD_CONFIG") or Path.home() / ".dockyard")
        self.path = Path(base) / "config.json"

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(".config.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def get(self, server: str) -> tuple[str, str] | None:
        entry = (self._load().get("auths") or {}).get(server) or {}
        if not entry.get("auth"):
            return None
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            return None
        return user, password

    def store(self, server: str, username: str, password: str) -> None:
        data = self._load()
        data.setdefault("auths", {})[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
        self._save(data)

    def remove(self, server: str) -> bool:
        data = self._load()
        if server not in (data.get("auths") or {}):
            return False
        del data["auths"][server]
        self._save(data)
        return True


def server_key(domain: str) -> str:
    return DOCKER_HUB_KEY if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") else domain


def _domain_of(name: str) -> str:
    from dockyard.reference import parse

    try:
        return parse(name).domain
    except Exception:  # noqa: BLE001 - the daemon reports a bad reference itself
        return name.split("/", 1)[0]


def auth_header(domain: str) -> str:
    """``X-Registry-Auth`` for a registry host (``e30=`` without stored credentials)."""
    key = server_key(domain)
    creds = Credentials().get(key)
    if creds is None:
        return "e30="
    return encode_auth({"username": creds[0], "password": creds[1], "serveraddress": key})


# -- progress ------------------------------------------------------------------------------------


class ProgressView:
    """Docker-style output of a JSON progress stream: one line per layer, with
    rich progress bars on a terminal; plain status lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty() and not quiet
        self.progress = None
        self.tasks: dict[str, Any] = {}
        self.aux: dict | None = None
        if self.tty:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("{task.fields[layer]}: {task.description}"), BarColumn(), DownloadColumn(), transient=False
            )
            self.progress.start()

    def handle(self, message: dict) -> None:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise CliError(str(message.get("error") or detail.get("message")))
        if "aux" in message:
            self.aux = message["aux"]
            return
        status, layer = message.get("status"), message.get("id")
        if not status:
            return
        detail = message.get("progressDetail") or {}
        if self.progress is not None and layer and len(layer) == 12:
            task = self.tasks.get(layer)
            if task is None:
                task = self.tasks[layer] = self.progress.add_task(status, layer=layer, total=None)
            if detail.get("total"):
                self.progress.update(
                    task, description=status, completed=detail.get("current", 0), total=detail["total"]
                )
            else:
                done = status in (
                    "Pull complete",
                    "Already exists",
                    "Pushed",
                    "Layer already exists",
                ) or status.startswith("Mounted from")
                task_obj = self.progress.tasks[task] if isinstance(task, int) else None
                total = task_obj.total if task_obj is not None and task_obj.total else None
                self.progress.update(task, description=status, **({"completed": total} if done and total else {}))
            return
        if self.quiet:
            return
        if detail.get("current") is not None and layer:
            return  # progress-bar updates are for terminals
        text = f"{layer}: {status}" if layer else status
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        else:
            typer.echo(text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _run_stream(ctx: typer.Context, path: str, params: dict, domain: str, quiet: bool) -> ProgressView:
    view = ProgressView(quiet)
    try:
        with client(ctx).stream(
            "POST", path, params=params, headers={"X-Registry-Auth": auth_header(domain)}
        ) as response:
            for message in iter_json_messages(response):
                view.handle(message)
    finally:
        view.close()
    return view


def pull_image(ctx: typer.Context, name: str, quiet: bool = False) -> None:
    """Pull ``name`` (``repo[:tag]`` or ``repo@digest``) through the daemon."""
    repo, tag = name, None
    if "@" in name:
        repo, tag = name.split("@", 1)
    elif ":" in name.rsplit("/", 1)[-1]:
        repo, tag = name.rsplit(":", 1)
    if tag is None:
        tag = "latest"
        if not quiet:
            typer.echo("Using default tag: latest")
    _run_stream(ctx, "/images/create", {"fromImage": repo, "tag": tag}, _domain_of(name), quiet)
    if quiet:
        typer.echo(f"{repo}{'@' if tag.startswith('sha256:') else ':'}{tag}")
    else:
        typer.echo(canonical_name(repo, tag))


def canonical_name(repo: str, tag: str) -> str:
    """What docker prints after a pull: the fully qualified reference."""
    from dockyard.reference import parse

    sep = "@" if tag.startswith(("sha256:", "sha512:")) else ":"
    try:
        ref = parse(repo)
    except Exception:  # noqa: BLE001
        return f"{repo}{sep}{tag}"
    return f"{ref.domain}/{ref.path}{sep}{tag}"


# -- commands ------------------------------------------------------------------------------------


def pull(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME[:TAG|@DIGEST]", help="Image to pull")],
    tag: Annotated[str | None, typer.Option("-t", "--tag", help="Tag to pull (Docker 0.x's spelling)")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Suppress verbose output")] = False,
) -> None:
    """Download an image from a registry."""
    if tag:
        name = f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
    pull_image(ctx, name, quiet)


def push(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME[:TAG]", help="Image to push")],
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Suppress verbose output")] = False,
) -> None:
    """Upload an image to a registry (every tag of the repository when no tag is given)."""
    repo, tag = name, ""
    if ":" in name.rsplit("/", 1)[-1]:
        repo, tag = name.rsplit(":", 1)
    view = _run_stream(ctx, f"/images/{quote_ref(repo)}/push", {"tag": tag or None}, _domain_of(repo), quiet)
    if quiet and view.aux:
        typer.echo(f"{repo}:{view.aux.get('Tag')}")


def login(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Argument(metavar="[SERVER]", help="Registry (default: the index)")] = None,
    username: Annotated[str | None, typer.Option("-u", "--username", help="Username")] = None,
    password: Annotated[str | None, typer.Option("-p", "--password", help="Password")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Take the password from stdin")] = False,
    email: Annotated[
        str | None,
        typer.Option(
            "-e",
            "--email",
            help="E-mail address (where a registry registers new names at login, the activation link goes here)",
        ),
    ] = None,
) -> None:
    """Log in to a registry (a registry with open accounts registers a new name)."""
    from dockyard.reference import default_index

    domain = (server or default_index()[0]).removeprefix("https://").removeprefix("http://").rstrip("/")
    domain = domain.removesuffix("/v1").removesuffix("/v2")
    key = server_key(domain)
    if password is not None and password_stdin:
        raise CliError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise CliError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        warn("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    stored = Credentials().get(key)
    if not username:
        if stored and password is None:
            username, password = stored
        else:
            username = input(f"Username{f' ({stored[0]})' if stored else ''}: ").strip() or (
                stored[0] if stored else ""
            )
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
        if email is None:  # Docker 0.x's prompts: username, password, e-mail
            email = input("Email (): ").strip()
    if not username or not password:
        raise CliError(
            "Error: Cannot perform an interactive login from a non TTY device"
            if not sys.stdin.isatty()
            else "username and password are required"
        )
    body = {"username": username, "password": password, "serveraddress": key}
    if email:
        body["email"] = email
    answer = client(ctx).post("/auth", body).json()
    Credentials().store(key, username, password)
    typer.echo(f"\nWARNING! Your password will be stored unencrypted in {Credentials().path}.\n", err=True)
    typer.echo(answer.get("Status") or "Login Succeeded")


def logout(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Argument(metavar="[SERVER]", help="Registry (default: the index)")] = None,
) -> None:
    """Log out from a registry."""
    from dockyard.reference import default_index

    domain = (server or default_index()[0]).removeprefix("https://").removeprefix("http://").rstrip("/")
    key = server_key(domain)
    if not Credentials().remove(key):
        typer.echo(f"Not logged in to {key}")
        return
    typer.echo(f"Removing login credentials for {key}")


def search(
    ctx: typer.Context,
    term: Annotated[str, typer.Argument(metavar="TERM", help="What to search for ([HOST/]TERM)")],
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Max number of search results")] = 25,
    filter_: Annotated[
        list[str] | None,
        typer.Option("-f", "--filter", help="Filter output (stars=N, is-official=true, is-automated=false)"),
    ] = None,
) -> None:
    """Search a registry for images."""
    filters: dict[str, list[str]] = {}
    for item in filter_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    params: dict[str, Any] = {"term": term, "limit": limit}
    if filters:
        params["filters"] = json.dumps(filters)
    response = client(ctx).request(
        "GET",
        "/images/search",
        params=params,
        headers={"X-Registry-Auth": auth_header(_domain_of(term + "/x") if "/" in term else _domain_of(term))},
    )
    results = response.json()
    rows = []
    for r in results:
        description = (r.get("description") or "").replace("\n", " ")
        if not no_trunc and len(description) > 45:
            description = description[:44] + "…"
        rows.append(
            [
                r.get("name", ""),
                description,
                str(r.get("star_count", 0)),
                "[OK]" if r.get("is_official") else "",
                "[OK]" if r.get("is_automated") else "",
            ]
        )
    headers = ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        typer.echo("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
