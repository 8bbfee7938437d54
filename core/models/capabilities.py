"""What a driver can do, declared as a ``capabilities`` class attribute.

The conformance suites skip (naming the capability) what a driver declares it
cannot do, and fail when the suite is told the capability is required.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StorageCapabilities(BaseModel):
    """What a storage driver can keep in a layer.  Default: everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    xattrs: bool = True  #: user.* and security.capability xattrs
    device_nodes: bool = True  #: char and block devices
    fifos: bool = True
    hardlinks: bool = True  #: hard-link groups survive apply, copy and diff
    ownership: bool = True  #: arbitrary uid/gid (and setuid/setgid bits)
    sparse_files: bool = True  #: holes survive apply, layer creation and diff
    large_files: bool = True  #: files over 2 GiB
    nanosecond_mtimes: bool = True  #: sub-second mtimes survive layer creation
