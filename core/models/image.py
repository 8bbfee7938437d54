"""OCI image configuration (``application/vnd.oci.image.config.v1+json``).

The same JSON is Docker's image config, so an image dockyard makes here is one
skopeo, podman and docker-registry understand.  ``config`` uses the container
config shape of the Engine API (``Cmd``, ``Env``, ``WorkingDir`` ...).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dockyard.models.container import ContainerConfig


class RootFS(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "layers"
    diff_ids: list[str] = Field(default_factory=list)


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


class ImageConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    architecture: str = "amd64"
    os: str = "linux"
    created: str | None = None
    author: str | None = None
    config: ContainerConfig = Field(default_factory=ContainerConfig)
    rootfs: RootFS = Field(default_factory=RootFS)
    history: list[HistoryEntry] = Field(default_factory=list)

    def canonical_json(self) -> bytes:
        """Bytes whose sha256 is the image ID: stable key order, no spaces."""
        import json

        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
