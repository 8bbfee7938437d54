"""Branch directories: whiteout markers, the merged view of a branch stack, native changes.

A layer is a branch directory holding only what it changes; a stack of them,
top first, is what a union mount shows.  Deletions are markers, whose form
depends on the backend::

    kernel aufs     <branch>/<dir>/.wh.<name>                   <dir>/<name> is deleted
                    <branch>/<dir>/.wh..wh..opq                 <dir> hides lower content
    unionfs-fuse    <branch>/.unionfs-fuse/<dir>/<name>_HIDDEN~ (file or directory)
                                                                <dir>/<name> is deleted, or, with
                                                                a directory <dir>/<name> in the
                                                                same branch, that directory is opaque

In both, an entry in a branch beats that branch's own marker, and a marker
hides only lower branches (the OCI rule).  :class:`View` answers lookups in a
stack of read-only branches the way the union would, without mounting it;
:func:`branch_changes` lists what one branch changes relative to such a view
exactly as :func:`dockyard.archive.changes` would list it for the two mounted
trees, at the cost of the branch, not of the image.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from typing import AbstractSet

from dockyard import archive
from dockyard.errors import InvalidParameter
from dockyard.models.runtime import Change


MODIFIED, ADDED, DELETED = 0, 1, 2
UNIONFS_META = ".unionfs-fuse"
UNIONFS_SUFFIX = "_HIDDEN~"
WH = ".wh."
WH_OPAQUE = ".wh..wh..opq"


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove_all(path: str) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---------------------------------------------------------------------------
# marker conventions
# ---------------------------------------------------------------------------


class Markers:
    """How one backend keeps deletions in a branch.  ``rel`` paths have no leading slash."""

    name = ""

    def is_meta(self, rel_dir: str, name: str) -> bool:
        """Whether ``rel_dir/name`` is bookkeeping, not content."""
        raise NotImplementedError

    def marked(self, branch: str, rel_dir: str) -> set[str]:
        """Names in ``rel_dir`` this branch hides from lower branches."""
        raise NotImplementedError

    def marker_dirs(self, branch: str, rel_dir: str) -> set[str]:
        """Subdirectories of ``rel_dir`` holding markers (they may be absent from the branch)."""
        return set()

    def opaque(self, branch: str, rel: str) -> bool:
        """Whether directory ``rel`` in ``branch`` hides everything lower branches have below it."""
        raise NotImplementedError

    def handler(self, staging: str, lower: View) -> archive.WhiteoutHandler:
        """The apply-side translation of ``.wh.`` entries for a new branch on top of ``lower``."""
        raise NotImplementedError

    def finish_apply(self, branch: str, staging: str) -> None:
        """Called after a successful apply with the handler's staging directory."""


class UnionfsMarkers(Markers):
    """unionfs-fuse 1.0: markers in a separate ``.unionfs-fuse`` tree at the branch root."""

    name = "unionfs-fuse"

    def is_meta(self, rel_dir: str, name: str) -> bool:
        return not rel_dir and name == UNIONFS_META

    def _meta(self, branch: str, rel_dir: str) -> str:
        return os.path.join(branch, UNIONFS_META, rel_dir)

    def marked(self, branch: str, rel_dir: str) -> set[str]:
        return {
            n[: -len(UNIONFS_SUFFIX)]
            for n in _listdir(self._meta(branch, rel_dir))
            if n.endswith(UNIONFS_SUFFIX) and len(n) > len(UNIONFS_SUFFIX)
        }

    def marker_dirs(self, branch: str, rel_dir: str) -> set[str]:
        meta = self._meta(branch, rel_dir)
        return {n for n in _listdir(meta) if not n.endswith(UNIONFS_SUFFIX) and os.path.isdir(os.path.join(meta, n))}

    def opaque(self, branch: str, rel: str) -> bool:
        if not rel:
            return False  # unionfs-fuse cannot hide below the root; apply expands it
        return os.path.lexists(os.path.join(branch, UNIONFS_META, rel + UNIONFS_SUFFIX)) and os.path.isdir(
            os.path.join(branch, rel)
        )

    def handler(self, staging: str, lower: View) -> archive.WhiteoutHandler:
        return UnionfsWhiteouts(staging, lower)

    def finish_apply(self, branch: str, staging: str) -> None:
        if os.path.lexists(os.path.join(branch, UNIONFS_META)):
            raise InvalidParameter(
                f"invalid layer tar: it contains /{UNIONFS_META}, which the aufs driver "
                "reserves for unionfs-fuse whiteouts"
            )
        if os.listdir(staging):
            os.rename(staging, os.path.join(branch, UNIONFS_META))
        else:
            os.rmdir(staging)


