"""COPY and ADD: find the sources, hash them for the cache, write them into a rootfs.

Sources are looked up in a *source root* (the context, or another stage's or
image's root file system for ``COPY --from``) the way the classic builder
does: a path is relative to that root even when it starts with ``/``, symlinks
on the way are followed but never out of the root, ``..`` that would leave it is
refused, and wildcards (Go's ``filepath.Match``: ``*``, ``?``, ``[...]``) match
per path component.

Destinations follow Docker's rules: a relative destination is relative to
WORKDIR; a destination ending in ``/`` (or an existing directory) receives
files under their own names; several sources need such a directory; a source
directory's *contents* are copied.  New files and directories belong to 0:0
unless ``--chown`` says otherwise.

Writing goes through a tar stream applied chroot-style by
:func:`dockyard.archive.apply_layer`, so nothing is ever written outside the
target root, whatever symlinks the image holds.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard import archive, rootfs
from dockyard.build.dockerignore import glob_regex
from dockyard.errors import InvalidParameter
from dockyard.images import decompressed

__all__ = [
    "CopyError",
    "Source",
    "resolve_sources",
    "digest",
    "copy_into",
    "parse_chown",
    "is_archive",
    "extract_archive",
]

WILDCARDS = re.compile(r"[*?\[]")


class CopyError(InvalidParameter):
    """A COPY/ADD that cannot be done (missing source, path outside the context ...)."""


@dataclass
class Source:
    path: Path  #: host path (symlinks of the lookup followed)
    name: str  #: base name used when copied into a directory
    is_dir: bool
    #: for ADD of a URL: fixed mode and mtime
    mode: int | None = None
    mtime: float | None = None
    archive: bool = False  #: ADD of a local tar: extracted


def _st(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def resolve_sources(
    root: Path, patterns: list[str], what: str, context_label: str = "build context", excluded=None
) -> list[Source]:
    """The sources a COPY/ADD names, in order (globs expanded, sorted as Docker walks)."""
    found: list[Source] = []
    for pattern in patterns:
        rel = pattern.replace("\\", "/") if os.sep != "/" else pattern
        normal = posixpath.normpath("/" + rel.lstrip("/")) if rel else "/"
        if posixpath.normpath(rel.lstrip("/") or ".").startswith(".."):
            raise CopyError(f"{what} failed: forbidden path outside the {context_label}: {pattern} ()")
        if WILDCARDS.search(rel):
            matches = _glob(root, normal.lstrip("/"))
            if not matches:
                raise CopyError(
                    f"{what} failed: no source files were specified (nothing in the {context_label} "
                    f"matches {pattern!r})"
                )
            for match in matches:
                host = rootfs.resolve_in_root(root, match)
                st = _st(host)
                if st is None:
                    continue
                found.append(Source(path=host, name=posixpath.basename(match), is_dir=stat.S_ISDIR(st.st_mode)))
            continue
        host = rootfs.resolve_in_root(root, normal)
        st = _st(host)
        if st is None:
            raise CopyError(
                f"{what} failed: file not found in {context_label} or excluded by .dockerignore: "
                f"stat {pattern}: file does not exist"
            )
        name = posixpath.basename(normal) or "/"
        found.append(Source(path=host, name=name, is_dir=stat.S_ISDIR(st.st_mode)))
    return found


def _glob(root: Path, pattern: str) -> list[str]:
    """Paths (relative to ``root``) matching a Go ``filepath.Match`` pattern, component by component."""
    parts = [p for p in pattern.split("/") if p]
    current = [""]
    for index, part in enumerate(parts):
        nxt: list[str] = []
        if WILDCARDS.search(part):
            regex = re.compile(glob_regex(part, double_star=False)[0], re.S)
            for base in current:
                directory = rootfs.resolve_in_root(root, base) if base else root
                try:
                    names = sorted(os.listdir(directory))
                except OSError:
                    continue
                nxt.extend(f"{base}/{n}" if base else n for n in names if regex.match(n))
        else:
            unescaped = re.sub(r"\\(.)", r"\1", part)
            for base in current:
                candidate = f"{base}/{unescaped}" if base else unescaped
                if index == len(parts) - 1 or rootfs.resolve_in_root(root, candidate).is_dir():
                    if os.path.lexists(rootfs.resolve_in_root(root, candidate)):
                        nxt.append(candidate)
        current = nxt
    return current


# -- hashing ------------------------------------------------------------------------------------------


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def digest(source: Source) -> str:
    """Content and metadata (names, types, modes, link targets; not times nor owners) of a source."""
    h = hashlib.sha256()

    def entry(rel: str, path: str, st: os.stat_result) -> None:
        mode = source.mode if source.mode is not None else stat.S_IMODE(st.st_mode)
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode):o}\0{mode:o}\0".encode("utf-8", "surrogateescape"))
        if stat.S_ISREG(st.st_mode):
            h.update(_file_digest(path).encode())
        elif stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode("utf-8", "surrogateescape"))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            h.update(str(st.st_rdev).encode())
        h.update(b"\n")

    top = os.fspath(source.path)
    entry(".", top, os.stat(top))
    if source.is_dir:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                entry(os.path.relpath(path, top), path, os.lstat(path))
    return h.hexdigest()


# -- ownership ------------------------------------------------------------------------------------------


def _lookup(root: Path, file: str, name: str, id_field: int) -> int | None:
    try:
        text = rootfs.resolve_in_root(root, file).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > id_field and fields[0] == name and fields[id_field].isdigit():
            return int(fields[id_field])
    return None


def parse_chown(spec: str, root: Path | None) -> tuple[int, int]:
    """``--chown=user[:group]`` to ids, names looked up in the target's /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    group = group or user
    if not user:
        raise CopyError(f"invalid --chown={spec!r}: no user")
    if user.isdigit():
        uid = int(user)
    else:
        found = _lookup(root, "/etc/passwd", user, 2) if root is not None else None
        if found is None:
            raise CopyError(
                f"unable to convert uid/gid chown string to host mapping: can't find uid for user "
                f"{user}: no such user: {user}"
            )
        uid = found
    if group.isdigit():
        gid = int(group)
    else:
        found = _lookup(root, "/etc/group", group, 2) if root is not None else None
        if found is None:
            raise CopyError(
                f"unable to convert uid/gid chown string to host mapping: can't find gid for group "
                f"{group}: no such group: {group}"
            )
        gid = found
    return uid, gid


