"""Storage backends of the registry server: one small key/value interface.

Keys are slash-separated paths.  The layout written by :mod:`.store` on top of
this interface is the one Docker's reference registry (``distribution``) uses
under ``docker/registry/v2/``, so a data directory written by ``dockyard
registry serve`` can be served by Debian's ``docker-registry`` and back.

Two backends:

``filesystem`` (default)
    files under a root directory; every write goes to a temporary file in the
    same directory and is renamed into place, so a reader sees either nothing
    or the whole object.
``s3``
    any S3-compatible object store through boto3 (an optional dependency:
    ``pip install dockyard[s3]``).  A PUT of an object is atomic in S3, which
    gives the same visibility guarantee.

Upload sessions are always staged on local disk (see :mod:`.store`); a backend
only ever receives complete, verified content.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


class StorageBackend(ABC):
    """The interface every registry storage driver implements."""

    name = ""
    #: whether calls block long enough that the server must run them in a thread
    blocking = False

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's content; raises ``KeyError`` if absent."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store an object atomically (readers see the old or the new content)."""

    @abstractmethod
    def put_file(self, key: str, source: Path) -> None:
        """Store a local file as an object atomically; ``source`` may be consumed (moved)."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size in bytes, or ``None`` if the object does not exist."""

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

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def status(self) -> dict:
        return {"driver": self.name}


class FilesystemBackend(StorageBackend):
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._counter = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root.joinpath(*parts)

    def _tmp_for(self, path: Path) -> Path:
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
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_for(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, path)  # same file system: an atomic rename
        except OSError:
            tmp = self._tmp_for(path)
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(st.st_mode) else st.st_size

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

    def status(self) -> dict:
        return {"driver": self.name, "root": str(self.root)}


class S3Backend(StorageBackend):
    """S3-compatible object storage (AWS, MinIO, Ceph RGW, moto ...) through boto3."""

    name = "s3"
    blocking = True

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, create_bucket: bool = False,
                 client=None) -> None:
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:  # pragma: no cover - depends on the extra
                raise RuntimeError("the s3 storage backend needs boto3: pip install 'dockyard[s3]'") from None
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                config=Config(max_pool_connections=32, retries={"max_attempts": 3}))
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if create_bucket:
            try:
                self.client.head_bucket(Bucket=bucket)
            except Exception:
                self.client.create_bucket(Bucket=bucket)

    def _key(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _missing(exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            if self._missing(exc):
                raise KeyError(key) from None
            raise

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(key))
        Path(source).unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except Exception as exc:
            if self._missing(exc):
                return None
            raise

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kwargs = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)["Body"]
        except Exception as exc:
            if self._missing(exc):
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
                names.add(p["Prefix"][len(full):].rstrip("/"))
            for o in page.get("Contents", []):
                names.add(o["Key"][len(full):])
        return sorted(n for n in names if n)

    def status(self) -> dict:
        return {"driver": self.name, "bucket": self.bucket, "prefix": self.prefix}


def make_backend(settings: dict, root: Path) -> StorageBackend:
    """A backend from the ``[storage]`` settings of the registry config."""
    kind = (settings.get("driver") or "filesystem").lower()
    if kind == "filesystem":
        return FilesystemBackend(Path(settings.get("rootdirectory") or root))
    if kind == "s3":
        return S3Backend(
            bucket=settings["bucket"], prefix=settings.get("prefix", ""),
            endpoint_url=settings.get("endpoint_url") or settings.get("regionendpoint"),
            region=settings.get("region"), access_key=settings.get("access_key") or settings.get("accesskey"),
            secret_key=settings.get("secret_key") or settings.get("secretkey"),
            create_bucket=bool(settings.get("create_bucket", False)))
    raise ValueError(f"unknown registry storage driver {kind!r} (filesystem, s3)")
