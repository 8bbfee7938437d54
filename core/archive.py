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
import itertools
import logging
import os
import queue
import shutil
import stat
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import AbstractSet, BinaryIO, Callable, NamedTuple, cast

from dockyard.compression import CodecError, decompressing_reader
from dockyard.errors import DockyardError, InvalidParameter, System
from dockyard.models.runtime import Change
from dockyard import tarstream
from dockyard.tarstream import BLK, CHR, DIR, FIFO, LNK, REG, SYM, Entry, TarFormatError, TarReader

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


def apply_layer(
    root: Path | str,
    stream: BinaryIO,
    whiteout: WhiteoutHandler = PLAIN,
    *,
    no_overwrite_dir_non_dir: bool = False,
    owner: tuple[int, int] | None = None,
) -> int:
    """Extract a layer tar (plain, gzip, zstd, bzip2 or xz) into ``root``; return the content bytes.

    ``docker cp`` options: ``no_overwrite_dir_non_dir`` refuses to replace a directory with
    something else or the reverse; ``owner`` (uid, gid) replaces the owners the tar gives.

    The bytes counted are the (apparent) sizes of regular files.  Paths never
    leave ``root``: ``..`` is refused, a leading ``/`` ignored, and symlinks in
    parent components are resolved as if ``root`` were ``/`` (moby's
    FollowSymlinkInScope); the last component of a name is never followed.
    Raises ``InvalidParameter`` for a malformed or hostile tar, ``System`` for
    I/O errors.  The stream is read to its end (in 1 MiB reads: a caller that
    hashes it sees every byte).
    """
    real = os.path.realpath(root)
    applier = _Applier(real, whiteout)
    applier.no_overwrite_dir_non_dir, applier.owner = no_overwrite_dir_non_dir, owner
    try:
        if not os.listdir(real):  # nothing to replace: small files are written by a pool beside the parser
            applier.pool = _FilePool(applier)
        reader = TarReader(decompressing_reader(stream.read))
        while (entry := reader.next()) is not None:
            applier.add(reader, entry)
        applier.finish()
        reader.drain()  # trailing padding belongs to the caller's digest
    except DockyardError:
        raise
    except (TarFormatError, CodecError, UnicodeError, ValueError) as exc:
        raise InvalidParameter(f"invalid layer tar: {exc}") from None
    except OSError as exc:
        raise System(f"applying layer to {root}: {exc}") from exc
    finally:
        if applier.pool is not None:
            applier.pool.close()
    return applier.written


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o7777  # unknown: every mode is set explicitly


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
            if keyword in ("GNU.sparse.offset", "GNU.sparse.numbytes"):  # sparse format 0.0: repeated keys
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
            following.sparse = list(zip(offsets, numbytes, strict=False))  # as CPython: extra numbers are ignored
        elif pax_headers.get("GNU.sparse.major") == "1" and pax_headers.get("GNU.sparse.minor") == "0":
            self._proc_gnusparse_10(following, pax_headers, tarfile_)
        if self.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            following._apply_pax_info(pax_headers, tarfile_.encoding, tarfile_.errors)
            following.offset = self.offset
            if "size" in pax_headers:  # the next header starts after the size the record gives
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
        if length == 0 or stop > end or buf[stop - 1 : stop] != b"\n":
            raise tarfile.InvalidHeaderError("invalid header")
        equals = buf.find(b"=", space + 1, stop)
        if equals <= space + 1:
            raise tarfile.InvalidHeaderError("invalid header")
        records.append((buf[space + 1 : equals], buf[equals + 1 : stop - 1]))
        pos = stop
    return records


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
        # what a new entry gets without chown/chmod: those calls are skipped when they would change nothing
        self.creator = (os.geteuid(), os.getegid())
        self.umask = _umask()
        self.setgid: dict[str, bool] = {}  # directory -> whether new entries in it take its group
        self.pool: _FilePool | None = None  # writes small files in threads (a layer applied to an empty dir)
        # docker cp options (see apply_layer)
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
            if self.pool is not None:
                self.pool.wait_for(path)  # a file still being written where a directory is wanted
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
            self.setgid[path] = bool(st.st_mode & stat.S_ISGID)
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
            if self.pool is not None:
                self.pool.barrier()  # files being written below it
            shutil.rmtree(path)
            self.dirs.clear()
            self.setgid.clear()
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self.dirs.clear()
                self.setgid.clear()
        return False

    # -- members -------------------------------------------------------------

    def add(self, reader: TarReader, e: Entry) -> None:
        parts = _split(e.name)
        kind = e.type
        if not parts:
            if kind != DIR:
                raise InvalidParameter(f"invalid layer tar: non-directory entry {e.name!r} for the root")
            self.meta_dir(self.root, e)
            self.dir_times[self.root] = e.mtime_ns
            return
        *dir_parts, base = parts
        if base.startswith(WH_PREFIX):
            self.whiteout(dir_parts, base)
            return
        parent = self.resolve_dir(dir_parts, create=True)
        self.keep_time(parent)
        path = os.path.join(parent, base)
        pool = self.pool
        if pool is not None:
            pool.wait_for(path)  # the same name twice: the first one is on disk before it is replaced
        if self.no_overwrite_dir_non_dir:
            self.check_overwrite(path, e)
        if kind == REG:
            if pool is not None and e.sparse is None and e.size <= _POOL_FILE and path not in self.unpacked:
                pool.submit(path, e, list(reader.segments()), parent)
                self.written += e.size
            else:
                self.write_file(reader, e, parent, path)
        elif kind == DIR:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if not self.clear(path, keep_dir=True):
                    os.mkdir(path, 0o700)
            self.meta_dir(path, e)
            self.dir_times[path] = e.mtime_ns
        elif kind == SYM:
            self.clear(path, keep_dir=False)
            os.symlink(e.linkname, path)
            if self.ids(e) != self.creator or self.inherits_group(parent):
                os.chown(path, *self.ids(e), follow_symlinks=False)
            self.set_xattrs(path, e)
            os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        elif kind == LNK:
            self.link(e, path)
        elif kind in (CHR, BLK, FIFO):
            self.clear(path, keep_dir=False)
            if kind == FIFO:
                os.mkfifo(path, 0o600)
            else:
                node = stat.S_IFCHR if kind == CHR else stat.S_IFBLK
                try:
                    os.mknod(path, node | 0o600, os.makedev(e.devmajor, e.devminor))
                except PermissionError as exc:
                    raise System(f"cannot create device node {e.name!r} (needs CAP_MKNOD): {exc}") from exc
            if stat.S_ISLNK(os.lstat(path).st_mode):  # chmod follows links: never through one swapped in
                raise InvalidParameter(f"invalid layer tar: {e.name!r} was replaced by a symlink while applied")
            os.chown(path, *self.ids(e), follow_symlinks=False)
            os.chmod(path, e.mode & 0o7777, follow_symlinks=True)
            self.set_xattrs(path, e)
            os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        else:
            raise InvalidParameter(f"invalid layer tar: unsupported entry type {e.type!r} for {e.name!r}")
        self.unpacked.add(path)

    def whiteout(self, dir_parts: list[str], base: str) -> None:
        if base.startswith(WH_META_PREFIX) and base != WH_OPAQUE:
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        if self.pool is not None:
            self.pool.barrier()  # what it deletes may still be being written
        parent = self.resolve_dir(dir_parts, create=False)  # copied up if only the lower view has it
        if parent is None:
            return  # nothing below a missing parent to hide
        self.keep_time(parent)
        self.dirs.clear()
        self.setgid.clear()
        if base == WH_OPAQUE:
            self.handler.opaque(self.root, parent, self.unpacked)
            self.opaque.add(parent)
        else:
            name = base[len(WH_PREFIX) :]
            if name in ("", ".", ".."):
                raise InvalidParameter(f"invalid layer tar: bad whiteout {base!r}")
            self.handler.whiteout(self.root, os.path.join(parent, name))

    def link(self, e: Entry, path: str) -> None:
        target_parts = _split(e.linkname)
        if not target_parts:
            raise InvalidParameter(f"invalid layer tar: hard link {e.name!r} to the root")
        parent = self.resolve_dir(target_parts[:-1], create=False, copy_up=False)
        source = os.path.join(parent, target_parts[-1]) if parent else None
        if source is not None and self.pool is not None:
            self.pool.wait_for(source)
        try:
            st = os.lstat(source) if source else None
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISDIR(st.st_mode):
            raise InvalidParameter(
                f"invalid layer tar: hard link {e.name!r} -> {e.linkname!r}: no such file in the layer"
            )
        if source == path:
            return
        self.clear(path, keep_dir=False)
        os.link(source, path, follow_symlinks=False)

    def write_file(self, reader: TarReader, e: Entry, parent: str, path: str) -> None:
        """Create the file (``O_EXCL``, never through a symlink) and write its content.

        The file is created with its permission bits (less the umask), so ``fchmod`` is
        called only for what that cannot give (set-id and sticky bits, bits the umask
        takes), and ``fchown`` only when the owner would differ from the creator's."""
        mode = e.mode & 0o7777
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, mode & 0o777)
        except FileExistsError:
            self.clear(path, keep_dir=False)
            fd = os.open(path, flags, mode & 0o777)
        try:
            reader.write_to(fd, e)
            self.file_meta(fd, e, self.ids(e) != self.creator or self.inherits_group(parent))
        finally:
            os.close(fd)
        self.written += e.size

    def check_overwrite(self, path: str, e: Entry) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) and e.type != DIR:
            raise InvalidParameter(
                f"cannot overwrite directory {path[len(self.root) :] or '/'!r} with non-directory {e.name!r}"
            )
        if not stat.S_ISDIR(st.st_mode) and e.type == DIR:
            raise InvalidParameter(
                f"cannot overwrite non-directory {path[len(self.root) :]!r} with directory {e.name!r}"
            )

    def file_meta(self, fd: int, e: Entry, chown: bool) -> None:
        """Owner (if ``chown``), mode (if the creation left it short), xattrs, time of a new file."""
        mode = e.mode & 0o7777
        if chown:
            os.fchown(fd, *self.ids(e))
        if chown or mode != mode & 0o777 & ~self.umask:
            os.fchmod(fd, mode)
        if e.xattrs:
            self.set_xattrs(fd, e)
        os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))

    def ids(self, e: Entry) -> tuple[int, int]:
        """The owner an entry gets: the tar's, or the one ``docker cp`` asked for."""
        return self.owner if self.owner is not None else (e.uid, e.gid)

    def inherits_group(self, directory: str) -> bool:
        """Whether new entries in ``directory`` take its group (set-group-ID directory)."""
        known = self.setgid.get(directory)
        if known is None:
            known = self.setgid[directory] = bool(os.lstat(directory).st_mode & stat.S_ISGID)
        return known

    def meta_dir(self, path: str, e: Entry) -> None:
        """chown, chmod, xattrs of a directory, in that order (chown drops set-id bits), through
        a descriptor opened with ``O_NOFOLLOW`` (something swapped in meanwhile fails the open)."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, *self.ids(e))
            os.fchmod(fd, e.mode & 0o7777)
            self.set_xattrs(fd, e)
        finally:
            os.close(fd)
        self.setgid[path] = bool(e.mode & stat.S_ISGID)

    def set_xattrs(self, target: str | int, e: Entry) -> None:
        for name, value in e.xattrs:
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise System(f"setting xattr {name!r} on {e.name!r}: {exc}") from exc
                log.warning("xattr %s on %s not supported here; skipped", name, e.name)

    def finish(self) -> None:
        if self.pool is not None:
            self.pool.barrier()
        for path, ns in self.dir_times.items():
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    os.utime(path, ns=(ns, ns), follow_symlinks=False)
            except FileNotFoundError:
                pass


#: files up to this size go to the pool (larger ones are written by the parser's thread as they are read)
_POOL_FILE = 1 << 20
#: content the pool may hold (views into the chunks read), and files pending, at most
_POOL_BYTES = 32 << 20
_POOL_JOBS = 1024
_POOL_THREADS = 3


class _FilePool:
    """Threads that create and write the small files of a layer while the parser goes on.

    File creation is kernel work (an inode, a directory entry, a journal record) that
    Go's single-threaded untar pays in line; here it runs in :data:`_POOL_THREADS`
    threads beside the parser, with the GIL released.  Only used on an empty
    directory, where a new file cannot meet an old one: the applier waits for a
    pending file before anything else touches its path (:meth:`wait_for`: the same
    name again, a directory of that name, a hard link to it) and for all of them
    before a whiteout, a directory removal and the final directory times
    (:meth:`barrier`).  A file that finds its name taken after all (``EEXIST``) is
    written again by the applier, the slow and careful way, when it is waited for.
    """

    def __init__(self, applier: _Applier) -> None:
        self.applier = applier
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)  # signalled only while the applier waits
        self.waiting = False
        self.inflight: dict[str, tuple] = {}  # path -> job, until written (or taken back)
        self.taken: list[tuple] = []  # jobs that met an existing name
        self.queued_bytes = 0
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._work, name="apply", daemon=True) for _ in range(_POOL_THREADS)]
        for thread in self.threads:
            thread.start()

    def submit(self, path: str, e: Entry, views: list, parent: str) -> None:
        chown = self.applier.ids(e) != self.applier.creator or self.applier.inherits_group(parent)
        job = (path, e, views, chown)
        with self.lock:
            while (self.queued_bytes > _POOL_BYTES or len(self.inflight) >= _POOL_JOBS) and self.error is None:
                self._wait()
            self._raise()
            self.inflight[path] = job
            self.queued_bytes += e.size
        self.jobs.put(job)
        self.applier.unpacked.add(path)

    def _wait(self) -> None:
        self.waiting = True
        try:
            self.done.wait()
        finally:
            self.waiting = False

    def _work(self) -> None:
        applier = self.applier
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        while (job := self.jobs.get()) is not None:
            path, e, views, chown = job
            taken = False
            error = None
            try:
                try:
                    fd = os.open(path, flags, e.mode & 0o777)
                except FileExistsError:
                    taken = True
                else:
                    try:
                        if tarstream.write_views(fd, views) < e.size:
                            os.ftruncate(fd, e.size)
                        applier.file_meta(fd, e, chown)
                    finally:
                        os.close(fd)
            except BaseException as exc:  # noqa: BLE001 - raised in the applier's thread
                error = exc
            with self.lock:
                self.queued_bytes -= e.size
                if error is not None and self.error is None:
                    self.error = error
                if taken:
                    self.taken.append(job)
                else:
                    del self.inflight[path]
                if self.waiting:
                    self.done.notify()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _settle(self) -> None:
        """Write the files that met an existing name (in the applier's thread, replacing it)."""
        while True:
            with self.lock:
                if not self.taken:
                    return
                path, e, views, chown = self.taken.pop(0)
            self.applier.clear(path, keep_dir=False)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, e.mode & 0o777)
            try:
                if tarstream.write_views(fd, views) < e.size:
                    os.ftruncate(fd, e.size)
                self.applier.file_meta(fd, e, chown)
            finally:
                os.close(fd)
            with self.lock:
                del self.inflight[path]

    def wait_for(self, path: str) -> None:
        """Return once no file is pending at ``path``."""
        if path not in self.inflight:
            return
        with self.lock:
            while path in self.inflight and not any(job[0] == path for job in self.taken) and self.error is None:
                self._wait()
            self._raise()
        self._settle()

    def barrier(self) -> None:
        """Return once every submitted file is written."""
        with self.lock:
            while len(self.inflight) > len(self.taken) and self.error is None:
                self._wait()
            self._raise()
        self._settle()

    def close(self) -> None:
        """Stop the threads once the queue is empty (after an error: files not written yet are left)."""
        with self.lock:
            if self.error is not None or len(self.inflight) > len(self.taken):
                while True:  # drop what is still queued
                    try:
                        self.jobs.get_nowait()
                    except queue.Empty:
                        break
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()


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


