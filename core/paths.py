"""Host paths built from names a client chose (a volume's name, an ID...).

Every such path is one checked component below its root, so no name (``/etc``,
``..``, ``a/../../b``, a newline) can point the daemon's mkdir, write or rmtree
anywhere else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dockyard.errors import InvalidParameter


def child(root: Path, name: str, what: str = "name") -> Path:
    """``root / name`` for a single, plain path component ``name`` (400 otherwise)."""
    if not name or name in (".", "..") or "/" in name or any(c in name for c in "\0\n\r") or len(name.encode()) > 255:
        raise InvalidParameter(f"invalid {what} {name!r}")
    path = root / name
    # belt and braces: the joined path must still sit directly below root
    if os.path.dirname(os.path.normpath(path)) != os.path.normpath(root):
        raise InvalidParameter(f"invalid {what} {name!r}")
    return path


def remove_child(root: Path, name: str, what: str = "name") -> None:
    """Delete ``root / name`` recursively: the checked child itself, never what a symlink there points to."""
    path = child(root, name, what)
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
            return
    except OSError:
        return
    shutil.rmtree(path, ignore_errors=True)
