"""Garbage collection while the registry serves: ``dockyard registry gc``.

What goes
    a blob that no manifest of any repository references (and no tag, with
    ``--delete-untagged``) and that is older than the grace period; the
    repository links to it; with ``--delete-untagged``, manifest revisions
    older than the grace period that no tag reaches (directly or through an
    index); upload sessions idle for longer than the grace period, and writes
    that never committed.

The protocol (no lock service: only atomic object writes)
    A request that *relies on* content already in storage (a manifest PUT
    checking the blobs it references, a blob HEAD or cross-repository mount
    during a push, an upload or manifest PUT whose content is already stored)
    goes through :class:`Fence`:

    1. it reads ``_dockyard/gc/state``; no state: no collection is running, and
       the request must make its dependent write within ``window / 2`` of that
       read (past that it goes through the fence again);
    2. with a state: content the state lists as doomed is treated as absent (a
       referenced blob is ``MANIFEST_BLOB_UNKNOWN``, a HEAD is 404) and content
       the request is about to write itself waits until the collection is done
       with it; for the rest it first writes a use record
       (``_dockyard/gc/uses/…``, listing the digests) and then reads the state
       again, treating what is doomed now the same way.

    The collector (:func:`collect`):

    1. creates the state (only one collection at a time) and reads its
       modification time: ``T0``, on the storage's own clock; waits ``window``,
       so that every request that saw no state has made its write;
    2. marks: every manifest revision (or, with ``--delete-untagged``, every
       tag, the indexes' children, and revisions younger than the grace period),
       and every blob they reference; candidates are the unmarked blobs
       modified before ``T0 - grace`` (a blob uploaded during the collection
       is newer, so it is never a candidate);
    3. writes the candidates into the state (``doomed``) and waits ``window``
       again, then marks a second time and reads every use record: a
       candidate marked now, or named in a use record, is spared;
    4. deletes the rest, the links to them, old sessions and incomplete
       writes, then the use records and the state.

    Why nothing in use is deleted: a request that saw no state wrote before
    the first mark (step 1's wait).  A request that saw the state wrote its
    use record before reading the state again: if that read came before the
    doom list was written, the record predates step 3's read and spares the
    content; if it came after, the request saw the doom list and did not rely
    on the content.  A manifest PUT slower than the grace period after its
    blob HEADs may find a blob gone and is refused (``MANIFEST_BLOB_UNKNOWN``),
    never stored broken.  Clocks of replicas do not matter: ages are compared
    on the storage's clock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid as uuidlib
from dataclasses import dataclass, field

from dockyard.oci import DIGEST_RE, IMAGE_MANIFESTS, INDEXES, manifest_media_type
from .errors import RegistryError
from .layout import BASE, GC_STATE, GC_USES, blob_key, layer_link, revision_link
from .storage import StorageBackend
from .uploads import UploadSessions

log = logging.getLogger("dockyard.registry.gc")

DEFAULT_WINDOW = 30.0
DEFAULT_GRACE = 3600.0
#: how long a writer waits for a running collection to be done with content it is about to store
WAIT_FOR_COLLECTION = 600.0


class CollectionRunning(Exception):
    """Another ``registry gc`` holds the state object."""


# -- the serving side ----------------------------------------------------------------------------------


def _doomed(state: dict) -> set[str]:
    return set(state.get("doomed", [])) | set(state.get("doomed_revisions", []))


class Guard:
    """One request's reliance on stored content (see the module docstring)."""

    def __init__(self, fence: "Fence", blobs: list[str], revisions: list[str]) -> None:
        self.fence = fence
        self.blobs = sorted(set(blobs))
        self.revisions = sorted(set(revisions))  # "name@digest"
        self.doomed: set[str] = set()
        self.checked = 0.0
        self.check()

    def check(self) -> None:
        mine = set(self.blobs) | set(self.revisions)
        state = self.fence.state()
        doomed: set[str] = set()
        if state is not None:
            # what is doomed already is not relied on, so it needs no record (a record would spare it)
            doomed = _doomed(state) & mine
            wanted = [b for b in self.blobs if b not in doomed], [r for r in self.revisions if r not in doomed]
            if wanted[0] or wanted[1]:
                self.fence.record_use(*wanted)
                state = self.fence.state()
                doomed |= _doomed(state) & mine if state is not None else set()
        self.doomed = doomed
        self.checked = time.monotonic()

    def is_doomed(self, item: str) -> bool:
        return item in self.doomed

    def confirm(self) -> None:
        """Call right before the dependent write: re-check when the first check is too old to count."""
        if time.monotonic() - self.checked > self.fence.window / 2:
            self.check()

    def wait_until_spared(self, items: list[str]) -> None:
        """Block while a collection still lists ``items`` as doomed (content this request is about to write)."""
        deadline = time.monotonic() + WAIT_FOR_COLLECTION
        while any(self.is_doomed(i) for i in items):
            if time.monotonic() > deadline:
                raise RegistryError(
                    "TOOMANYREQUESTS", "a garbage collection is deleting this content; retry later", status=503
                )
            time.sleep(min(1.0, max(0.05, self.fence.window / 10)))
            self.check()