def differs(
    old_path: str, a: os.stat_result, new_path: str, b: os.stat_result, keep_xattr: Callable[[str], bool] | None = None
) -> bool:
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


def export_changes(
    layer_dir: Path | str,
    found: Iterable[Change],
    on_close: Callable[[], None] | None = None,
    whiteout: WhiteoutHandler = PLAIN,
) -> BinaryIO:
    """A layer tar of ``found`` (from :func:`changes`) with content from ``layer_dir``.

    Deletions become ``.wh.<name>`` entries.  ``whiteout`` says which xattrs
    belong in the tar (:meth:`WhiteoutHandler.keep_xattr`), so a driver can
    read content straight from a layer directory that carries its own
    bookkeeping xattrs.  The tar is produced lazily as the returned stream is
    read; ``on_close`` runs once when it is closed.
    """
    root = os.fspath(layer_dir)
    ordered = sorted(found, key=lambda c: c.path.split("/"))

    def chunks() -> Iterator[bytes | _Span]:
        w = _TarWriter(whiteout)
        for change in ordered:
            name = change.path.strip("/")
            if not name:
                continue
            if change.kind == DELETED:
                yield w.whiteout(name)
                continue
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise System(f"exporting {name!r}: it vanished from {root}") from None
            yield from w.entry(path, name, st)
        yield w.close()

    return cast(BinaryIO, TarStream(chunks(), on_close))  # a binary file, as storage_diff promises


