"""Names, digests and media types shared by the registry server and the client."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

# Patterns end in \Z, never $: "$" also matches before a trailing newline, and a name, tag or digest
# with a newline must not pass (callers use .match).

#: one path component of a repository name (distribution's reference grammar)
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*\Z")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}\Z")
DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z")
MAX_NAME = 255

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

IMAGE_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_LIST, OCI_INDEX)
ALL_MANIFESTS = (*IMAGE_MANIFESTS, *INDEXES)


def hasher(digest: str) -> _Hash:
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    import hashlib  # here, not at the top: OpenSSL is ~4 MB and some ms of every CLI start (dockyard.reference)

    return hashlib.new(algorithm)


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(NAME_RE.match(name))


def manifest_media_type(manifest: dict, content_type: str | None = None) -> str:
    """The media type of a parsed manifest: its own field, else the header, else by shape."""
    media_type = manifest.get("mediaType")
    if media_type:
        return str(media_type)
    if content_type and content_type.split(";")[0].strip() in ALL_MANIFESTS:
        return content_type.split(";")[0].strip()
    if manifest.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED
    if "manifests" in manifest:
        return OCI_INDEX
    return OCI_MANIFEST
