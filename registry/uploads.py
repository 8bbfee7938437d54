"""Upload sessions, kept entirely in the storage backend.

A session is a directory of objects beside the repository's links, where
distribution keeps its own::

    repositories/<name>/_uploads/<uuid>/startedat              when it began (RFC 3339, as distribution writes it)
    repositories/<name>/_uploads/<uuid>/pieces/<offset:016d>   the bytes [offset, offset + size) of the upload

A PATCH appends pieces (on S3 one per ``chunk_size`` bytes, so a replica killed
in the middle of a long PATCH loses at most one chunk); the session's size is the
sum of its contiguous pieces, so any replica can report, continue or finish an
upload any other replica started.  Finishing verifies the digest and composes
the pieces into ``blobs/`` (a rename on a file system, a server-side copy on S3).

The running sha256 of what a replica wrote itself is kept in memory as a cache
only: a replica finishing an upload whose earlier pieces it did not see reads
those pieces back from storage to hash them (distribution does the same when
its saved hash state does not match).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from dataclasses import dataclass, field

from dockyard.oci import hasher
from dockyard.timefmt import iso
from .errors import RegistryError
from .layout import BASE, session_prefix
from .storage import ObjectWriter, StorageBackend

HASH_CACHE = 256


@dataclass
class Piece:
    key: str
    offset: int
    size: int


@dataclass
class Upload:
    uuid: str
    name: str
    started: float
    pieces: list[Piece] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.pieces[-1].offset + self.pieces[-1].size if self.pieces else 0

    @property
    def prefix(self) -> str:
        return session_prefix(self.name, self.uuid)


def _valid_uuid(upload_id: str) -> bool:
    try:
        return str(uuidlib.UUID(upload_id)) == upload_id
    except ValueError:
        return False


class UploadWriter:
    """Appends one request body to a session, one piece object per ``piece_size`` bytes."""

    def __init__(self, sessions: "UploadSessions", upload: Upload) -> None:
        self.sessions = sessions
        self.upload = upload
        self.backend = sessions.backend
        self.limit = self.backend.piece_size
        self.current: ObjectWriter | None = None
        self.offset = upload.size  # where the current piece starts
        self.written = 0
        self.hash = sessions._hash_for(upload)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.current is None:
                self.current = self.backend.writer(f"{self.upload.prefix}/pieces/{self.offset:016d}")
            room = len(view) if self.limit is None else min(len(view), self.limit - self.current.written)
            part = bytes(view[:room])
            self.current.write(part)
            if self.hash is not None:
                self.hash.update(part)
            self.written += room
            view = view[room:]
            if self.limit is not None and self.current.written >= self.limit:
                self._commit_piece()

    def _commit_piece(self) -> None:
        writer, self.current = self.current, None
        if writer is None or writer.written == 0:
            if writer is not None:
                writer.abort()
            return
        writer.commit()
        piece = Piece(f"{self.upload.prefix}/pieces/{self.offset:016d}", self.offset, writer.written)
        self.upload.pieces.append(piece)
        self.offset += writer.written
        if self.hash is not None:
            self.sessions._remember(self.upload, self.offset, self.hash)

    def close(self) -> None:
        """Commit what arrived (a client that went away keeps what it sent, as with distribution)."""
        try:
            self._commit_piece()
        finally:
            if self.current is not None:
                self.current.abort()


class UploadSessions:
    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self._hashes: OrderedDict[str, tuple[int, object]] = OrderedDict()
        self._lock = threading.Lock()

    # -- the hash cache ---------------------------------------------------------------------------
    def _hash_for(self, upload: Upload):
        """A sha256 over ``[0, upload.size)`` if this replica has one (or the upload is empty)."""
        with self._lock:
            cached = self._hashes.get(upload.uuid)
        if upload.size == 0:
            return hashlib.sha256()
        if cached is not None and cached[0] == upload.size:
            return cached[1].copy()
        return None

    def _remember(self, upload: Upload, offset: int, h) -> None:
        with self._lock:
            self._hashes[upload.uuid] = (offset, h.copy())
            self._hashes.move_to_end(upload.uuid)
            while len(self._hashes) > HASH_CACHE:
                self._hashes.popitem(last=False)

    def _forget(self, upload_id: str) -> None:
        with self._lock:
            self._hashes.pop(upload_id, None)

    # -- sessions ---------------------------------------------------------------------------------
    def start(self, name: str) -> Upload:
        upload = Upload(str(uuidlib.uuid4()), name, time.time())
        self.backend.put(f"{upload.prefix}/startedat", iso(upload.started).encode())
        return upload

    def get(self, name: str, upload_id: str) -> Upload:
        if not _valid_uuid(upload_id):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        prefix = session_prefix(name, upload_id)
        started = self.backend.stat(f"{prefix}/startedat")
        if started is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        upload = Upload(upload_id, name, started.modified)
        for info in self.backend.walk(f"{prefix}/pieces"):
            try:
                offset = int(info.key.rsplit("/", 1)[1])
            except ValueError:
                continue
            if offset != upload.size:  # a gap (a piece lost to a crash): what follows cannot count
                break
            upload.pieces.append(Piece(info.key, offset, info.size))
        return upload

    def writer(self, upload: Upload) -> UploadWriter:
        return UploadWriter(self, upload)

    def digest_of(self, upload: Upload, digest: str) -> str:
        """The upload's content digest with ``digest``'s algorithm, reading back only what this replica did not hash."""
        algorithm = digest.split(":", 1)[0]
        h = None
        start = 0
        if algorithm == "sha256":
            with self._lock:
                cached = self._hashes.get(upload.uuid)
            boundaries = {p.offset for p in upload.pieces} | {upload.size}
            if cached is not None and cached[0] in boundaries:
                start, h = cached[0], cached[1].copy()
        if h is None:
            h, start = hasher(digest), 0
        for piece in upload.pieces:
            if piece.offset + piece.size <= start:
                continue
            skip = max(0, start - piece.offset)
            for data in self.backend.read_range(piece.key, skip):
                h.update(data)
        return f"{algorithm}:{h.hexdigest()}"

    def compose_into(self, upload: Upload, key: str) -> None:
        self.backend.compose(key, [p.key for p in upload.pieces])

    def cancel(self, upload: Upload) -> None:
        self._forget(upload.uuid)
        self.backend.delete_tree(upload.prefix)

    def purge(self, before: float) -> int:
        """Remove sessions whose last write (start or piece) is older than ``before``; returns how many."""
        latest: dict[str, float] = {}
        for info in self.backend.walk(f"{BASE}/repositories"):
            head, sep, rest = info.key.partition("/_uploads/")
            if not sep:
                continue
            session = f"{head}/_uploads/{rest.split('/', 1)[0]}"
            latest[session] = max(latest.get(session, 0.0), info.modified)
        removed = 0
        for session, modified in latest.items():
            if modified < before:
                self.backend.delete_tree(session)
                removed += 1
        return removed


__all__ = ["Upload", "UploadSessions", "UploadWriter", "Piece", "session_prefix"]