def export_diff(
    layer_dir: Path | str, parent_dir: Path | str | None, on_close: Callable[[], None] | None = None
) -> BinaryIO:
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


def export_tree(
    directory: Path | str, whiteout: WhiteoutHandler = PLAIN, on_close: Callable[[], None] | None = None
) -> BinaryIO:
    """A tar of everything below ``directory`` (``docker export``, or a layer's
    own diff when ``whiteout`` recognises its markers).  Lazy, like
    :func:`export_changes`; the root itself has no entry.
    """
    root = os.fspath(directory)

    def walk(path: str, prefix: str, w: _TarWriter) -> Iterator[bytes | _Span]:
        entries = _scan(path)
        for name in sorted(entries):
            st = entries[name]
            child, rel = os.path.join(path, name), prefix + name
            mark = whiteout.marker(child, st)
            if mark is Marker.SKIP:
                continue
            if mark is Marker.WHITEOUT:
                yield w.whiteout(rel)
                continue
            yield from w.entry(child, rel, st)
            if mark is Marker.OPAQUE:
                yield w.opaque(rel)
            if stat.S_ISDIR(st.st_mode):
                yield from walk(child, rel + "/", w)

    def chunks() -> Iterator[bytes | _Span]:
        w = _TarWriter(whiteout)
        yield from walk(root, "", w)
        yield w.close()

    return cast(BinaryIO, TarStream(chunks(), on_close))  # a binary file, as storage_diff promises