class AufsMarkers(Markers):
    """Kernel aufs: ``.wh.`` files next to what they hide, exactly as in a layer tar."""

    name = "aufs"

    def is_meta(self, rel_dir: str, name: str) -> bool:
        return name.startswith(WH)  # whiteouts, .wh..wh.opq, .wh..wh.plnk, .wh..wh.orph, .wh..wh.aufs

    def marked(self, branch: str, rel_dir: str) -> set[str]:
        return {
            n[len(WH) :]
            for n in _listdir(os.path.join(branch, rel_dir))
            if n.startswith(WH) and not n.startswith(WH + WH)
        }

    def opaque(self, branch: str, rel: str) -> bool:
        return os.path.lexists(os.path.join(branch, rel, WH_OPAQUE))

    def handler(self, staging: str, lower: View) -> archive.WhiteoutHandler:
        return AufsWhiteouts(lower)

    def finish_apply(self, branch: str, staging: str) -> None:
        os.rmdir(staging)


# ---------------------------------------------------------------------------
# apply side
# ---------------------------------------------------------------------------


class _BranchWhiteouts(archive.WhiteoutHandler):
    """A new branch on top of ``view``: the applier copies directories up from the
    lower branches themselves (:meth:`View.lookup`), so xattrs are read where
    they are kept, and nothing is mounted."""

    def __init__(self, view: View) -> None:
        self.view = view

    def lower_entry(self, rel: str) -> tuple[str, os.stat_result] | None:
        return self.view.lookup(rel)


class UnionfsWhiteouts(_BranchWhiteouts):
    """``.wh.<name>`` -> ``.unionfs-fuse/<dir>/<name>_HIDDEN~`` (empty file, 0600);
    ``<dir>/.wh..wh..opq`` -> ``.unionfs-fuse/<parent>/<dir>_HIDDEN~`` (directory, 0700).

    Markers are written to ``staging``, a directory outside the branch, and moved
    into place when the apply has finished (:meth:`UnionfsMarkers.finish_apply`):
    a hostile tar cannot aim them through a symlink named ``.unionfs-fuse``, and a
    tar that brings its own ``.unionfs-fuse`` is refused.  An opaque root cannot
    be expressed, so it becomes one marker per name the lower branches show there.
    """

    def __init__(self, staging: str, lower: View) -> None:
        super().__init__(lower)
        self.staging = staging

    def _mark(self, rel: str, directory: bool = False) -> None:
        path = os.path.join(self.staging, rel + UNIONFS_SUFFIX)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if os.path.lexists(path):
            return  # either type hides; unionfs-fuse only lstat()s markers
        if directory:
            os.mkdir(path, 0o700)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))

    @staticmethod
    def _rel(root: str, path: str) -> str:
        rel = os.path.relpath(path, root)
        if rel == os.curdir:
            return ""
        if rel.startswith(os.pardir):  # the applier resolves inside root; never expected
            raise InvalidParameter(f"invalid layer tar: whiteout {path!r} outside the layer")
        return rel

    def whiteout(self, root: str, path: str) -> None:
        remove_all(path)
        self._mark(self._rel(root, path))

    def opaque(self, root: str, directory: str, unpacked: AbstractSet[str]) -> None:
        rel = self._rel(root, directory)
        if rel:
            self._mark(rel, directory=True)
            return
        for name in self.view.listdir(""):
            self._mark(name)


class AufsWhiteouts(_BranchWhiteouts):
    """Kernel aufs keeps whiteouts as the tar has them: empty ``.wh.`` files."""

    @staticmethod
    def _touch(path: str) -> None:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444))

    def whiteout(self, root: str, path: str) -> None:
        remove_all(path)
        head, base = os.path.split(path)
        self._touch(os.path.join(head, WH + base))

    def opaque(self, root: str, directory: str, unpacked: AbstractSet[str]) -> None:
        self._touch(os.path.join(directory, WH_OPAQUE))


