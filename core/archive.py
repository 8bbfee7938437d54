"""Layer tars: apply one to a directory, diff two directories, write one back.

Shared by every storage driver:

* :func:`apply_layer` streams an uncompressed OCI / Docker layer tar into a
  directory, chroot-style: nothing is ever written outside it.
* :func:`changes` lists what a layer directory adds, changes and deletes
  relative to its parent directory, exactly as ``docker diff`` does, and
  :func:`changes_size` how many content bytes that is.
* :func:`export_changes` and :func:`export_tree` (and :func:`export_diff`, the
  two together for a full tree and its parent's) write deterministic PAX layer
  tars: the same content always gives the same bytes, whichever driver holds it.

Whiteouts (``.wh.<name>``, ``.wh..wh..opq``) mean different things on disk for
different drivers; a :class:`WhiteoutHandler` translates them in both
directions.  :class:`PlainWhiteouts` (vfs, btrfs: the layer is a full tree)
deletes; :class:`OverlayWhiteouts` (overlayfs upper/lower dirs) writes char
0/0 devices and ``trusted.overlay.opaque``.  A handler for a layer directory
that holds only its own changes carries the parent's view, from which the
applier copies up the directories a tar needs but does not name.

Normalised tar headers: PAX format, names sorted in tree order, numeric
uid/gid with empty user and group names, whole-second mtimes, xattrs as
``SCHILY.xattr.*`` records, hard links to the first name seen in the tar,
whiteouts as empty mode-0 files with mtime 0, no entry for the root, and
files with at least :data:`SPARSE_MIN_HOLE` bytes of zero blocks written as
GNU sparse 1.0 entries (the holes are found from content, not allocation).
"""

from __future__ import annotations

import enum
import errno
import io
import logging
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import AbstractSet, BinaryIO, Callable

from dockyard.errors import DockyardError, InvalidParameter, System
from dockyard.models.runtime import Change

log = logging.getLogger(__name__)

__all__ = [
    "SafeTarInfo",
    "differs",
    "Marker",
    "OverlayWhiteouts",
    "PlainWhiteouts",
    "WhiteoutHandler",
    "apply_layer",
    "changes",
    "changes_size",
    "export_changes",
    "export_diff",
    "export_tree",
]

WH_PREFIX = ".wh."
WH_META_PREFIX = ".wh..wh."
WH_OPAQUE = ".wh..wh..opq"
XATTR_PAX = "SCHILY.xattr."
MODIFIED, ADDED, DELETED = 0, 1, 2

CHUNK = 1 << 20
#: granularity at which zero blocks count as holes when writing sparse entries
SPARSE_BLOCK = 4096
#: a file is written as a sparse entry when its zero blocks add up to this much
SPARSE_MIN_HOLE = 1 << 20
_ZEROS = bytes(CHUNK)
_ZERO_BLOCK = bytes(SPARSE_BLOCK)
_MAX_LINKS = 255


# ---------------------------------------------------------------------------
# whiteout handlers
# ---------------------------------------------------------------------------


class Marker(enum.Enum):
    """What an on-disk entry stands for when a layer directory is exported."""

    WHITEOUT = "whiteout"  #: a deleted path: write ``.wh.<name>`` instead of it
    OPAQUE = "opaque"  #: a directory hiding lower content: write it, then ``.wh..wh..opq``
    SKIP = "skip"  #: driver bookkeeping: leave it out


class WhiteoutHandler:
    """How one driver keeps whiteouts on disk; subclass per convention.

    Apply side: :meth:`whiteout` and :meth:`opaque`, called in tar order with
    absolute paths already resolved inside ``root``.  Export side:
    :meth:`marker` and :meth:`keep_xattr`, called by :func:`export_tree` for
    every entry (and :meth:`keep_xattr` by :func:`export_changes`).  Drivers
    whose markers live elsewhere (unionfs keeps them in ``.unionfs-fuse/``)
    return ``Marker.SKIP`` for that tree and pass the deletions to
    :func:`export_changes` instead.

    Drivers whose layer directory holds only the layer's own changes (overlay,
    aufs) give the applier the parent's merged view, as :attr:`lower` or by
    overriding :meth:`lower_entry`: a directory the tar does not name but
    needs (the parent of a whiteout, of an opaque marker or of an entry) is
    then copied up from it (owner, mode, xattrs, mtime; a lower symlink is
    copied and followed) instead of being skipped (markers) or made
    ``0755 root`` (entries).
    """

    #: apply side: a directory holding the parent's merged view, or None (nothing below)
    lower: str | None = None

    def lower_entry(self, rel: str) -> tuple[str, os.stat_result] | None:
        """Apply side: ``(path to read it from, lstat)`` of ``rel`` in the parent's
        view, None if the view has nothing there (or there is no view)."""
        if self.lower is None:
            return None
        path = os.path.join(self.lower, rel)
        try:
            return path, os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def whiteout(self, root: str, path: str) -> None:
        """Hide ``path`` (whose parent directory exists) from lower layers."""
        raise NotImplementedError

    def opaque(self, root: str, directory: str, unpacked: AbstractSet[str]) -> None:
        """Hide everything lower layers have in ``directory``.

        ``unpacked`` holds the absolute paths this layer has written so far;
        they must survive (a tar may list ``.wh..wh..opq`` after them).
        """
        raise NotImplementedError

    def marker(self, path: str, st: os.stat_result) -> Marker | None:
        """Export side: what this entry stands for (``None``: ordinary content)."""
        return None

    def keep_xattr(self, name: str) -> bool:
        """Export side: whether an xattr belongs in the tar."""
        return True