# -- archives (ADD) ---------------------------------------------------------------------------------------


def is_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as raw:
            head = decompressed(raw).read(512)
    except (OSError, EOFError, ValueError):
        return False
    except Exception:  # a corrupt compressed stream is not an archive either
        return False
    if len(head) < 512 or head == bytes(512):
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def extract_archive(root: Path, archive_path: Path, dest: str) -> None:
    """Unpack a (compressed) tar into directory ``dest`` of ``root`` (owners as in the archive)."""
    target = _ensure_dir(root, dest)
    with open(archive_path, "rb") as raw:
        archive.apply_layer(target, decompressed(raw))


def _ensure_dir(root: Path, dest: str, owner: tuple[int, int] | None = None) -> Path:
    """Create directory ``dest`` inside ``root`` (symlinks followed in scope); returns its host path."""
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    current = "/"
    for part in parts:
        current = posixpath.join(current, part)
        host = rootfs.resolve_in_root(root, current)
        if not os.path.lexists(host):
            host.mkdir(mode=0o755)
            os.chmod(host, 0o755)
            if owner:
                os.chown(host, *owner)
        elif not host.is_dir():
            raise CopyError(f"cannot create directory {current}: a file is in the way")
    return rootfs.resolve_in_root(root, dest)


# -- writing ----------------------------------------------------------------------------------------------


@dataclass
class _Item:
    source: Source
    target: str  #: absolute path in the target root
    as_dir: bool  #: copy the directory's contents into target


def plan(sources: list[Source], dest: str, workdir: str, root: Path, what: str) -> list[_Item]:
    """Where each source goes, by Docker's trailing-slash rules."""
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    if len(sources) > 1 and not dest_is_dir:
        raise CopyError(
            f"When using {what} with more than one source file, the destination must be a directory and end with a /"
        )
    target = posixpath.normpath(dest)
    if target.startswith("//"):
        target = target[1:]
    existing = rootfs.resolve_in_root(root, target)
    if existing.is_dir() and not existing.is_symlink():
        dest_is_dir = True
    items = []
    for source in sources:
        if source.is_dir or source.archive:
            items.append(_Item(source, target, True))
        elif dest_is_dir:
            items.append(_Item(source, posixpath.join(target, source.name), False))
        else:
            items.append(_Item(source, target, False))
    return items


