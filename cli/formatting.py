"""Human-readable output in the docker CLI's exact style.

* durations: go-units ``HumanDuration`` ("Less than a second", "About a minute", "2 hours")
* sizes: go-units ``HumanSizeWithPrecision`` in units of 1000 ("1.98MB", "0B") and
  ``BytesSize`` in units of 1024 ("23.54GiB", for ``info``)
* tables: Go ``text/tabwriter`` with docker's settings (minwidth 10, padding 3)
* ``ps`` details: 12-character IDs, ``strconv.Quote``-d and ellipsised COMMAND,
  "IP:public->private/proto" ports
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from dockyard.timefmt import (  # one spelling of Docker's times and durations for daemon and CLI
    human_duration,
    parse_iso,
)

__all__ = [
    "bytes_size",
    "ellipsis",
    "format_ports",
    "go_quote",
    "human_duration",
    "human_size",
    "parse_timestamp",
    "render_table",
    "short_id",
    "time_ago",
]


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds from an int (``/containers/json``) or an RFC 3339 string (inspect).

    Returns None for missing values and Go's zero time ``0001-01-01T00:00:00Z``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return parse_iso(str(value)) or None
    except ValueError:
        return None


def time_ago(value: Any, now: float | None = None) -> str:
    """ "3 minutes ago" for a timestamp, "" when there is none."""
    ts = parse_timestamp(value)
    if ts is None:
        return ""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - ts)) + " ago"


def _go_g(value: float, precision: int) -> str:
    # Go's %.Ng and Python's %.Ng agree for these magnitudes.
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision`` (decimal units), as ``docker images`` uses."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    size = float(size)
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return _go_g(size, precision) + units[i]


def bytes_size(size: float) -> str:
    """go-units ``BytesSize`` (binary units), as ``docker info`` uses for memory."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    size = float(size)
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return _go_g(size, 4) + units[i]


def short_id(value: str, no_trunc: bool = False) -> str:
    """``stringid.TruncateID``: drop an algorithm prefix, keep 12 characters."""
    if no_trunc:
        return value
    _, _, digest = value.rpartition(":")
    return digest[:12]


def ellipsis(text: str, width: int) -> str:
    """docker/cli ``formatter.Ellipsis`` (counting characters)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    return text[: width - 1] + "…"


_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": r"\\",
    '"': r"\"",
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: double quotes, backslash escapes, printable Unicode kept."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_ports(ports: Iterable[dict[str, Any]] | None) -> str:
    """The PORTS column: "127.0.0.1:18080->80/tcp, 443/tcp"."""
    shown: list[tuple[Any, ...]] = []
    for port in ports or []:
        proto = port.get("Type", "tcp")
        private = port.get("PrivatePort")
        public = port.get("PublicPort")
        if public:
            ip = port.get("IP") or "0.0.0.0"
            if ":" in ip:
                ip = f"[{ip}]"
            text = f"{ip}:{public}->{private}/{proto}"
        else:
            text = f"{private}/{proto}"
        key = (str(proto), int(private or 0), text)
        if key not in shown:
            shown.append(key)
    shown.sort(key=lambda item: (item[1], item[0], item[2]))
    return ", ".join(item[2] for item in shown)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Lay out rows like Go's tabwriter(minwidth=10, tabwidth=1, padding=3, ' ').

    Every column but the last is padded to max(10, widest cell + 3); the last
    column is printed as is (docker's table templates end without a tab).
    """
    table = [list(headers)] + [list(row) for row in rows]
    if not table[0]:
        return ""
    columns = len(table[0])
    widths = [max(10, max(len(row[i]) for row in table) + 3) for i in range(columns - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines) + "\n"
