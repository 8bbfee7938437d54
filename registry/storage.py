"""Storage backends of the registry server: one small object-store interface.

Keys are slash-separated paths.  The layout written by :mod:`.store` on top of
this interface is the one Docker's reference registry (``distribution``) uses
under ``docker/registry/v2/``, so a data directory written by ``dockyard
registry serve`` can be served by Debian's ``docker-registry`` and back.

Every write is atomic: a reader sees nothing or the whole object, never a
part of it.  Nothing is kept in the server's memory that another replica
would need: several ``dockyard registry serve`` processes over one backend
behave as one registry.

Two backends:

``filesystem`` (default)
    files under a root directory (a local disk, or a shared file system for
    replicas); a write goes to a hidden temporary file in the same directory
    and is renamed into place.
``s3``
    any S3-compatible object store through boto3 (SeaweedFS, MinIO, Ceph RGW,
    AWS).  A PUT of an object is atomic in S3; large objects are written as
    multipart uploads of ``chunk_size`` parts and assembled server-side.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("dockyard.registry")

CHUNK = 1 << 20
#: S3's smallest part of a multipart upload (but the last)
S3_MIN_PART = 5 << 20
S3_DEFAULT_CHUNK = 10 << 20


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the backend's root (an S3 prefix is not part of it)
    size: int
    modified: float  # seconds since the epoch, by the storage's clock


class ObjectWriter(ABC):
    """A new object written in pieces; invisible until :meth:`commit`."""

    written = 0

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self) -> None:
        """Make the object visible (atomically replacing an older one)."""

    @abstractmethod
    def abort(self) -> None:
        """Throw away what was written; idempotent, and a no-op after commit."""


class StorageBackend(ABC):
    """The interface every registry storage driver implements."""

    name = ""
    #: whether calls block long enough that the server must run them in a thread
    blocking = False
    #: the largest piece an upload session stores as one object (None: no limit)
    piece_size: int | None = None

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's content; raises ``KeyError`` if absent."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store an object atomically (readers see the old or the new content)."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create an object only if no object has that key; ``False`` if one had.  Atomic across processes."""

    @abstractmethod
    def writer(self, key: str) -> ObjectWriter:
        """Start writing an object whose size is not known in advance."""

    @abstractmethod
    def compose(self, key: str, sources: list[str]) -> None:
        """Create ``key`` as the concatenation of the ``sources`` objects (kept), atomically."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size and modification time, or ``None`` if the object does not exist."""

    def size(self, key: str) -> int | None:
        """Size in bytes, or ``None`` if the object does not exist."""
        info = self.stat(key)
        return None if info is None else info.size

    @abstractmethod
    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield the bytes ``[start, end)`` of an object in chunks; ``KeyError`` if absent."""

    def local_path(self, key: str) -> Path | None:
        """A path to serve the object from with ``sendfile``, if the backend has one."""
        return None

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete one object; ``False`` if it was absent."""

    @abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Delete every object below ``prefix``."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Names of the immediate children of ``prefix`` (objects and 'directories'), sorted."""

    @abstractmethod
    def walk(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, at any depth, in key order."""

    @abstractmethod
    def purge_incomplete(self, before: float) -> int:
        """Remove writes that never committed (a process killed mid-write) started before ``before``."""

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def status(self) -> dict:
        return {"driver": self.name}


# -- file system ----------------------------------------------------------------------------------------


class _FileWriter(ObjectWriter):
    def __init__(self, backend: "FilesystemBackend", path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = backend._tmp_for(path)
        self.file = open(self.tmp, "wb")
        self.written = 0

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class FilesystemBackend(StorageBackend):
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._counter = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") or p.startswith(".") for p in parts):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root.joinpath(*parts)

    def _tmp_for(self, path: Path) -> Path:
        """A hidden name beside ``path``: listings skip it, ``purge_incomplete`` removes it if abandoned."""
        with self._lock:
            self._counter += 1
            n = self._counter
        return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{n}-{time.monotonic_ns()}")

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

    def put(self, key: str, data: bytes) -> None:
        writer = self.writer(key)
        try:
            writer.write(data)
            writer.commit()
        finally:
            writer.abort()

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_for(path)
        try:
            tmp.write_bytes(data)
            os.link(tmp, path)  # link() never replaces: exactly one creator wins
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def writer(self, key: str) -> ObjectWriter:
        return _FileWriter(self, self._path(key))

    def compose(self, key: str, sources: list[str]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_for(path)
        try:
            if len(sources) == 1:
                try:
                    os.link(self._path(sources[0]), tmp)  # no copy: the piece becomes the object
                except FileNotFoundError:
                    raise KeyError(sources[0]) from None
            else:
                with open(tmp, "wb") as out:
                    for source in sources:
                        try:
                            src = open(self._path(source), "rb")
                        except FileNotFoundError:
                            raise KeyError(source) from None
                        with src:
                            _copy_file(src, out)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(st.st_mode) else ObjectInfo(key.strip("/"), st.st_size, st.st_mtime)

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        try:
            f = open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None

        def chunks() -> Iterator[bytes]:
            with f:
                f.seek(start)
                remaining = None if end is None else end - start
                while remaining is None or remaining > 0:
                    data = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                    if not data:
                        return
                    if remaining is not None:
                        remaining -= len(data)
                    yield data

        return chunks()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False

    def delete_tree(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            # rename first so that a concurrent reader sees it vanish at once
            doomed = self._tmp_for(path)
            try:
                os.replace(path, doomed)
            except FileNotFoundError:
                return
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._path(prefix)) if not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def walk(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        top = prefix.strip("/")

        def visit(directory: Path, rel: str) -> Iterator[ObjectInfo]:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                key = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        yield from visit(Path(entry.path), key)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        yield ObjectInfo(key, st.st_size, st.st_mtime)
                except FileNotFoundError:  # removed while we walked
                    continue

        yield from visit(base, top)

    def purge_incomplete(self, before: float) -> int:
        removed = 0
        for directory, dirs, files in os.walk(self.root):
            for name in [*files, *dirs]:
                if name.startswith(".") and ".tmp-" in name:
                    path = Path(directory) / name
                    try:
                        if path.lstat().st_mtime < before:
                            if path.is_dir():
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                path.unlink()
                            removed += 1
                    except FileNotFoundError:
                        continue
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        return removed

    def status(self) -> dict:
        return {"driver": self.name, "root": str(self.root)}


def _copy_file(src, out) -> None:
    """Kernel-side copy where the platform has it (reflinks on btrfs and xfs)."""
    try:
        while os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
            pass
    except OSError:
        src.seek(0)
        shutil.copyfileobj(src, out, CHUNK)


# -- S3 ------------------------------------------------------------------------------------------------


class _S3Writer(ObjectWriter):
    """A plain PUT when everything fits in one chunk, a multipart upload of ``chunk_size`` parts otherwise."""

    def __init__(self, backend: "S3Backend", key: str) -> None:
        self.backend = backend
        self.key = backend._key(key)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []
        self.written = 0
        self.done = False

    def _flush_part(self, data: bytes) -> None:
        client = self.backend.client
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(Bucket=self.backend.bucket, Key=self.key)["UploadId"]
        number = len(self.parts) + 1
        answer = client.upload_part(
            Bucket=self.backend.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.written += len(data)
        size = self.backend.chunk_size
        while len(self.buffer) > size:  # keep one full part back: the last part may be any size
            self._flush_part(bytes(self.buffer[:size]))
            del self.buffer[:size]

    def commit(self) -> None:
        client, bucket = self.backend.client, self.backend.bucket
        if self.upload_id is None:
            client.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buffer))
        else:
            if self.buffer:
                self._flush_part(bytes(self.buffer))
            client.complete_multipart_upload(
                Bucket=bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
        self.buffer = bytearray()
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self.buffer = bytearray()
        if self.upload_id is not None:
            try:
                self.backend.client.abort_multipart_upload(
                    Bucket=self.backend.bucket, Key=self.key, UploadId=self.upload_id
                )
            except Exception as exc:  # noqa: BLE001 - gc's purge_incomplete removes it later
                log.warning("could not abort the multipart upload of %s: %s", self.key, exc)


class S3Backend(StorageBackend):
    """S3-compatible object storage through boto3."""

    name = "s3"
    blocking = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        create_bucket: bool = False,
        path_style: bool | None = None,
        chunk_size: int = S3_DEFAULT_CHUNK,
        client=None,
    ) -> None:
        if chunk_size < S3_MIN_PART:
            raise ValueError(f"the S3 chunk size must be at least {S3_MIN_PART} bytes (S3's smallest part)")
        self.chunk_size = self.piece_size = int(chunk_size)
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:  # pragma: no cover - depends on the extra
                raise RuntimeError("the s3 storage backend needs boto3: pip install 'dockyard[s3]'") from None
            if path_style is None:
                path_style = endpoint_url is not None  # S3 look-alikes rarely have wildcard DNS for buckets
            # the registry builds every request itself: botocore's validation of them is CPU for nothing
            settings = {
                "max_pool_connections": 64,
                "retries": {"max_attempts": 3, "mode": "standard"},
                "s3": {"addressing_style": "path" if path_style else "auto"},
                "parameter_validation": False,
            }
            try:  # botocore >= 1.36 adds CRC checksums in Python to every PUT; the registry verifies sha256 itself
                config = Config(
                    **settings,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
            except TypeError:
                config = Config(**settings)
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region or "us-east-1",
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        if create_bucket:
            try:
                self.client.head_bucket(Bucket=bucket)
            except Exception:  # noqa: BLE001 - absent (or not ours): creating says which
                try:
                    self.client.create_bucket(Bucket=bucket)
                except Exception as exc:  # noqa: BLE001
                    if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    def _key(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            if _missing(exc):
                raise KeyError(key) from None
            raise

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise

    def writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self, key)

    def compose(self, key: str, sources: list[str]) -> None:
        if not sources:
            self.put(key, b"")
            return
        sizes = []
        for source in sources:
            info = self.stat(source)
            if info is None:
                raise KeyError(source)
            sizes.append(info.size)
        if len(sources) == 1:
            self.client.copy_object(
                Bucket=self.bucket, Key=self._key(key), CopySource={"Bucket": self.bucket, "Key": self._key(sources[0])}
            )
            return
        if all(size >= S3_MIN_PART for size in sizes[:-1]):
            # server-side: every piece becomes one part, no byte passes through us
            full = self._key(key)
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
            try:
                parts = []
                for number, source in enumerate(sources, 1):
                    answer = self.client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=full,
                        UploadId=upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                    )
                    parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
                raise
            return
        # pieces smaller than S3 allows for a part (a client sending small chunks): copy through
        writer = self.writer(key)
        try:
            for source in sources:
                for data in self.read_range(source):
                    writer.write(data)
            writer.commit()
        finally:
            writer.abort()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return ObjectInfo(key.strip("/"), int(head["ContentLength"]), head["LastModified"].timestamp())

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kwargs = {}
        if start or end is not None:
            if end is not None and end <= start:
                return iter(())
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)["Body"]
        except Exception as exc:
            if _missing(exc):
                raise KeyError(key) from None
            raise

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    data = body.read(CHUNK)
                    if not data:
                        return
                    yield data
            finally:
                body.close()

        return chunks()

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return existed

    def delete_tree(self, prefix: str) -> None:
        full = self._key(prefix).rstrip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/") + "/" if prefix.strip("/") or self.prefix else ""
        names: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            for p in page.get("CommonPrefixes", []):
                names.add(p["Prefix"][len(full) :].rstrip("/"))
            for o in page.get("Contents", []):
                names.add(o["Key"][len(full) :])
        return sorted(n for n in names if n)

    def walk(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self._key(prefix).rstrip("/") + "/" if prefix.strip("/") or self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for o in page.get("Contents", []):
                yield ObjectInfo(self._rel(o["Key"]), int(o["Size"]), o["LastModified"].timestamp())

    def purge_incomplete(self, before: float) -> int:
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() < before:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def status(self) -> dict:
        return {
            "driver": self.name,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "endpoint": self.endpoint_url,
            "chunk_size": self.chunk_size,
        }


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NotFound")


# -- settings ------------------------------------------------------------------------------------------

#: the ``[storage]`` keys, with distribution's spellings accepted as aliases
S3_SETTINGS = {
    "bucket": ("bucket",),
    "prefix": ("prefix", "rootdirectory"),
    "endpoint_url": ("endpoint_url", "regionendpoint"),
    "region": ("region",),
    "access_key": ("access_key", "accesskey"),
    "secret_key": ("secret_key", "secretkey"),
    "path_style": ("path_style", "forcepathstyle"),
    "chunk_size": ("chunk_size", "chunksize"),
    "create_bucket": ("create_bucket",),
}


def make_backend(settings: dict, root: Path) -> StorageBackend:
    """A backend from the ``[storage]`` settings of the registry config."""
    kind = (settings.get("driver") or "filesystem").lower()
    if kind == "filesystem":
        unknown = set(settings) - {"driver", "rootdirectory"}
        if unknown:
            raise ValueError(f"unknown filesystem storage settings: {', '.join(sorted(unknown))}")
        return FilesystemBackend(Path(settings.get("rootdirectory") or root))
    if kind == "s3":
        known = {alias for aliases in S3_SETTINGS.values() for alias in aliases} | {"driver"}
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"unknown s3 storage settings: {', '.join(sorted(unknown))}")
        values = {}
        for name, aliases in S3_SETTINGS.items():
            for alias in aliases:
                if settings.get(alias) not in (None, ""):
                    values[name] = settings[alias]
                    break
        if "bucket" not in values:
            raise ValueError("the s3 storage driver needs a bucket")
        for flag in ("create_bucket", "path_style"):
            if isinstance(values.get(flag), str):
                values[flag] = values[flag].lower() in ("1", "true", "yes")
        if "chunk_size" in values:
            values["chunk_size"] = int(values["chunk_size"])
        return S3Backend(**values)
    raise ValueError(f"unknown registry storage driver {kind!r} (filesystem, s3)")
