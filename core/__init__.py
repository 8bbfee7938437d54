"""dockyard: a container engine whose storage, execution, networking and
distribution are swappable drivers, and whose daemon speaks the Docker Engine API.

Driver authors need :data:`hookimpl` and the hook contract in
:mod:`dockyard.hookspecs`; see docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "MIN_API_VERSION", "__version__", "hookimpl", "hookspec"]


def __getattr__(name: str) -> Any:
    # ``from dockyard import hookimpl`` (and ``dockyard.hookimpl``) load the hook
    # markers, and with them pluggy, on first use: every ``dockyard.*`` import runs
    # this file, and the CLI imports small core modules (``dockyard.timefmt``,
    # ``dockyard.reference``) without wanting the plugin machinery.
    if name in ("hookimpl", "hookspec"):
        from dockyard import hookspecs

        return getattr(hookspecs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
