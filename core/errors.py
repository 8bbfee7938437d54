"""One error hierarchy for the whole engine, classified by kind.

::

    DockyardError
    ├── NotFound              404  no such container / image / layer
    ├── InvalidParameter      400  malformed request, bad tar, bad flag
    ├── Conflict              409  name in use, removing a running container
    ├── NotModified           304  start of a running / stop of a stopped container
    ├── Unauthorized          401
    ├── Forbidden             403
    ├── Unavailable           503  a driver or the host lacks something at run time
    │   └── DriverNotSupported     a driver cannot work on this host (raised at load)
    ├── DriverNotFound        500  no driver of that kind and name (daemon start)
    ├── NotSupportedByDriver  501  the chosen driver cannot do it (an optional hook it lacks)
    └── System                500  anything that went wrong underneath (I/O, subprocess)

Drivers translate OSError, NetlinkError and subprocess failures into these at
their boundary; the API layer maps them to HTTP with :func:`status_for`.
Messages copy Docker's wording ("No such image: busybox") because docker-py and
the docker CLI pick behaviour from message fragments and status codes.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DockyardError",
    "DriverNotFound",
    "DriverNotSupported",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "NotModified",
    "NotSupportedByDriver",
    "System",
    "Unauthorized",
    "Unavailable",
    "status_for",
]


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose."""

    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(DockyardError):
    status = 404


class InvalidParameter(DockyardError):
    status = 400


class Conflict(DockyardError):
    status = 409


class NotModified(DockyardError):
    status = 304


class Unauthorized(DockyardError):
    status = 401


class Forbidden(DockyardError):
    status = 403


class Unavailable(DockyardError):
    status = 503


class DriverNotSupported(Unavailable):
    """The host lacks what a driver needs (kernel feature, tool, file system)."""

    def __init__(self, driver: str, reason: str) -> None:
        super().__init__(f"driver {driver!r} is not supported here: {reason}")
        self.driver = driver
        self.reason = reason


class DriverNotFound(DockyardError):
    """No usable driver of a kind under a name; lists what is available and why not."""

    def __init__(self, kind: str, name: str, available: dict[str, str | None]) -> None:
        usable = sorted(n for n, why in available.items() if why is None)
        unusable = {n: why for n, why in sorted(available.items()) if why is not None}
        parts = [f"no usable {kind} driver named {name!r}."]
        parts.append(f"Available: {', '.join(usable) if usable else 'none'}.")
        for n, why in unusable.items():
            parts.append(f"Unusable: {n} ({why}).")
        super().__init__(" ".join(parts))
        self.kind = kind
        self.name = name
        self.available = available


class NotSupportedByDriver(DockyardError):
    """The chosen driver does not implement an optional hook, or cannot serve this request.

    Named so that it can never be confused with Python's ``NotImplemented`` constant or
    ``NotImplementedError`` (moby's ``errdefs.NotImplemented``): an ``except`` clause
    for it catches exactly what the façades raise.
    """

    status = 501


class System(DockyardError):
    status = 500


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception: the class's own for ours, 500 for the rest."""
    if isinstance(exc, DockyardError):
        return exc.status
    return 500
