"""Image references, parsed exactly as Docker does (``distribution/reference``).

* The first path component names a registry host when it contains ``.`` or
  ``:`` or is ``localhost``: ``localhost:5000/ubuntu``, ``registry.example.com/a/b``.
* Otherwise the name lives on the default index: ``DOCKYARD_INDEX_URL``
  (e.g. ``http://127.0.0.1:5000`` or ``registry.example.com``), else
  Docker Hub (``docker.io``, where single-component names get ``library/``).
* ``name:tag``, ``name@sha256:...`` and ``name:tag@sha256:...`` (the digest wins).
* The local (familiar) name drops the default index: ``busybox`` stays
  ``busybox``; a name from another registry keeps its host.

This is the one reference parser: the image store, the build, the
distribution driver, the registry server and the CLI all use it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from dockyard.errors import InvalidParameter
from dockyard.oci import DIGEST_RE, NAME_RE, TAG_RE

DOCKER_HUB = "docker.io"
LEGACY_HUB = ("index.docker.io", "registry-1.docker.io")
DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?\Z"
)


def default_index(configured: str | None = None) -> tuple[str, str | None]:
    """(domain, scheme or None) of the default index."""
    value = (configured or os.environ.get("DOCKYARD_INDEX_URL") or "").strip()
    if not value:
        return DOCKER_HUB, None
    scheme = None
    if "://" in value:
        scheme, _, value = value.partition("://")
    value = value.strip("/").removesuffix("/v1").removesuffix("/v2")
    if value in LEGACY_HUB:
        value = DOCKER_HUB
    return value, scheme


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str  # repository path on the registry
    tag: str | None = None
    digest: str | None = None
    default_domain: str = DOCKER_HUB

    @property
    def is_default_index(self) -> bool:
        return self.domain == self.default_domain

    @property
    def repository(self) -> str:
        """The local repository name (Docker's "familiar" name)."""
        if self.is_default_index:
            if self.domain == DOCKER_HUB:
                return self.path.removeprefix("library/")
            return self.path
        return f"{self.domain}/{self.path}"

    @property
    def remote_name(self) -> str:
        """What ``Pulling from`` shows: the path, without ``library/`` on Docker Hub."""
        return self.path.removeprefix("library/") if self.domain == DOCKER_HUB else self.path

    @property
    def reference(self) -> str:
        """Tag or digest to ask the registry for."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(ref: str, tag: str | None = None, index: str | None = None) -> Reference:
    """Parse ``ref`` (with an optional separate ``tag``, as ``/images/create`` passes it)."""
    default_domain, _ = default_index(index)
    original = ref
    ref = ref.strip()
    if not ref:
        raise InvalidParameter("invalid reference format: repository name must have at least one component")
    digest = None
    if "@" in ref:
        ref, _, digest = ref.partition("@")
        if not DIGEST_RE.match(digest):
            raise InvalidParameter(f"invalid reference format: {original}")
    if tag and tag.startswith("sha256:"):
        digest, tag = tag, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, own_tag = ref[:colon], ref[colon + 1 :]
        tag = tag or own_tag
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not DOMAIN_RE.match(domain):
            raise InvalidParameter(f"invalid reference format: {original}")
    else:
        domain, path = default_domain, ref
    if domain in LEGACY_HUB:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if path != path.lower():
        raise InvalidParameter(f"invalid reference format: repository name ({path}) must be lowercase")
    if not NAME_RE.match(path) or len(path) > 255:
        raise InvalidParameter(f"invalid reference format: {original}")
    if tag is not None and not TAG_RE.match(tag):
        raise InvalidParameter(f"invalid reference format: {original}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(domain, path, tag, digest, default_domain)


def parse_repository_tag(ref: str, tag: str | None = None) -> tuple[str, str]:
    """``(repository, tag)`` to store a tag under: the familiar repository name, ``latest`` by default.

    For naming images (tag, import, commit, build ``-t``), where a digest has no place.
    """
    parsed = parse(ref, tag)
    if parsed.digest is not None:
        raise InvalidParameter(f"invalid reference format: a digest cannot name a tag: {ref}")
    return parsed.repository, parsed.tag or "latest"


def familiar_tagged(text: str) -> str:
    """``busybox`` -> ``busybox:latest``, as Docker's messages spell a reference
    (``FamiliarString(TagNameOnly(ref))``); text that is no reference comes back unchanged."""
    try:
        return str(parse(text))
    except InvalidParameter:
        return text


def split_search_term(term: str, index: str | None = None) -> tuple[str, str]:
    """``127.0.0.1:5000/busy`` -> (``127.0.0.1:5000``, ``busy``); plain terms go to the default index."""
    default_domain, _ = default_index(index)
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return default_domain, term
