"""``dockyard registry serve``: an OCI distribution registry with accounts, tokens and search."""

from .config import RegistryConfig

__all__ = ["RegistryConfig"]
