"""Progress of byte transfers (``save``, ``export``, ``load``, ``import``, ``build``'s context).

Nothing is shown for a transfer that ends within :data:`QUIET_FOR` seconds, so quick
commands and scripts stay silent.  Past that, on a terminal, one line on stderr is
redrawn in place (``Saving busybox  [=====>    ]  12.3MB/45.1MB  4.10MB/s``) and
finished with the total; elsewhere (a pipe, a log file) a plain line is written
every :data:`PLAIN_EVERY` seconds and one at the end.  stdout is left alone: it
often carries the tar itself.  (Pulls and pushes report per-layer progress from
the daemon's JSON stream: :class:`dockyard.cli.registry.ProgressView`.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from .formatting import human_size

__all__ = ["PLAIN_EVERY", "QUIET_FOR", "Transfer"]

QUIET_FOR = 1.0
PLAIN_EVERY = 5.0
_REDRAW_EVERY = 0.1
_BAR = 30
_clock = time.monotonic  # (tests put a clock of theirs here)


class Transfer:
    """Count bytes moving for ``label`` and show it as described above; use as a context manager."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.label, self.total, self.clock = label, total, clock or _clock
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.started = self.clock()
        self._shown_at: float | None = None
        self._finished = False

    def __enter__(self) -> Transfer:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self.finish(failed=error is not None)

    def add(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if now - self.started < QUIET_FOR:
            return
        every = _REDRAW_EVERY if self.tty else PLAIN_EVERY
        if self._shown_at is None or now - self._shown_at >= every:
            self._show(now)

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks``, counting each; the transfer is finished when they end."""
        for chunk in chunks:
            self.add(len(chunk))
            yield chunk
        self.finish()

    def finish(self, failed: bool = False) -> None:
        if self._shown_at is None or self._finished:
            return  # quick: nothing was shown, nothing to close
        self._finished = True
        elapsed = max(self.clock() - self.started, 1e-9)
        text = f"{self.label}: {human_size(self.done)} in {elapsed:.1f}s" + (" (failed)" if failed else "")
        self._write(text, final=True)

    def _show(self, now: float) -> None:
        self._shown_at = now
        rate = self.done / max(now - self.started, 1e-9)
        amount = human_size(self.done) + (f"/{human_size(self.total)}" if self.total else "")
        if self.tty:
            bar = ""
            if self.total:
                filled = min(_BAR, int(_BAR * self.done / self.total))
                bar = "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (_BAR - filled) + "]  "
            self._write(f"{self.label}  {bar}{amount}  {human_size(rate)}/s", final=False)
        else:
            self._write(f"{self.label}: {amount} ({human_size(rate)}/s)", final=True)

    def _write(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