class PlainWhiteouts(WhiteoutHandler):
    """A layer directory is a complete tree: a whiteout deletes (vfs, btrfs)."""

    def whiteout(self, root: str, path: str) -> None:
        _remove_all(path)

    def opaque(self, root: str, directory: str, unpacked: AbstractSet[str]) -> None:
        with os.scandir(directory) as it:
            entries = list(it)
        for entry in entries:
            if entry.path not in unpacked:
                _remove_all(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                self.opaque(root, entry.path, unpacked)


class OverlayWhiteouts(WhiteoutHandler):
    """overlayfs layer directories: char 0/0 whiteouts, ``trusted.overlay.opaque=y``.

    ``lower``: the parent's merged view, when applying to an upper directory.
    """

    OPAQUE_XATTR = "trusted.overlay.opaque"
    WHITEOUT_XATTR = "trusted.overlay.whiteout"

    def __init__(self, lower: str | None = None) -> None:
        self.lower = lower

    def whiteout(self, root: str, path: str) -> None:
        _remove_all(path)
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))

    def opaque(self, root: str, directory: str, unpacked: AbstractSet[str]) -> None:
        os.setxattr(directory, self.OPAQUE_XATTR, b"y", follow_symlinks=False)

    def marker(self, path: str, st: os.stat_result) -> Marker | None:
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return Marker.WHITEOUT
        if stat.S_ISREG(st.st_mode) and st.st_size == 0 and _getxattr(path, self.WHITEOUT_XATTR) is not None:
            return Marker.WHITEOUT
        if stat.S_ISDIR(st.st_mode) and _getxattr(path, self.OPAQUE_XATTR) == b"y":
            return Marker.OPAQUE
        return None

    def keep_xattr(self, name: str) -> bool:
        return not name.startswith("trusted.overlay.")


PLAIN = PlainWhiteouts()


# ---------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------


def apply_layer(root: Path | str, stream: BinaryIO, whiteout: WhiteoutHandler = PLAIN, *,
                no_overwrite_dir_non_dir: bool = False, owner: tuple[int, int] | None = None) -> int:
    """Extract an uncompressed layer tar into ``root``; return the content bytes.

    ``docker cp`` options: ``no_overwrite_dir_non_dir`` refuses to replace a directory with
    something else or the reverse; ``owner`` (uid, gid) replaces the owners the tar gives.

    The bytes counted are the (apparent) sizes of regular files.  Paths never
    leave ``root``: ``..`` is refused, a leading ``/`` ignored, and symlinks in
    parent components are resolved as if ``root`` were ``/`` (moby's
    FollowSymlinkInScope); the last component of a name is never followed.
    Raises ``InvalidParameter`` for a malformed or hostile tar, ``System`` for
    I/O errors.  The stream is read to its end.
    """
    applier = _Applier(os.path.realpath(root), whiteout)
    applier.no_overwrite_dir_non_dir, applier.owner = no_overwrite_dir_non_dir, owner
    try:
        with tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape",
                          tarinfo=_CheckedTarInfo) as tf:
            tf._dy_error = None  # set by _CheckedTarInfo when the last header is bad
            while (member := tf.next()) is not None:
                tf.members.clear()  # stream mode keeps every header otherwise
                applier.add(tf, member)
            if isinstance(tf._dy_error, (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError)):
                raise InvalidParameter(f"invalid layer tar: {tf._dy_error} at offset {tf.offset}")
        applier.finish()
        while stream.read(CHUNK):  # trailing padding belongs to the caller's digest
            pass
    except DockyardError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError, ValueError) as exc:
        raise InvalidParameter(f"invalid layer tar: {exc}") from None
    except OSError as exc:
        raise System(f"applying layer to {root}: {exc}") from exc
    return applier.written