# ---------------------------------------------------------------------------
# the union of read-only branches, without a mount
# ---------------------------------------------------------------------------


class View:
    """Lookups in a stack of read-only branches (top first), as the union shows them.

    Caches directory listings, so build one per operation: branches below a
    layer never change, but a view is cheap and must not outlive a removal.
    """

    def __init__(self, branches: list[str], markers: Markers) -> None:
        self.branches = branches
        self.markers = markers
        self._names: dict[tuple[str, str], set[str]] = {}
        self._marked: dict[tuple[str, str], set[str]] = {}
        self._contrib: dict[str, list[str] | None] = {}

    def _names_in(self, branch: str, rel_dir: str) -> set[str]:
        key = (branch, rel_dir)
        names = self._names.get(key)
        if names is None:
            names = {n for n in _listdir(os.path.join(branch, rel_dir)) if not self.markers.is_meta(rel_dir, n)}
            self._names[key] = names
        return names

    def _marked_in(self, branch: str, rel_dir: str) -> set[str]:
        key = (branch, rel_dir)
        marked = self._marked.get(key)
        if marked is None:
            marked = self._marked[key] = self.markers.marked(branch, rel_dir)
        return marked

    def contributors(self, rel: str) -> list[str] | None:
        """Branches whose directory ``rel`` the union merges, top first; None if ``rel``
        is not a directory in the union."""
        if rel in self._contrib:
            return self._contrib[rel]
        if not rel:
            result: list[str] | None = []
            for branch in self.branches:
                result.append(branch)
                if self.markers.opaque(branch, ""):
                    break
        else:
            parent, _, name = rel.rpartition("/")
            result = None
            above = self.contributors(parent)
            for branch in above or ():
                st = _lstat(os.path.join(branch, rel)) if name in self._names_in(branch, parent) else None
                if st is not None:
                    if result is None:
                        if not stat.S_ISDIR(st.st_mode):
                            break  # the topmost entry is not a directory
                        result = []
                    if stat.S_ISDIR(st.st_mode):
                        result.append(branch)
                        if self.markers.opaque(branch, rel):
                            break
                if name in self._marked_in(branch, parent):
                    break
        self._contrib[rel] = result
        return result

    def lookup(self, rel: str) -> tuple[str, os.stat_result] | None:
        """``(real path, lstat)`` of what the union shows at ``rel``, or None."""
        if not rel:
            return None
        parent, _, name = rel.rpartition("/")
        for branch in self.contributors(parent) or ():
            if name in self._names_in(branch, parent):
                path = os.path.join(branch, rel)
                st = _lstat(path)
                if st is not None:
                    return path, st
            if name in self._marked_in(branch, parent):
                return None
        return None

    def listdir(self, rel: str) -> list[str]:
        """Names the union shows in directory ``rel``."""
        names: set[str] = set()
        for branch in self.contributors(rel) or ():
            names |= self._names_in(branch, rel)
        return sorted(n for n in names if self.lookup(_join(rel, n)) is not None)


# ---------------------------------------------------------------------------
# changes of one branch
# ---------------------------------------------------------------------------


def branch_changes(branch: str, lower: View, markers: Markers) -> list[Change]:
    """What ``branch`` on top of ``lower`` adds, changes and deletes: the same list
    :func:`dockyard.archive.changes` gives for the merged trees, found by walking
    only the branch (and its markers) and looking names up in ``lower``."""
    out: list[tuple[str, int]] = []
    _walk(branch, "", lower, markers, markers.opaque(branch, ""), out)
    out.sort(key=lambda c: c[0].split("/"))
    return [Change(path=p, kind=k) for p, k in out]


def _scan(branch: str, rel: str, markers: Markers) -> dict[str, os.stat_result]:
    try:
        with os.scandir(os.path.join(branch, rel)) as it:
            return {e.name: e.stat(follow_symlinks=False) for e in it if not markers.is_meta(rel, e.name)}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _all_added(branch: str, rel: str, markers: Markers, out: list[tuple[str, int]]) -> None:
    for name, st in _scan(branch, rel, markers).items():
        child = _join(rel, name)
        out.append(("/" + child, ADDED))
        if stat.S_ISDIR(st.st_mode):
            _all_added(branch, child, markers, out)