class _Span(NamedTuple):
    """Content to copy from an open file: ``length`` bytes of ``fd`` from ``offset``."""

    fd: int
    offset: int
    length: int


class _TarWriter:
    """Builds normalised PAX members, byte for byte as ``tarfile``'s PAX format writes them;
    content is handed out as :class:`_Span` (copied by the consumer, with ``sendfile`` where it can)."""

    def __init__(self, handler: WhiteoutHandler) -> None:
        self.handler = handler
        self.links: dict[tuple[int, int], str] = {}
        self.size = 0  # bytes handed out so far

    def header(
        self,
        name: str,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        mtime: int,
        kind: bytes,
        linkname: str = "",
        dev: tuple[int, int] = (0, 0),
        records: list[tuple[str, str]] | None = None,
    ) -> bytes:
        """A member's header: pax records first for what ustar cannot hold (tarfile's rules:
        non-ASCII or long names and link names, numbers out of range), then the ustar block."""
        records = list(records or ())
        given = {key for key, _ in records}
        if kind == b"5" and not name.endswith("/"):
            name += "/"
        for value, key in ((name, "path"), (linkname, "linkpath")):
            if key not in given and (not value.isascii() or len(value) > 100):
                records.append((key, value))
        numbers = {"uid": uid, "gid": gid, "size": size, "mtime": mtime}
        for key, limit in (("uid", 8**7), ("gid", 8**7), ("size", 8**11), ("mtime", 8**11)):
            if not 0 <= numbers[key] < limit:
                if key not in given:
                    records.append((key, str(numbers[key])))
                numbers[key] = 0
        block = tarstream.ustar_header(
            name.encode("ascii", "replace"),
            mode,
            numbers["uid"],
            numbers["gid"],
            numbers["size"],
            numbers["mtime"],
            kind,
            linkname.encode("ascii", "replace"),
            dev[0],
            dev[1],
        )
        out = tarstream.pax_header(records) + block if records else block
        self.size += len(out)
        return out

    def whiteout(self, name: str) -> bytes:
        head, _, base = name.rpartition("/")
        return self.header(f"{head}/{WH_PREFIX}{base}" if head else WH_PREFIX + base, 0, 0, 0, 0, 0, b"0")

    def opaque(self, directory: str) -> bytes:
        return self.header(f"{directory}/{WH_OPAQUE}", 0, 0, 0, 0, 0, b"0")

    def entry(self, path: str, name: str, st: os.stat_result) -> Iterator[bytes | _Span]:
        mode = st.st_mode
        perms, mtime = stat.S_IMODE(mode), st.st_mtime_ns // 1_000_000_000
        records = [
            (XATTR_PAX + key, value.decode("utf-8", "surrogateescape"))
            for key, value in _xattrs(path, self.handler.keep_xattr).items()
        ]
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                yield self.header(name, perms, st.st_uid, st.st_gid, 0, mtime, b"1", first, records=records)
                return
        if stat.S_ISREG(mode):
            yield from self._file(path, name, perms, st, mtime, records)
            return
        if stat.S_ISDIR(mode):
            yield self.header(name, perms, st.st_uid, st.st_gid, 0, mtime, b"5", records=records)
        elif stat.S_ISLNK(mode):
            yield self.header(name, perms, st.st_uid, st.st_gid, 0, mtime, b"2", os.readlink(path), records=records)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            yield self.header(
                name,
                perms,
                st.st_uid,
                st.st_gid,
                0,
                mtime,
                b"3" if stat.S_ISCHR(mode) else b"4",
                dev=(os.major(st.st_rdev), os.minor(st.st_rdev)),
                records=records,
            )
        elif stat.S_ISFIFO(mode):
            yield self.header(name, perms, st.st_uid, st.st_gid, 0, mtime, b"6", records=records)
        # sockets have no tar form; Docker skips them too

    def _file(
        self, path: str, name: str, perms: int, st: os.stat_result, mtime: int, records: list[tuple[str, str]]
    ) -> Iterator[bytes | _Span]:
        size = st.st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            runs = _data_runs(fd, size) if size >= SPARSE_MIN_HOLE else None
            if runs is not None and size - sum(n for _, n in runs) < SPARSE_MIN_HOLE:
                runs = None
            if runs is None:
                yield self.header(name, perms, st.st_uid, st.st_gid, size, mtime, b"0", records=records)
                yield from self._data(fd, [(0, size)])
                return
            if not runs or runs[-1][0] + runs[-1][1] < size:
                runs.append((size, 0))  # GNU marks a trailing hole this way
            sparse_map = f"{len(runs)}\n" + "".join(f"{o}\n{n}\n" for o, n in runs)
            map_bytes = sparse_map.encode() + bytes(-len(sparse_map) % tarstream.BLOCK)
            head, _, base = name.rpartition("/")
            stored = f"{head}/GNUSparseFile.0/{base}" if head else f"GNUSparseFile.0/{base}"
            # path first so GNU.sparse.name wins for readers that apply records in order
            sparse = [
                ("path", stored),
                ("GNU.sparse.major", "1"),
                ("GNU.sparse.minor", "0"),
                ("GNU.sparse.name", name),
                ("GNU.sparse.realsize", str(size)),
            ]
            yield self.header(
                stored,
                perms,
                st.st_uid,
                st.st_gid,
                len(map_bytes) + sum(n for _, n in runs),
                mtime,
                b"0",
                records=sparse + records,
            )
            self.size += len(map_bytes)
            yield map_bytes
            yield from self._data(fd, runs)
        finally:
            os.close(fd)

    def _data(self, fd: int, runs: list[tuple[int, int]]) -> Iterator[bytes | _Span]:
        total = 0
        for offset, length in runs:
            if length:
                yield _Span(fd, offset, length)
                total += length
        pad = -total % tarstream.BLOCK
        self.size += total + pad
        if pad:
            yield bytes(pad)

    def close(self) -> bytes:
        end = bytes(2 * tarstream.BLOCK)
        return end + bytes(-(self.size + len(end)) % tarstream.RECORD)  # tarfile pads the same way


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
                    block = chunk[i : i + SPARSE_BLOCK]
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