class SafeTarInfo(tarfile.TarInfo):
    """``TarInfo`` whose pax header parsing takes linear time.

    CPython before 3.11.10/3.12.6 parses pax records with regular expressions
    that backtrack quadratically on crafted headers (CVE-2024-6232): a tar of a
    few megabytes holds a worker thread for hours.  Every tar dockyard reads
    from a client, a registry or an image goes through this class
    (``tarfile.open(..., tarinfo=SafeTarInfo)``); the records mean exactly what
    they mean to tarfile, they are only found without regular expressions.
    """

    def _proc_pax(self, tarfile_):  # type: ignore[override]
        buf = tarfile_.fileobj.read(self._block(self.size))
        pax_headers = tarfile_.pax_headers if self.type == tarfile.XGLTYPE else tarfile_.pax_headers.copy()
        records = _pax_records(buf)
        charset = next((value for key, value in records if key == b"hdrcharset"), None)
        if charset is not None:
            pax_headers["hdrcharset"] = charset.decode("utf-8")
        encoding = tarfile_.encoding if pax_headers.get("hdrcharset") == "BINARY" else "utf-8"
        offsets: list[int] = []
        numbytes: list[int] = []
        for raw_key, raw_value in records:
            keyword = self._decode_pax_field(raw_key, "utf-8", "utf-8", tarfile_.errors)
            if keyword in tarfile.PAX_NAME_FIELDS:
                value = self._decode_pax_field(raw_value, encoding, tarfile_.encoding, tarfile_.errors)
            else:
                value = self._decode_pax_field(raw_value, "utf-8", "utf-8", tarfile_.errors)
            pax_headers[keyword] = value
            if keyword in ("GNU.sparse.offset", "GNU.sparse.numbytes"):     # sparse format 0.0: repeated keys
                if not raw_value.isdigit():
                    raise tarfile.InvalidHeaderError("invalid header")
                (offsets if keyword == "GNU.sparse.offset" else numbytes).append(int(raw_value))
        try:
            following = self.fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            raise tarfile.SubsequentHeaderError(str(exc)) from None
        if "GNU.sparse.map" in pax_headers:
            self._proc_gnusparse_01(following, pax_headers)
        elif "GNU.sparse.size" in pax_headers:
            following.sparse = list(zip(offsets, numbytes))
        elif pax_headers.get("GNU.sparse.major") == "1" and pax_headers.get("GNU.sparse.minor") == "0":
            self._proc_gnusparse_10(following, pax_headers, tarfile_)
        if self.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            following._apply_pax_info(pax_headers, tarfile_.encoding, tarfile_.errors)
            following.offset = self.offset
            if "size" in pax_headers:   # the next header starts after the size the record gives
                offset = following.offset_data
                if following.isreg() or following.type not in tarfile.SUPPORTED_TYPES:
                    offset += following._block(following.size)
                tarfile_.offset = offset
        return following


def _pax_records(buf: bytes) -> list[tuple[bytes, bytes]]:
    """``"<length> <keyword>=<value>\\n"`` records of a pax header, in one pass.

    Parsing stops where tarfile's stops (the NUL padding, or text that is no
    record); a record whose length does not end on its newline is invalid."""
    records = []
    pos, end = 0, len(buf)
    while pos < end:
        space = buf.find(b" ", pos, min(end, pos + 21))
        if space <= pos or not buf[pos:space].isdigit():
            break
        length = int(buf[pos:space])
        stop = pos + length
        if length == 0 or stop > end or buf[stop - 1:stop] != b"\n":
            raise tarfile.InvalidHeaderError("invalid header")
        equals = buf.find(b"=", space + 1, stop)
        if equals <= space + 1:
            raise tarfile.InvalidHeaderError("invalid header")
        records.append((buf[space + 1:equals], buf[equals + 1:stop - 1]))
        pos = stop
    return records


class _CheckedTarInfo(SafeTarInfo):
    """Remembers why the header that ended the archive was unreadable."""

    @classmethod
    def fromtarfile(cls, tf):  # type: ignore[override]
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as exc:
            tf._dy_error = exc
            raise


def _split(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"invalid layer tar: path {name!r} leaves the layer")
    if any("\0" in p for p in parts):
        raise InvalidParameter(f"invalid layer tar: NUL in path {name!r}")
    return parts