def _walk(branch: str, rel: str, lower: View, markers: Markers, opaque: bool, out: list[tuple[str, int]]) -> None:
    """Directory ``rel`` of the union; ``opaque``: lower content below it is hidden."""
    entries = _scan(branch, rel, markers)
    marked: Iterable[str] = () if opaque else markers.marked(branch, rel)
    marker_dirs: Iterable[str] = () if opaque else markers.marker_dirs(branch, rel)
    for name in sorted(set(entries) | set(marked) | set(marker_dirs)):
        child = _join(rel, name)
        st = entries.get(name)
        if st is not None:
            found = lower.lookup(child)
            if found is None:
                out.append(("/" + child, ADDED))
                if stat.S_ISDIR(st.st_mode):
                    _all_added(branch, child, markers, out)
                continue
            lower_path, lower_st = found
            start = len(out)
            changed = archive.differs(lower_path, lower_st, os.path.join(branch, child), st)
            if changed:
                out.append(("/" + child, MODIFIED))
            if stat.S_ISDIR(st.st_mode):
                if stat.S_ISDIR(lower_st.st_mode):
                    _walk(branch, child, lower, markers, opaque or markers.opaque(branch, child), out)
                else:
                    _all_added(branch, child, markers, out)
                if len(out) > start and not changed:
                    out.insert(start, ("/" + child, MODIFIED))
        elif name in marked:
            if lower.lookup(child) is not None:
                out.append(("/" + child, DELETED))
        else:  # deletions below a directory that was never copied up
            found = lower.lookup(child)
            if found is not None and stat.S_ISDIR(found[1].st_mode):
                start = len(out)
                _walk(branch, child, lower, markers, False, out)
                if len(out) > start:
                    out.insert(start, ("/" + child, MODIFIED))
    if opaque:
        for name in lower.listdir(rel):
            if name not in entries:
                out.append(("/" + _join(rel, name), DELETED))


# ---------------------------------------------------------------------------
# directory skeleton (unionfs-fuse)
# ---------------------------------------------------------------------------


def make_skeleton(branch: str, lower: View, markers: Markers) -> int:
    """Give ``branch`` every directory the union shows from ``lower``; returns how many were made.

    unionfs-fuse 1.0 copies a lower directory up *recursively* the first time
    its metadata changes (chmod, chown, utime): the copy ignores the markers,
    so files deleted below it come back, and all its content is copied.  With
    each directory already in the branch, those calls change it in place.
    Copies mode, owner and xattrs, and keeps every directory's mtime.  Idempotent:
    directories this branch deleted (marked) or replaced stay as they are.
    """
    made: list[tuple[str, int, int]] = []
    touched: dict[str, tuple[int, int]] = {}

    def walk(rel: str) -> None:
        branch_dir = os.path.join(branch, rel)
        marked: set[str] | None = None
        for name in lower.listdir(rel):
            found = lower.lookup(_join(rel, name))
            if found is None or not stat.S_ISDIR(found[1].st_mode):
                continue
            child = _join(rel, name)
            target = os.path.join(branch, child)
            st = _lstat(target)
            if st is None:
                if marked is None:
                    marked = markers.marked(branch, rel)
                if name in marked:
                    continue  # deleted in this layer
                if branch_dir not in touched:
                    before = os.lstat(branch_dir)
                    touched[branch_dir] = (before.st_atime_ns, before.st_mtime_ns)
                lower_path, lower_st = found
                os.mkdir(target, 0o700)
                os.chown(target, lower_st.st_uid, lower_st.st_gid)  # always: a setgid parent sets the group
                os.chmod(target, stat.S_IMODE(lower_st.st_mode))
                for key in _xattr_names(lower_path):
                    os.setxattr(target, key, os.getxattr(lower_path, key, follow_symlinks=False))
                made.append((target, lower_st.st_atime_ns, lower_st.st_mtime_ns))
                walk(child)
            elif stat.S_ISDIR(st.st_mode) and not markers.opaque(branch, child):
                walk(child)

    walk("")
    for target, atime, mtime in reversed(made):
        os.utime(target, ns=(atime, mtime))
    for path, times in touched.items():
        if path not in {m[0] for m in made}:
            os.utime(path, ns=times)
    return len(made)


def _xattr_names(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