class TarStream(io.RawIOBase):
    """A tar produced as it is read (what the ``export_*`` functions return).

    Read it as a file, or hand it to :meth:`write_to`, which writes the rest of the tar
    into a file descriptor with ``sendfile`` for file content (no copy through Python).
    ``on_close`` runs once when it is closed.
    """

    def __init__(self, items: Iterator[bytes | _Span], on_close: Callable[[], None] | None) -> None:
        self._items = items
        self._view = memoryview(b"")
        self._span: _Span | None = None
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes | _Span | None:
        try:
            return next(self._items)
        except StopIteration:
            return None
        except DockyardError:
            raise
        except OSError as exc:
            raise System(f"writing layer tar: {exc}") from exc

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        """Up to ``size`` bytes (a header, a piece of a file), without the zeroed buffer of ``size``
        bytes that ``RawIOBase.read`` allocates for every call."""
        if size is None or size < 0:
            return self.readall()
        while True:
            if self._view:
                data = bytes(self._view[:size])
                self._view = self._view[len(data) :]
                return data
            if self._span is not None:
                fd, offset, length = self._span
                want = min(size, length)
                data = os.pread(fd, want, offset) or bytes(want)  # a file that shrank: zeros stand in
                self._span = _Span(fd, offset + len(data), length - len(data)) if len(data) < length else None
                return data
            item = self._next()
            if item is None:
                return b""
            if isinstance(item, _Span):
                self._span = item
            elif len(item) <= size:
                return item
            else:
                self._view = memoryview(item)

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self.read(CHUNK), b""))

    def readinto(self, b) -> int:  # type: ignore[override]
        while not self._view:
            if self._span is not None:  # file content: read straight into the caller's buffer
                fd, offset, length = self._span
                want = min(len(b), length)
                n = os.preadv(fd, [memoryview(b)[:want]], offset)
                if n == 0:  # the file shrank while it was read: zeros stand in for the rest
                    n = want
                    b[:n] = bytes(n)
                self._span = _Span(fd, offset + n, length - n) if n < length else None
                return n
            item = self._next()
            if item is None:
                return 0
            if isinstance(item, _Span):
                self._span = item
            else:
                self._view = memoryview(item)
        n = min(len(b), len(self._view))
        b[:n] = self._view[:n]
        self._view = self._view[n:]
        return n

    def write_to(self, out: int) -> int:
        """Write the rest of the tar into file descriptor ``out`` (blocking); returns the bytes written.
        Headers go out in batches of up to 64 KiB, file content with ``sendfile``."""
        first: list[bytes | _Span] = []
        if self._view:
            first.append(bytes(self._view))
            self._view = memoryview(b"")
        if self._span is not None:
            first.append(self._span)
            self._span = None
        written = 0
        batch: list[bytes] = []
        batched = 0
        try:
            for item in itertools.chain(first, iter(self._next, None)):
                if isinstance(item, _Span):
                    if batch:
                        _write_all(out, b"".join(batch))
                        batch, batched = [], 0
                    _send(out, item)
                    written += item.length
                    continue
                batch.append(item)
                batched += len(item)
                written += len(item)
                if batched >= 1 << 16:
                    _write_all(out, b"".join(batch))
                    batch, batched = [], 0
            if batch:
                _write_all(out, b"".join(batch))
        except OSError as exc:
            raise System(f"writing layer tar: {exc}") from exc
        return written

    def close(self) -> None:
        if not self.closed:
            try:
                self._items.close()  # type: ignore[attr-defined]
            finally:
                callback, self._on_close = self._on_close, None
                super().close()
                if callback is not None:
                    callback()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(out: int, span: _Span) -> None:
    """``sendfile`` a span; what a file that shrank meanwhile no longer has is sent as zeros."""
    fd, offset, length = span
    while length > 0:
        try:
            n = os.sendfile(out, fd, offset, min(length, 1 << 30))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            data = os.pread(fd, min(length, CHUNK), offset)  # out cannot take sendfile: copy
            n = len(data)
            if n:
                _write_all(out, data)
        if n == 0:
            _write_all(out, bytes(length))
            return
        offset += n
        length -= n