class Fence:
    def __init__(self, backend: StorageBackend, window: float = DEFAULT_WINDOW) -> None:
        self.backend = backend
        self.window = window

    def state(self) -> dict | None:
        try:
            return json.loads(self.backend.get(GC_STATE))
        except KeyError:
            return None
        except ValueError:  # being replaced right now: treat as running, without a doom list
            return {}

    def record_use(self, blobs: list[str], revisions: list[str]) -> None:
        key = f"{GC_USES}/{time.time_ns():020d}-{uuidlib.uuid4().hex}"
        self.backend.put(key, json.dumps({"blobs": blobs, "revisions": revisions}).encode())

    def guard(self, blobs: list[str] = (), revisions: list[str] = ()) -> Guard:
        return Guard(self, list(blobs), list(revisions))


# -- the collector -------------------------------------------------------------------------------------


@dataclass
class Report:
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (digest, size) deleted or to delete
    revisions: list[str] = field(default_factory=list)  # name@digest
    spared: int = 0
    sessions: int = 0
    incomplete: int = 0
    kept_blobs: int = 0

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.blobs)


@dataclass
class Marks:
    blobs: set[str] = field(default_factory=set)
    doomed_revisions: set[str] = field(default_factory=set)  # name@digest (delete_untagged only)


def _repositories(backend: StorageBackend) -> dict[str, list]:
    """Every object under ``repositories/``, grouped by repository name (one listing of the tree)."""
    repos: dict[str, list] = {}
    prefix = f"{BASE}/repositories/"
    for info in backend.walk(f"{BASE}/repositories"):
        rel = info.key[len(prefix) :]
        for marker in ("/_manifests/", "/_layers/", "/_uploads/", "/_meta/"):
            name, sep, rest = rel.partition(marker)
            if sep:
                repos.setdefault(name, []).append((marker.strip("/"), rest, info))
                break
    return repos


def _read_digest(backend: StorageBackend, key: str) -> str | None:
    try:
        value = backend.get(key).decode().strip()
    except (KeyError, UnicodeDecodeError):
        return None
    return value if DIGEST_RE.match(value) else None


def _references(backend: StorageBackend, digest: str) -> tuple[list[str], list[str]]:
    """(blobs, child manifests) a manifest references; ([], []) if it is not a readable manifest."""
    try:
        manifest = json.loads(backend.get(blob_key(digest)))
    except (KeyError, ValueError):
        return [], []
    if not isinstance(manifest, dict):
        return [], []

    def digests(descriptors) -> list[str]:
        found = [str(d.get("digest")) for d in descriptors if isinstance(d, dict)]
        return [d for d in found if DIGEST_RE.match(d)]

    media_type = manifest_media_type(manifest)
    if media_type in INDEXES:
        return [], digests(manifest.get("manifests") or [])
    if media_type in IMAGE_MANIFESTS:
        return digests([manifest.get("config") or {}, *(manifest.get("layers") or [])]), []
    return [], []


def mark(backend: StorageBackend, delete_untagged: bool, young: float) -> Marks:
    """Blobs in use; with ``delete_untagged``, also the revisions no tag reaches that are older than ``young``."""
    marks = Marks()
    for name, entries in _repositories(backend).items():
        revisions: dict[str, float] = {}
        tagged: set[str] = set()
        for kind, rest, info in entries:
            if kind != "_manifests":
                continue
            parts = rest.split("/")
            if parts[0] == "revisions" and len(parts) == 4 and parts[3] == "link":
                revisions[f"{parts[1]}:{parts[2]}"] = info.modified
            elif parts[0] == "tags" and len(parts) == 4 and parts[2:] == ["current", "link"]:
                digest = _read_digest(backend, info.key)
                if digest:
                    tagged.add(digest)
        if delete_untagged:
            roots = tagged | {d for d, modified in revisions.items() if modified >= young}
        else:
            roots = set(revisions) | tagged
        reached: set[str] = set()
        pending = [d for d in roots if d in revisions]
        while pending:
            digest = pending.pop()
            if digest in reached:
                continue
            reached.add(digest)
            marks.blobs.add(digest)
            blobs, children = _references(backend, digest)
            marks.blobs.update(blobs)
            pending.extend(c for c in children if c in revisions and c not in reached)
        if delete_untagged:
            marks.doomed_revisions.update(f"{name}@{d}" for d in revisions if d not in reached)
    return marks


