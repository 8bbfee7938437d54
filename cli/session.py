"""A foreground container session: what ``run`` and ``start -a`` do after create.

The order is docker's (``docker/cli`` ``container/run.go``): attach over a
hijacked connection first, then ``POST /wait`` (whose headers the daemon flushes
at once, so we know the wait is registered before the process can exit), then
``POST /start``.  Output is copied until the daemon closes the attach
connection, then the wait answer gives the exit status.  With ``--sig-proxy``
(no TTY) SIGINT/SIGTERM are forwarded as ``POST /kill?signal=...``; with a TTY
and ``-i`` the local terminal is put in raw mode and its size is sent with
``POST /resize``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from . import hijack
from .client import APIClient, CliError, parse_wait, quote_ref
from .context import stderr_bytes, stdout_bytes, warn
from .stdcopy import demux_to

__all__ = ["StartFailed", "Waiter", "attach_and_wait", "attach_running", "start_exit_code"]


class Waiter(threading.Thread):
    """``POST /containers/{id}/wait?condition=...`` in a thread.

    ``registered`` is set once the response headers arrived (or the request
    failed); :meth:`result` blocks for the final ``{"StatusCode": N}``.
    """

    def __init__(self, client: APIClient, container_id: str, condition: str | None) -> None:
        super().__init__(name="dockyard-wait", daemon=True)
        self.client = client
        self.path = f"/containers/{quote_ref(container_id)}/wait"
        self.condition = condition
        self.registered = threading.Event()
        self.answer: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            params = {"condition": self.condition} if self.condition else None
            with self.client.stream("POST", self.path, params=params) as response:
                self.registered.set()
                body = response.read()
            self.answer = parse_wait(body)
        except BaseException as exc:  # handed to the main thread by result()
            self.error = exc
        finally:
            self.registered.set()
            self.client.close()

    def wait_registered(self) -> None:
        self.registered.wait()
        if self.error is not None:
            raise self.error

    def result(self) -> int:
        """The exit status; an ``Error`` in the answer is printed and gives 125."""
        self.join()
        if self.error is not None:
            raise self.error
        answer = self.answer or {}
        error = answer.get("Error")
        if isinstance(error, dict) and error.get("Message"):
            warn(f"Error waiting for container: {error['Message']}")
            return 125
        return int(answer.get("StatusCode", 0))


class StartFailed(CliError):
    """``POST /start`` failed; ``exit_code`` follows docker's run (125/126/127)."""

    def __init__(self, cause: CliError) -> None:
        super().__init__(cause.message, start_exit_code(cause))
        self.cause = cause


def start_exit_code(error: CliError) -> int:
    """docker's ``runStartContainerErr``: 127 not found, 126 not executable, else 125."""
    text = str(error)
    if any(
        s in text
        for s in ("executable file not found", "no such file or directory", "system cannot find the file specified")
    ):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Put stdin's terminal in raw mode for the duration (``run -it``)."""
    if not enabled or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def send_terminal_size(client: APIClient, container_id: str, path: str | None = None) -> None:
    """Send the local terminal's size (``path``: another resize endpoint, e.g. an exec's)."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return
    try:
        with client.clone() as c:
            c.post(path or f"/containers/{quote_ref(container_id)}/resize", h=size.lines, w=size.columns)
    except CliError:
        pass


@contextlib.contextmanager
def _signal_handlers(handlers: dict[int, Any]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _proxy_signals(client: APIClient, container_id: str, tty: bool, sig_proxy: bool):
    handlers: dict[int, Any] = {}
    if tty:
        handlers[signal.SIGWINCH] = lambda *_: threading.Thread(
            target=send_terminal_size, args=(client, container_id), daemon=True
        ).start()
    if sig_proxy:

        def forward(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name.removeprefix("SIG")

            def send() -> None:
                try:
                    with client.clone() as c:
                        c.post(f"/containers/{quote_ref(container_id)}/kill", signal=name)
                except CliError:
                    pass

            threading.Thread(target=send, daemon=True).start()

        handlers[signal.SIGINT] = forward
        handlers[signal.SIGTERM] = forward
    return _signal_handlers(handlers)


def attach_and_wait(
    client: APIClient,
    container_id: str,
    *,
    tty: bool,
    stdin: bool,
    condition: str | None,
    start: bool = True,
    sig_proxy: bool = True,
) -> int:
    """Attach, register the wait, start, copy the streams; return the exit status.

    Raises :class:`CliError` from attach or wait, and :class:`StartFailed` when
    ``POST /start`` fails.
    """
    conn = hijack.attach(client.host, container_id, stdin=stdin)
    with conn:
        waiter = Waiter(client.clone(), container_id, condition)
        waiter.start()
        waiter.wait_registered()
        if stdin:
            hijack.pump_stdin(conn, sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)
        with raw_terminal(tty and stdin), _proxy_signals(client, container_id, tty, sig_proxy and not tty):
            if start:
                try:
                    client.post(f"/containers/{quote_ref(container_id)}/start")
                except CliError as exc:
                    raise StartFailed(exc) from None
            if tty:
                send_terminal_size(client, container_id)
            demux_to(conn.chunks(), stdout_bytes(), stderr_bytes(), tty=tty)
    return waiter.result()


def attach_running(
    client: APIClient, container_id: str, *, tty: bool, stdin: bool, sig_proxy: bool, detach_keys: str | None = None
) -> int:
    """``docker attach``: copy the streams until the container exits (its exit
    status) or the user detaches with the detach keys (0, container left running)."""
    conn = hijack.attach(client.host, container_id, stdin=stdin, detach_keys=detach_keys)
    with conn:
        if stdin:
            hijack.pump_stdin(conn, sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)
        with raw_terminal(tty and stdin), _proxy_signals(client, container_id, tty, sig_proxy and not tty):
            if tty:
                send_terminal_size(client, container_id)
            demux_to(conn.chunks(), stdout_bytes(), stderr_bytes(), tty=tty)
    state = client.inspect_container(container_id)["State"]
    if state["Running"]:
        return 0  # detached
    return int(state.get("ExitCode", 0))
