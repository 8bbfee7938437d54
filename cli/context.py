"""Per-invocation state (global options, the API client) and error reporting.

The root callback stores a :class:`Globals` in ``ctx.obj``; commands call
:func:`client` to get a connected :class:`~dockyard.cli.client.APIClient`.
:class:`DockyardGroup` is the root command class: it turns a
:class:`~dockyard.cli.client.CliError` raised anywhere below it into one line on
stderr and the error's exit status, so users never see a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import typer

from .client import APIClient, CliError, Host, TlsOptions, parse_host
from .commands import ROOT
from .lazy import LazyGroup

__all__ = ["DockyardGroup", "Globals", "Failures", "client", "stdout_bytes", "stderr_bytes", "warn"]


@dataclass
class Globals:
    """Global options.  ``host_value`` is parsed on first use, so commands that never
    talk to a daemon (``dockyard daemon``) do not fail on a bad ``DOCKYARD_HOST``."""

    host_value: str | None = None
    log_level: str = "info"
    tls: TlsOptions | None = None
    _client: APIClient | None = field(default=None, repr=False)

    @property
    def host(self) -> Host:
        return parse_host(self.host_value, self.tls)

    def client(self) -> APIClient:
        if self._client is None:
            self._client = APIClient(self.host, log_requests=self.log_level == "debug")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def globals_of(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    if not isinstance(root.obj, Globals):
        # Commands invoked without the root callback (e.g. in isolation in tests).
        root.obj = Globals()
    return root.obj


def client(ctx: typer.Context) -> APIClient:
    return globals_of(ctx).client()


def warn(message: str) -> None:
    """Print one line to stderr."""
    typer.echo(message, err=True)


def _binary(stream: Any) -> BinaryIO:
    stream.flush()
    return getattr(stream, "buffer", stream)


def stdout_bytes() -> BinaryIO:
    return _binary(sys.stdout)


def stderr_bytes() -> BinaryIO:
    return _binary(sys.stderr)


class Failures:
    """Collect per-item errors for commands taking several names (``rm a b c``).

    docker prints each error as it happens and exits 1 once all items are done.
    """

    def __init__(self) -> None:
        self.count = 0

    def report(self, error: CliError | str) -> None:
        self.count += 1
        warn(str(error))

    def exit_if_any(self) -> None:
        if self.count:
            raise typer.Exit(1)


class DockyardGroup(LazyGroup):
    """Root group: the commands of :data:`dockyard.cli.commands.ROOT`, built when they run;
    a :class:`CliError` is reported as a sentence and an exit status."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_lazy(ROOT)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            warn(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            if isinstance(ctx.obj, Globals):
                ctx.obj.close()
