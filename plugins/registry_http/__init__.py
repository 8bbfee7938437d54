"""Distribution over HTTP: the ``http`` distribution driver (pull, push, login,
search against any Docker Registry HTTP API v2 / OCI distribution registry) and
the registry server ``dockyard registry serve`` (:mod:`.server`)."""