def _blobs(backend: StorageBackend) -> dict[str, tuple[int, float]]:
    found = {}
    for info in backend.walk(f"{BASE}/blobs"):
        parts = info.key.split("/")  # docker/registry/v2/blobs/<alg>/<hh>/<hex>/data
        if len(parts) == 8 and parts[7] == "data":
            digest = f"{parts[4]}:{parts[6]}"
            if DIGEST_RE.match(digest):
                found[digest] = (info.size, info.modified)
    return found


def _uses(backend: StorageBackend) -> tuple[set[str], set[str]]:
    blobs: set[str] = set()
    revisions: set[str] = set()
    for info in backend.walk(GC_USES):
        try:
            record = json.loads(backend.get(info.key))
        except (KeyError, ValueError):
            continue
        blobs.update(record.get("blobs", []))
        revisions.update(record.get("revisions", []))
    return blobs, revisions


def collect(
    backend: StorageBackend,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    grace: float = DEFAULT_GRACE,
    window: float = DEFAULT_WINDOW,
    sleep=time.sleep,
) -> Report:
    """Run one collection (see the module docstring); with ``dry_run`` nothing is written or deleted."""
    report = Report()
    if dry_run:
        now = time.time()
        marks = mark(backend, delete_untagged, now - grace)
        for digest, (size, modified) in sorted(_blobs(backend).items()):
            if digest not in marks.blobs and modified < now - grace:
                report.blobs.append((digest, size))
            else:
                report.kept_blobs += 1
        report.revisions = sorted(marks.doomed_revisions)
        return report
    owner = json.dumps(
        {"phase": "mark", "host": socket.gethostname(), "pid": os.getpid(), "doomed": [], "doomed_revisions": []}
    ).encode()
    if not backend.put_if_absent(GC_STATE, owner):
        raise CollectionRunning(
            f"another garbage collection is running ({GC_STATE} exists; if its process is "
            f"gone, delete that object and run again)"
        )
    try:
        t0 = backend.stat(GC_STATE).modified
        young = t0 - grace
        sleep(window)
        marks = mark(backend, delete_untagged, young)
        blobs = _blobs(backend)
        used_blobs, used_revisions = _uses(backend)
        candidates = {
            d for d, (_, modified) in blobs.items() if d not in marks.blobs and modified < young and d not in used_blobs
        }
        revisions = marks.doomed_revisions - used_revisions
        backend.put(
            GC_STATE,
            json.dumps(
                {
                    "phase": "sweep",
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "doomed": sorted(candidates),
                    "doomed_revisions": sorted(revisions),
                }
            ).encode(),
        )
        sleep(window)
        again = mark(backend, delete_untagged, young)
        used_blobs, used_revisions = _uses(backend)
        final = candidates - again.blobs - used_blobs
        final_revisions = (revisions & again.doomed_revisions) - used_revisions
        report.spared = len(candidates) - len(final) + len(revisions) - len(final_revisions)
        for item in sorted(final_revisions):
            name, _, digest = item.rpartition("@")
            backend.delete(revision_link(name, digest))
            report.revisions.append(item)
        for name, entries in _repositories(backend).items():
            for kind, rest, _info in entries:
                parts = rest.split("/")
                if kind == "_layers" and len(parts) == 3 and f"{parts[0]}:{parts[1]}" in final:
                    backend.delete(layer_link(name, f"{parts[0]}:{parts[1]}"))
        for digest in sorted(final):
            backend.delete(blob_key(digest))
            report.blobs.append((digest, blobs[digest][0]))
        report.kept_blobs = len(blobs) - len(final)
        report.sessions = UploadSessions(backend).purge(young)
        report.incomplete = backend.purge_incomplete(young)
        backend.delete_tree(GC_USES)
    finally:
        backend.delete(GC_STATE)
    return report


__all__ = ["Fence", "Guard", "collect", "mark", "Report", "CollectionRunning", "DEFAULT_WINDOW", "DEFAULT_GRACE"]
