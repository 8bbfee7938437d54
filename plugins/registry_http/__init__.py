"""The ``http`` distribution driver: pull, push, login and search against any
Docker Registry HTTP API v2 / OCI distribution registry.  The registry *server*
(``dockyard registry serve``) is a separate program: :mod:`dockyard.registry`."""
