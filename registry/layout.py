"""Where everything lives in the storage backend: the one home of the key layout.

Distribution's layout, under ``docker/registry/v2/`` (so Debian's
``docker-registry`` can serve the same data)::

    blobs/<alg>/<hh>/<hex>/data                                    content, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>/link                   a blob belongs to <name>
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link      a manifest belongs to <name>
    repositories/<name>/_manifests/tags/<tag>/current/link         what <tag> points at
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link   every manifest <tag> pointed at
    repositories/<name>/_uploads/<uuid>/...                        upload sessions (see uploads.py)

dockyard's own additions, which distribution never reads::

    repositories/<name>/_meta/dockyard.json                        owner settings: description, private
    _dockyard/accounts/<user>.json                                 accounts (see accounts.py)
    _dockyard/gc/state                                             a garbage collection in progress (see gc.py)
    _dockyard/gc/uses/<time>-<random>                              blobs a request relied on during one
"""

from __future__ import annotations

from dockyard.oci import DIGEST_RE
from .errors import RegistryError

BASE = "docker/registry/v2"
OURS = "_dockyard"
GC_STATE = f"{OURS}/gc/state"
GC_USES = f"{OURS}/gc/uses"
ACCOUNTS = f"{OURS}/accounts"


def split_digest(digest: str) -> tuple[str, str]:
    if not DIGEST_RE.match(digest):
        raise RegistryError("DIGEST_INVALID", f"invalid digest {digest!r}")
    algorithm, hexa = digest.split(":", 1)
    return algorithm, hexa


def blob_key(digest: str) -> str:
    algorithm, hexa = split_digest(digest)
    return f"{BASE}/blobs/{algorithm}/{hexa[:2]}/{hexa}/data"


def repo_key(name: str, *parts: str) -> str:
    return "/".join((BASE, "repositories", name, *parts))


def layer_link(name: str, digest: str) -> str:
    algorithm, hexa = split_digest(digest)
    return repo_key(name, "_layers", algorithm, hexa, "link")


def revision_link(name: str, digest: str) -> str:
    algorithm, hexa = split_digest(digest)
    return repo_key(name, "_manifests", "revisions", algorithm, hexa, "link")


def tag_link(name: str, tag: str) -> str:
    return repo_key(name, "_manifests", "tags", tag, "current", "link")


def tag_index_link(name: str, tag: str, digest: str) -> str:
    algorithm, hexa = split_digest(digest)
    return repo_key(name, "_manifests", "tags", tag, "index", algorithm, hexa, "link")


def meta_key(name: str) -> str:
    return repo_key(name, "_meta", "dockyard.json")


def session_prefix(name: str, upload_id: str) -> str:
    return repo_key(name, "_uploads", upload_id)


def account_key(user: str) -> str:
    return f"{ACCOUNTS}/{user}.json"