class _Applier:
    def __init__(self, root: str, whiteout: WhiteoutHandler) -> None:
        self.root = root
        self.handler = whiteout
        self.dirs: dict[str, str] = {}  # unresolved dir name -> real path inside root
        self.unpacked: set[str] = set()
        self.dir_times: dict[str, int] = {}
        self.opaque: set[str] = set()  # directories made opaque: nothing below them is copied up
        self.written = 0
        self.no_overwrite_dir_non_dir = False
        self.owner: tuple[int, int] | None = None

    # -- paths ---------------------------------------------------------------

    def resolve_dir(self, parts: list[str], create: bool, copy_up: bool = True) -> str | None:
        """Real path of directory ``parts``, following symlinks inside root.

        A missing component the handler's lower view has as a directory or a
        symlink is copied up from it (unless ``copy_up`` is false; a copied
        symlink is then followed).  Other missing components are created
        (0755) or, if ``create`` is false, the result is ``None``; a
        non-directory in the way is replaced.
        """
        key = "/".join(parts)
        hit = self.dirs.get(key)
        if hit is not None:
            return hit
        resolved: list[str] = []
        pending = list(reversed(parts))
        links = 0
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            path = os.path.join(self.root, *resolved, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if copy_up and self.copy_up([*resolved, comp], path):
                    pending.append(comp)  # look again: a directory or a symlink now
                    continue
                if not create:
                    return None
                os.mkdir(path, 0o755)
                resolved.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidParameter(f"invalid layer tar: too many symlinks resolving {key!r}")
                target = os.readlink(path)
                if target.startswith("/"):
                    resolved = []
                pending.extend(reversed(target.split("/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not create:
                    return None
                os.unlink(path)
                os.mkdir(path, 0o755)
            resolved.append(comp)
        real = os.path.join(self.root, *resolved)
        self.dirs[key] = real
        return real

    def copy_up(self, rel: list[str], path: str) -> bool:
        """Create ``path`` (``rel`` inside root) as the lower view has it, if that is a
        directory or a symlink; False if the view has nothing there or something else."""
        found = self.handler.lower_entry("/".join(rel))
        if found is None:
            return False
        source, st = found
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return False  # a lower file: nothing below it to hide or to keep
        above = os.path.dirname(path)
        while len(above) >= len(self.root):
            if above in self.opaque:
                return False  # this layer hides the lower content here
            above = os.path.dirname(above)
        self.keep_time(os.path.dirname(path))
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(path, 0o700)
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
            os.chmod(path, stat.S_IMODE(st.st_mode))
            self.dir_times.setdefault(path, st.st_mtime_ns)
        else:
            os.symlink(os.readlink(source), path)
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
        for name, value in _xattrs(source, self.handler.keep_xattr).items():
            try:
                os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise System(f"copying xattr {name!r} of {'/'.join(rel)!r} up: {exc}") from exc
        if stat.S_ISLNK(st.st_mode):
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return True

    def keep_time(self, directory: str) -> None:
        """Restore ``directory``'s mtime at the end unless the tar gives one: what the
        layer changes in a directory it has no header for leaves its time alone."""
        if directory not in self.dir_times:
            self.dir_times[directory] = os.lstat(directory).st_mtime_ns

    def clear(self, path: str, keep_dir: bool) -> bool:
        """Remove whatever is at ``path``; keep a directory if ``keep_dir``.  True if kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(path)
            self.dirs.clear()
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self.dirs.clear()
        return False

    # -- members -------------------------------------------------------------

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _split(m.name)
        if not parts:
            if not m.isdir():
                raise InvalidParameter(f"invalid layer tar: non-directory entry {m.name!r} for the root")
            self.meta(self.root, m)
            self.dir_times[self.root] = _mtime_ns(m)
            return
        *dir_parts, base = parts
        if base.startswith(WH_PREFIX):
            self.whiteout(dir_parts, base)
            return
        parent = self.resolve_dir(dir_parts, create=True)
        self.keep_time(parent)
        path = os.path.join(parent, base)
        if self.no_overwrite_dir_non_dir:
            self.check_overwrite(path, m)
        if m.isreg():
            self.clear(path, keep_dir=False)
            self.write_file(tf, m, path)
        elif m.isdir():
            if not self.clear(path, keep_dir=True):
                os.mkdir(path, 0o700)
            self.meta(path, m)
            self.dir_times[path] = _mtime_ns(m)
        elif m.issym():
            self.clear(path, keep_dir=False)
            os.symlink(m.linkname, path)
            self.meta(path, m, symlink=True)
            os.utime(path, ns=(_mtime_ns(m),) * 2, follow_symlinks=False)
        elif m.islnk():
            self.link(m, path)
        elif m.ischr() or m.isblk() or m.isfifo():
            self.clear(path, keep_dir=False)
            if m.isfifo():
                os.mkfifo(path, 0o600)
            else:
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                try:
                    os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
                except PermissionError as exc:
                    raise System(f"cannot create device node {m.name!r} (needs CAP_MKNOD): {exc}") from exc
            self.meta(path, m)
            os.utime(path, ns=(_mtime_ns(m),) * 2)
        else:
            raise InvalidParameter(f"invalid layer tar: unsupported entry type {m.type!r} for {m.name!r}")
        self.unpacked.add(path)

    def whiteout(self, dir_parts: list[str], base: str) -> None:
        if base.startswith(WH_META_PREFIX) and base != WH_OPAQUE:
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        parent = self.resolve_dir(dir_parts, create=False)  # copied up if only the lower view has it
        if parent is None:
            return  # nothing below a missing parent to hide
        self.keep_time(parent)
        self.dirs.clear()
        if base == WH_OPAQUE:
            self.handler.opaque(self.root, parent, self.unpacked)
            self.opaque.add(parent)
        else:
            name = base[len(WH_PREFIX):]
            if name in ("", ".", ".."):
                raise InvalidParameter(f"invalid layer tar: bad whiteout {base!r}")
            self.handler.whiteout(self.root, os.path.join(parent, name))

    def link(self, m: tarfile.TarInfo, path: str) -> None:
        target_parts = _split(m.linkname)
        if not target_parts:
            raise InvalidParameter(f"invalid layer tar: hard link {m.name!r} to the root")
        parent = self.resolve_dir(target_parts[:-1], create=False, copy_up=False)
        source = os.path.join(parent, target_parts[-1]) if parent else None
        try:
            st = os.lstat(source) if source else None
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(f"invalid layer tar: hard link {m.name!r} -> {m.linkname!r}: "
                                   "no such file in the layer")
        if source == path:
            return
        self.clear(path, keep_dir=False)
        os.link(source, path, follow_symlinks=False)

    def write_file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            src = tf.fileobj
            src.seek(m.offset_data)
            if m.sparse is not None:
                for offset, size in m.sparse:
                    os.lseek(fd, offset, os.SEEK_SET)
                    _copy(src, fd, size)
            else:
                _copy(src, fd, m.size)
            os.ftruncate(fd, m.size)
            self.meta(fd, m)
            os.utime(fd, ns=(_mtime_ns(m),) * 2)
        finally:
            os.close(fd)
        self.written += m.size

    def check_overwrite(self, path: str, m: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) and not m.isdir():
            raise InvalidParameter(f"cannot overwrite directory {path[len(self.root):] or '/'!r} with "
                                   f"non-directory {m.name!r}")
        if not stat.S_ISDIR(st.st_mode) and m.isdir():
            raise InvalidParameter(f"cannot overwrite non-directory {path[len(self.root):]!r} with "
                                   f"directory {m.name!r}")

    def meta(self, target: str | int, m: tarfile.TarInfo, symlink: bool = False) -> None:
        """chown, chmod, xattrs, in that order (chown drops setuid and capabilities).

        Never through a symlink: a directory is changed through a descriptor opened with
        ``O_NOFOLLOW`` (something swapped in meanwhile fails the open instead)."""
        if isinstance(target, str) and not symlink and stat.S_ISDIR(os.lstat(target).st_mode):
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self.meta(fd, m)
            finally:
                os.close(fd)
            return
        uid, gid = self.owner if self.owner is not None else (m.uid, m.gid)
        if isinstance(target, int):
            os.fchown(target, uid, gid)
        else:
            os.chown(target, uid, gid, follow_symlinks=False)
        if isinstance(target, int):
            os.fchmod(target, m.mode & 0o7777)
        elif not symlink:
            if stat.S_ISLNK(os.lstat(target).st_mode):   # a device node or fifo, just made; never follow a link
                raise InvalidParameter(f"invalid layer tar: {m.name!r} was replaced by a symlink while applied")
            os.chmod(target, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if not key.startswith(XATTR_PAX):
                continue
            name = key[len(XATTR_PAX):]
            data = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, data)
                else:
                    os.setxattr(target, name, data, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise System(f"setting xattr {name!r} on {m.name!r}: {exc}") from exc
                log.warning("xattr %s on %s not supported here; skipped", name, m.name)

    def finish(self) -> None:
        for path, ns in self.dir_times.items():
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    os.utime(path, ns=(ns, ns), follow_symlinks=False)
            except FileNotFoundError:
                pass


def _mtime_ns(m: tarfile.TarInfo) -> int:
    raw = m.pax_headers.get("mtime")
    if raw:  # exact decimal from the PAX record, not a float
        sec, _, frac = raw.partition(".")
        neg = sec.startswith("-")
        ns = abs(int(sec or "0")) * 1_000_000_000 + int((frac + "000000000")[:9] or "0")
        return -ns if neg else ns
    return int(m.mtime) * 1_000_000_000


def _copy(src, fd: int, size: int) -> None:
    """Copy ``size`` bytes from the tar stream; all-zero chunks become holes."""
    while size > 0:
        n = min(CHUNK, size)
        buf = src.read(n)
        if len(buf) < n:
            raise tarfile.ReadError("unexpected end of data")
        if (buf == _ZEROS) if n == CHUNK else (buf.count(0) == n):
            os.lseek(fd, n, os.SEEK_CUR)
        else:
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view):]
        size -= n


def _remove_all(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------------------
# changes
# ---------------------------------------------------------------------------


def changes(layer_dir: Path | str, parent_dir: Path | str | None) -> list[Change]:
    """What ``layer_dir`` adds (A), changes (C) and deletes (D) relative to ``parent_dir``.

    Follows moby's ``ChangesDirs``: an added directory lists everything below it
    as added; a deleted one only itself; a directory containing changes is
    itself changed.  Compared: type and mode, uid, gid, rdev, xattrs, symlink
    target, and for non-directories size and mtime (equal, or the same second
    when one side has no sub-second part, as after a tar round trip).
    ``parent_dir=None`` means an empty parent.  Sorted in tree order.
    """
    out: list[tuple[str, int]] = []
    _compare(os.fspath(layer_dir), os.fspath(parent_dir) if parent_dir is not None else None, "", out)
    out.sort(key=lambda c: c[0].split("/"))
    return [Change(path=p, kind=k) for p, k in out]


def _scan(path: str) -> dict[str, os.stat_result]:
    with os.scandir(path) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _compare(new: str, old: str | None, rel: str, out: list[tuple[str, int]]) -> None:
    new_entries = _scan(new)
    old_entries = _scan(old) if old is not None else {}
    for name in sorted(new_entries):
        st = new_entries[name]
        child_rel = f"{rel}/{name}"
        new_path = os.path.join(new, name)
        old_st = old_entries.pop(name, None)
        start = len(out)
        if old_st is None:
            out.append((child_rel, ADDED))
            if stat.S_ISDIR(st.st_mode):
                _compare(new_path, None, child_rel, out)
            continue
        old_path = os.path.join(old, name)  # type: ignore[arg-type]
        changed = differs(old_path, old_st, new_path, st)
        if changed:
            out.append((child_rel, MODIFIED))
        if stat.S_ISDIR(st.st_mode):
            _compare(new_path, old_path if stat.S_ISDIR(old_st.st_mode) else None, child_rel, out)
            if len(out) > start and not changed:
                out.insert(start, (child_rel, MODIFIED))
    for name in old_entries:
        out.append((f"{rel}/{name}", DELETED))


def differs(old_path: str, a: os.stat_result, new_path: str, b: os.stat_result,
            keep_xattr: Callable[[str], bool] | None = None) -> bool:
    """Whether ``new_path`` (lstat ``b``) is a change of ``old_path`` (lstat ``a``), by
    :func:`changes`' rules.  ``keep_xattr``: which xattr names count (default: all),
    for a driver whose layer directory carries bookkeeping xattrs its union hides."""
    if (a.st_mode, a.st_uid, a.st_gid, a.st_rdev) != (b.st_mode, b.st_uid, b.st_gid, b.st_rdev):
        return True
    if not stat.S_ISDIR(a.st_mode):  # directory size and mtime say nothing (moby#9874)
        if a.st_size != b.st_size or not _same_time(a.st_mtime_ns, b.st_mtime_ns):
            return True
    if stat.S_ISLNK(a.st_mode) and os.readlink(old_path) != os.readlink(new_path):
        return True
    return _xattrs(old_path, keep_xattr) != _xattrs(new_path, keep_xattr)


def _same_time(a: int, b: int) -> bool:
    second = 1_000_000_000
    return a == b or (a // second == b // second and (a % second == 0 or b % second == 0))


def _xattrs(path: str, keep: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOENT):
            return {}
        raise
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names) if keep is None or keep(n)}


def _getxattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def changes_size(layer_dir: Path | str, found: Iterable[Change]) -> int:
    """Bytes of content added or changed (non-directories, hard links counted once)."""
    total, seen = 0, set()
    for change in found:
        if change.kind == DELETED:
            continue
        try:
            st = os.lstat(os.path.join(layer_dir, change.path.lstrip("/")))
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def export_changes(layer_dir: Path | str, found: Iterable[Change],
                   on_close: Callable[[], None] | None = None,
                   whiteout: WhiteoutHandler = PLAIN) -> BinaryIO:
    """A layer tar of ``found`` (from :func:`changes`) with content from ``layer_dir``.

    Deletions become ``.wh.<name>`` entries.  ``whiteout`` says which xattrs
    belong in the tar (:meth:`WhiteoutHandler.keep_xattr`), so a driver can
    read content straight from a layer directory that carries its own
    bookkeeping xattrs.  The tar is produced lazily as the returned stream is
    read; ``on_close`` runs once when it is closed.
    """
    root = os.fspath(layer_dir)
    ordered = sorted(found, key=lambda c: c.path.split("/"))

    def chunks() -> Iterator[bytes]:
        w = _TarWriter(whiteout)
        for change in ordered:
            name = change.path.strip("/")
            if not name:
                continue
            if change.kind == DELETED:
                yield from w.whiteout(name)
                continue
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise System(f"exporting {name!r}: it vanished from {root}") from None
            yield from w.entry(path, name, st)
        yield from w.close()

    return _reader(chunks(), on_close)


def export_diff(layer_dir: Path | str, parent_dir: Path | str | None,
                on_close: Callable[[], None] | None = None) -> BinaryIO:
    """The diff of a full tree against its parent's (a walk of both): :func:`export_tree`
    for a base layer (``parent_dir=None``), else :func:`export_changes` of :func:`changes`.
    ``on_close`` runs when the stream is closed, or at once if this raises."""
    try:
        if parent_dir is None:
            return export_tree(layer_dir, on_close=on_close)
        return export_changes(layer_dir, changes(layer_dir, parent_dir), on_close=on_close)
    except BaseException:
        if on_close is not None:
            on_close()
        raise


def export_tree(directory: Path | str, whiteout: WhiteoutHandler = PLAIN,
                on_close: Callable[[], None] | None = None) -> BinaryIO:
    """A tar of everything below ``directory`` (``docker export``, or a layer's
    own diff when ``whiteout`` recognises its markers).  Lazy, like
    :func:`export_changes`; the root itself has no entry.
    """
    root = os.fspath(directory)

    def walk(path: str, prefix: str, w: _TarWriter) -> Iterator[bytes]:
        entries = _scan(path)
        for name in sorted(entries):
            st = entries[name]
            child, rel = os.path.join(path, name), prefix + name
            mark = whiteout.marker(child, st)
            if mark is Marker.SKIP:
                continue
            if mark is Marker.WHITEOUT:
                yield from w.whiteout(rel)
                continue
            yield from w.entry(child, rel, st)
            if mark is Marker.OPAQUE:
                yield from w.opaque(rel)
            if stat.S_ISDIR(st.st_mode):
                yield from walk(child, rel + "/", w)

    def chunks() -> Iterator[bytes]:
        w = _TarWriter(whiteout)
        yield from walk(root, "", w)
        yield from w.close()

    return _reader(chunks(), on_close)


class _TarWriter:
    """Builds normalised PAX members; yields output in ~1 MiB chunks."""

    def __init__(self, handler: WhiteoutHandler) -> None:
        self.handler = handler
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}

    def _emit(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        self.buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if len(self.buf) >= CHUNK:
            yield bytes(self.buf)
            self.buf.clear()

    def whiteout(self, name: str) -> Iterator[bytes]:
        head, _, base = name.rpartition("/")
        info = tarfile.TarInfo(f"{head}/{WH_PREFIX}{base}" if head else WH_PREFIX + base)
        info.mode = 0
        yield from self._emit(info)

    def opaque(self, directory: str) -> Iterator[bytes]:
        info = tarfile.TarInfo(f"{directory}/{WH_OPAQUE}")
        info.mode = 0
        yield from self._emit(info)

    def entry(self, path: str, name: str, st: os.stat_result) -> Iterator[bytes]:
        mode = st.st_mode
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        for key, value in _xattrs(path, self.handler.keep_xattr).items():
            info.pax_headers[XATTR_PAX + key] = value.decode("utf-8", "surrogateescape")
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                info.type, info.linkname = tarfile.LNKTYPE, first
                yield from self._emit(info)
                return
        if stat.S_ISREG(mode):
            yield from self._file(path, info, st.st_size)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets have no tar form; Docker skips them too
        yield from self._emit(info)

    def _file(self, path: str, info: tarfile.TarInfo, size: int) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            runs = _data_runs(fd, size) if size >= SPARSE_MIN_HOLE else None
            if runs is not None and size - sum(n for _, n in runs) < SPARSE_MIN_HOLE:
                runs = None
            if runs is None:
                info.size = size
                yield from self._emit(info)
                yield from self._data(fd, [(0, size)])
                return
            if not runs or runs[-1][0] + runs[-1][1] < size:
                runs.append((size, 0))  # GNU marks a trailing hole this way
            sparse_map = f"{len(runs)}\n" + "".join(f"{o}\n{n}\n" for o, n in runs)
            map_bytes = sparse_map.encode() + bytes(-len(sparse_map) % tarfile.BLOCKSIZE)
            head, _, base = info.name.rpartition("/")
            real_name = info.name
            # path first so GNU.sparse.name wins for readers that apply records in order
            records = {"path": f"{head}/GNUSparseFile.0/{base}" if head else f"GNUSparseFile.0/{base}",
                       "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                       "GNU.sparse.name": real_name, "GNU.sparse.realsize": str(size)}
            records.update(info.pax_headers)
            info.pax_headers = records
            info.name = records["path"]
            info.size = len(map_bytes) + sum(n for _, n in runs)
            yield from self._emit(info)
            self.buf += map_bytes
            yield from self._data(fd, runs)
        finally:
            os.close(fd)

    def _data(self, fd: int, runs: list[tuple[int, int]]) -> Iterator[bytes]:
        total = 0
        for offset, length in runs:
            end = offset + length
            while offset < end:
                chunk = os.pread(fd, min(CHUNK, end - offset), offset)
                if not chunk:  # the file shrank while being read: pad
                    chunk = bytes(min(CHUNK, end - offset))
                offset += len(chunk)
                total += len(chunk)
                self.buf += chunk
                if len(self.buf) >= CHUNK:
                    yield bytes(self.buf)
                    self.buf.clear()
        self.buf += bytes(-total % tarfile.BLOCKSIZE)

    def close(self) -> Iterator[bytes]:
        self.buf += bytes(2 * tarfile.BLOCKSIZE)
        self.buf += bytes(-len(self.buf) % tarfile.RECORDSIZE)  # tarfile pads the same way
        yield bytes(self.buf)
        self.buf.clear()


def _data_runs(fd: int, size: int) -> list[tuple[int, int]]:
    """Runs of SPARSE_BLOCK-aligned blocks holding a non-zero byte (content, not allocation)."""
    runs: list[list[int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            raise
        hole = os.lseek(fd, start, os.SEEK_HOLE)
        end = min(-(-hole // SPARSE_BLOCK) * SPARSE_BLOCK, size)  # whole blocks, so regions never overlap
        start -= start % SPARSE_BLOCK
        while start < end:
            chunk = os.pread(fd, min(CHUNK, end - start), start)
            if not chunk:
                break
            if _ZERO_BLOCK not in chunk:  # fast path: no aligned zero block possible
                _extend(runs, start, len(chunk))
            else:
                for i in range(0, len(chunk), SPARSE_BLOCK):
                    block = chunk[i:i + SPARSE_BLOCK]
                    if block.count(0) != len(block):
                        _extend(runs, start + i, len(block))
            start += len(chunk)
        pos = end
    return [(o, min(n, size - o)) for o, n in runs]


def _extend(runs: list[list[int]], offset: int, length: int) -> None:
    if runs and runs[-1][0] + runs[-1][1] == offset:
        runs[-1][1] += length
    else:
        runs.append([offset, length])


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None] | None) -> None:
        self._chunks = chunks
        self._view = memoryview(b"")
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._view:
            try:
                self._view = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except DockyardError:
                raise
            except OSError as exc:
                raise System(f"writing layer tar: {exc}") from exc
        n = min(len(b), len(self._view))
        b[:n] = self._view[:n]
        self._view = self._view[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._chunks.close()  # type: ignore[attr-defined]
            finally:
                callback, self._on_close = self._on_close, None
                super().close()
                if callback is not None:
                    callback()


def _reader(chunks: Iterator[bytes], on_close: Callable[[], None] | None) -> BinaryIO:
    return io.BufferedReader(_ChunkReader(chunks, on_close), CHUNK)  # type: ignore[return-value]
