"""dockyard's pytest plugin (entry point ``pytest11: dockyard``): the conformance suites' options.

Installed with dockyard and loaded by pytest at start, so third parties can pass
the options below without ``-p``.  It only declares options and markers and imports
nothing heavy; the suites themselves (:mod:`dockyard.testing.conformance`,
:mod:`~dockyard.testing.exec_conformance`, :mod:`~dockyard.testing.network_conformance`)
are loaded on request, with ``pytest_plugins = [...]`` in a test module.

``--dockyard-storage-driver NAME`` / ``--dockyard-exec-driver NAME``
    run every StorageDriverSuite / ExecDriverSuite class against that installed driver.
``--dockyard-require-capability NAME`` / ``--require-exec-capability NAME`` / ``--require-network-capability NAME``
    fail instead of skipping when the driver lacks that capability (``all``: every one).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dockyard", "dockyard driver conformance suites")
    group.addoption(
        "--dockyard-storage-driver",
        metavar="NAME",
        default=None,
        help="run StorageDriverSuite classes against this dockyard.storage entry point",
    )
    group.addoption(
        "--dockyard-require-capability",
        metavar="NAME",
        action="append",
        default=[],
        help="fail instead of skip when the storage driver lacks this capability ('all' for every one)",
    )
    group.addoption(
        "--dockyard-exec-driver",
        metavar="NAME",
        default=None,
        help="run ExecDriverSuite classes against this dockyard.exec entry point",
    )
    group.addoption(
        "--require-exec-capability",
        metavar="NAME",
        action="append",
        default=[],
        help="fail instead of skip when the exec driver lacks this capability ('all' for every one)",
    )
    group.addoption(
        "--require-network-capability",
        metavar="NAME",
        action="append",
        default=[],
        help="fail instead of skip when the network driver lacks this capability",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_root: needs root (mounts, namespaces, cgroups, mknod)")
