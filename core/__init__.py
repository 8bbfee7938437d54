"""dockyard: a container engine whose storage, execution, networking and
distribution are swappable drivers, and whose daemon speaks the Docker Engine API.

Driver authors need :data:`hookimpl` and the hook contract in
:mod:`dockyard.hookspecs`; see docs/architecture.md.
"""

from dockyard.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

__all__ = ["API_VERSION", "MIN_API_VERSION", "__version__", "hookimpl", "hookspec"]