def copy_into(root: Path, items: list[_Item], owner: tuple[int, int] | None, chmod: int | None) -> None:
    """Write the planned items into ``root``."""
    uid, gid = owner if owner else (0, 0)
    for item in items:
        if item.source.archive:
            extract_archive(root, item.source.path, item.target)
    plain = [i for i in items if not i.source.archive]
    if not plain:
        return
    # parents that do not exist yet are created first (owned like the files when --chown is given)
    for item in plain:
        parent = item.target if item.as_dir else posixpath.dirname(item.target)
        _ensure_dir(root, parent, owner)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf,
            ):
                for item in plain:
                    _add(tf, item, uid, gid, chmod)
        except BaseException as exc:  # seen by the reader as a truncated tar; reported below
            failure.append(exc)

    thread = threading.Thread(target=produce, name="build-copy", daemon=True)
    thread.start()
    applied: BaseException | None = None
    with os.fdopen(read_fd, "rb") as stream:
        try:
            archive.apply_layer(root, stream)
        except BaseException as exc:
            applied = exc
        while stream.read(1 << 20):  # let the writer finish
            pass
    thread.join()
    if failure:
        raise failure[0] if isinstance(failure[0], InvalidParameter) else CopyError(f"copy failed: {failure[0]}")
    if applied is not None:
        raise applied


def _info(
    tf: tarfile.TarFile, path: str, arcname: str, uid: int, gid: int, chmod: int | None, source: Source
) -> tarfile.TarInfo | None:
    info = tf.gettarinfo(path, arcname)
    if info is None:  # sockets
        return None
    info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
    if source.mode is not None:
        info.mode = source.mode
    if chmod is not None and not info.issym():
        info.mode = chmod
    if source.mtime is not None:
        info.mtime = source.mtime
    return info


def _add(tf: tarfile.TarFile, item: _Item, uid: int, gid: int, chmod: int | None) -> None:
    top = os.fspath(item.source.path)
    base = item.target.lstrip("/")
    if not item.as_dir:
        info = _info(tf, top, base, uid, gid, chmod, item.source)
        if info is not None:
            _emit(tf, info, top)
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            arcname = f"{base}/{rel}" if base else rel
            info = _info(tf, path, arcname, uid, gid, chmod, item.source)
            if info is not None:
                _emit(tf, info, path)


def _emit(tf: tarfile.TarFile, info: tarfile.TarInfo, path: str) -> None:
    if info.isreg():
        with open(path, "rb") as f:
            tf.addfile(info, f)
    else:
        tf.addfile(info)


def download(url: str, target_dir: Path, progress=None) -> tuple[Path, str, float | None]:
    """ADD <url>: fetch into ``target_dir``; returns (file, name from the URL, Last-Modified as a time)."""
    import email.utils

    import httpx

    name = posixpath.basename(url.split("?", 1)[0].split("#", 1)[0].rstrip("/")) or "download"
    path = target_dir / f"download-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    mtime = None
    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0)) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise CopyError(f"ADD failed: error downloading {url}: HTTP {response.status_code}")
                total = int(response.headers.get("Content-Length") or 0)
                modified = response.headers.get("Last-Modified")
                if modified:
                    try:
                        mtime = email.utils.parsedate_to_datetime(modified).timestamp()
                    except (TypeError, ValueError):
                        mtime = None
                done, last, reported = 0, 0.0, -1
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        done += len(chunk)
                        now = time.monotonic()
                        if progress and now - last > 0.1:
                            progress(done, total)
                            last, reported = now, done
                if progress and reported != done:
                    progress(done, total)
    except KeyboardInterrupt:
        raise
    except CopyError:
        raise
    except Exception as exc:  # httpx errors, bad URLs
        raise CopyError(f"ADD failed: error downloading {url}: {exc}") from None
    return path, name, mtime
