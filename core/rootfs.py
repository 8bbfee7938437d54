"""Looking things up inside a container's root file system from the host.

Paths are resolved the way the container would see them: symlinks are followed
but never out of the rootfs (an absolute link target is taken relative to the
rootfs root), like moby's FollowSymlinkInScope.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dockyard.errors import InvalidParameter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve_in_root(root: Path, path: str, follow_last: bool = True, _depth: int = 0) -> Path:
    """Host path of ``path`` inside ``root``, following symlinks within ``root``."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = "/"  # path inside the rootfs, always normalised
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current.rstrip("/")) or "/"
            continue
        candidate = os.path.join(current, part)
        host = root / candidate.lstrip("/")
        if (parts or follow_last) and host.is_symlink():
            links += 1
            if links > 40:
                raise InvalidParameter(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                current = "/"
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return root / current.lstrip("/")


def find_executable(root: Path, name: str, env: list[str]) -> str | None:
    """Resolve argv[0] like execvp inside the rootfs.

    Returns None when found and executable; otherwise Docker's error text
    (the docker CLI maps "not found" to exit 127, "permission denied" to 126).
    """
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    denied = False
    for candidate in candidates:
        host = resolve_in_root(root, candidate)
        try:
            st = host.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return None
        denied = True
    if denied:
        return f'exec: "{name}": permission denied'
    if "/" in name:
        return f'exec: "{name}": stat {name}: no such file or directory'
    return f'exec: "{name}": executable file not found in $PATH'


def _entries(root: Path, file: str) -> list[list[str]]:
    try:
        text = resolve_in_root(root, file).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(root: Path, user: str) -> tuple[int, int, list[int], str]:
    """``user[:group]`` (names or numbers) to (uid, gid, extra gids, home).

    Numbers need no entry in /etc/passwd; names must have one, as in Docker.
    """
    user = user or "0"
    name, _, group = user.partition(":")
    passwd = _entries(root, "/etc/passwd")
    entry = next((e for e in passwd if len(e) >= 7 and (e[0] == name or (name.isdigit() and e[2] == name))), None)
    if entry is None and not name.isdigit():
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(name) if name.isdigit() else int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    groups = _entries(root, "/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if match is None:
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
            gid = int(match[2])
    username = entry[0] if entry else None
    extra = sorted({int(g[2]) for g in groups if len(g) >= 4 and username and username in g[3].split(",")
                    and g[2].isdigit() and int(g[2]) != gid})
    return uid, gid, extra, home


def lookup_group(root: Path, name: str) -> int | None:
    """The gid of a group name in the rootfs's ``/etc/group``; None when there is none."""
    match = next((g for g in _entries(root, "/etc/group") if len(g) >= 3 and g[0] == name and g[2].isdigit()), None)
    return int(match[2]) if match else None


def make_workdir(root: Path, workdir: str, uid: int, gid: int) -> None:
    """Create the working directory inside the rootfs if missing (Docker does)."""
    target = resolve_in_root(root, workdir)
    if not target.exists():
        target.mkdir(parents=True, mode=0o755)
        if uid or gid:
            os.chown(target, uid, gid)
