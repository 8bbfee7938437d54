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


def clean_destination(path: str) -> str:
    """A mount destination, normalised (``//``, ``/./``, trailing ``/``); ``..`` is refused (400)."""
    if not path.startswith("/"):
        raise InvalidParameter(f"invalid mount config: the destination {path!r} must be an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"invalid mount config: the destination {path!r} must not contain '..'")
    if any(c in path for c in "\0\n"):
        raise InvalidParameter(f"invalid mount config: the destination {path!r} contains a control character")
    if not parts:
        raise InvalidParameter("invalid mount config: the destination cannot be /")
    return "/" + "/".join(parts)


_MAX_LINKS = 40


def make_mountpoint(root: Path, path: str, directory: bool) -> str:
    """Create mount point ``path`` inside ``root`` and return where it really is.

    The walk goes one directory file descriptor at a time (``O_NOFOLLOW``), so a
    symlink (``/etc -> /host/etc`` in an image, or one swapped in meanwhile)
    is followed *inside* ``root`` like the container would, never to the host.
    Missing directories are created (0755), and a missing last component as a
    directory or an empty file.  The result is ``path`` with every symlink
    resolved: a mount there needs no further resolution.  A last component of
    the wrong kind (a file where a directory is bound) is a 400.
    """
    parts = [p for p in clean_destination(path).split("/") if p]
    fds = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    resolved: list[str] = []
    pending = list(reversed(parts))
    links = 0
    try:
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":  # from a symlink's target: never above root
                if resolved:
                    resolved.pop()
                    os.close(fds.pop())
                continue
            last = not pending
            here = fds[-1]
            try:
                st = os.stat(comp, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                if last and not directory:
                    os.close(
                        os.open(
                            comp,
                            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                            0o644,
                            dir_fd=here,
                        )
                    )
                else:
                    os.mkdir(comp, 0o755, dir_fd=here)
                pending.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidParameter(f"too many levels of symbolic links resolving {path}")
                target = os.readlink(comp, dir_fd=here)
                if target.startswith("/"):
                    for fd in fds[1:]:
                        os.close(fd)
                    del fds[1:]
                    resolved.clear()
                pending.extend(reversed(target.split("/")))
                continue
            if last:
                if directory and not stat.S_ISDIR(st.st_mode):
                    raise InvalidParameter(
                        f"cannot mount a directory on {path}: it is not a directory in the container"
                    )
                if not directory and stat.S_ISDIR(st.st_mode):
                    raise InvalidParameter(f"cannot mount a file on {path}: it is a directory in the container")
                resolved.append(comp)
                break
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter(
                    f"cannot mount on {path}: /{'/'.join([*resolved, comp])} is not a directory in the container"
                )
            fds.append(os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here))
            resolved.append(comp)
    except OSError as exc:
        raise InvalidParameter(f"cannot create the mount point {path} in the container: {exc.strerror}") from None
    finally:
        for fd in fds:
            os.close(fd)
    return "/" + "/".join(resolved)


def mount_plan(root: Path, binds: list[tuple[Path, str, bool]]) -> list[tuple[Path, str, bool]]:
    """The binds in mount order (parents first), each destination created and resolved.

    A destination below an earlier mount is made inside that mount's source,
    which is what the container will see there; any other inside ``root``."""
    ordered = sorted(((src, clean_destination(dst), ro) for src, dst, ro in binds), key=lambda b: b[1].count("/"))
    plan: list[tuple[Path, str, bool]] = []
    covering: list[tuple[str, Path, str]] = []  # (requested destination, source, resolved target)
    for source, dest, read_only in ordered:
        directory = Path(source).is_dir()
        parent = next(((d, s, t) for d, s, t in reversed(covering) if dest.startswith(d + "/")), None)
        if parent is not None and Path(parent[1]).is_dir():
            inside = make_mountpoint(Path(parent[1]), dest[len(parent[0]) :], directory)
            target = parent[2].rstrip("/") + inside
        else:
            target = make_mountpoint(root, dest, directory)
        covering.append((dest, Path(source), target))
        plan.append((Path(source), target, read_only))
    return plan


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
    extra = sorted(
        {
            int(g[2])
            for g in groups
            if len(g) >= 4 and username and username in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid
        }
    )
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
