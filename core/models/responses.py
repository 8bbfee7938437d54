"""What the Engine API answers: one model per JSON object of v1.41, named and shaped as the spec's definitions.

These models describe the daemon's answers in ``/openapi.json``
(:mod:`dockyard.daemon.openapi`); the routes build their answers from the
services' views, and the tests hold both together: schemathesis checks every
answer of a live daemon against these schemas, and ``tests/unit/test_openapi.py``
checks each field against the same definition in the v1.41 spec.  Fields are
spelled as the API spells them (the attribute is the JSON name), required when
dockyard always sends them, and ``| None`` where it may send ``null``.  Objects
allow fields beyond those listed, as the spec's do: a client must ignore what it
does not know.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AuthResponse",
    "BuildPruneResponse",
    "ContainerCreateResponse",
    "ContainerPruneResponse",
    "ImagePruneResponse",
    "Plugin",
    "SystemDataUsageResponse",
    "ContainerInspect",
    "ContainerSummary",
    "ContainerTopResponse",
    "ContainerUpdateResponse",
    "ContainerWaitResponse",
    "ErrorResponse",
    "ExecInspect",
    "FilesystemChange",
    "HistoryResponseItem",
    "IdResponse",
    "ImageDeleteResponseItem",
    "ImageInspect",
    "ImageSearchResponseItem",
    "ImageSummary",
    "Network",
    "NetworkCreateResponse",
    "NetworkPruneResponse",
    "SystemInfo",
    "SystemVersion",
    "Volume",
    "VolumeListResponse",
    "VolumePruneResponse",
]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorResponse(Answer):
    """Every error: ``{"message": ...}``."""

    message: str


class IdResponse(Answer):
    Id: str


class ContainerCreateResponse(Answer):
    Id: str
    Warnings: list[str]


class ComponentVersion(Answer):
    Name: str
    Version: str
    Details: dict[str, Any] | None = None


class PlatformName(Answer):
    Name: str


class SystemVersion(Answer):
    Platform: PlatformName
    Components: list[ComponentVersion]
    Version: str
    ApiVersion: str
    MinAPIVersion: str
    GitCommit: str
    GoVersion: str
    Os: str
    Arch: str
    KernelVersion: str
    BuildTime: str


class SystemInfo(Answer):
    ID: str
    Containers: int
    ContainersRunning: int
    ContainersPaused: int
    ContainersStopped: int
    Images: int
    Driver: str
    DriverStatus: list[list[str]]
    Plugins: dict[str, list[str] | None]
    MemoryLimit: bool
    SwapLimit: bool
    IPv4Forwarding: bool
    Debug: bool
    NFd: int
    SystemTime: str
    LoggingDriver: str
    CgroupDriver: str
    KernelVersion: str
    OperatingSystem: str
    OSType: str
    Architecture: str
    NCPU: int
    MemTotal: int
    DockerRootDir: str
    Name: str
    Labels: list[str]
    ServerVersion: str
    Warnings: list[str] | None = None


class Port(Answer):
    IP: str | None = None
    PrivatePort: int
    PublicPort: int | None = None
    Type: str


class MountPoint(Answer):
    Type: str | None = None
    Name: str | None = None
    Source: str | None = None
    Destination: str | None = None
    Driver: str | None = None
    Mode: str | None = None
    RW: bool | None = None
    Propagation: str | None = None


class SummaryHostConfig(Answer):
    NetworkMode: str


class SummaryNetworkSettings(Answer):
    Networks: dict[str, dict[str, Any]]


class ContainerSummary(Answer):
    Id: str
    Names: list[str]
    Image: str
    ImageID: str
    Command: str
    Created: int
    Ports: list[Port]
    SizeRw: int | None = None
    SizeRootFs: int | None = None
    Labels: dict[str, str]
    State: str
    Status: str
    HostConfig: SummaryHostConfig
    NetworkSettings: SummaryNetworkSettings
    Mounts: list[MountPoint]


class ContainerState(Answer):
    Status: str
    Running: bool
    Paused: bool
    Restarting: bool
    OOMKilled: bool
    Dead: bool
    Pid: int
    ExitCode: int
    Error: str
    StartedAt: str
    FinishedAt: str
    Health: dict[str, Any] | None = None


class GraphDriverData(Answer):
    Name: str
    Data: dict[str, str]


class ContainerInspect(Answer):
    Id: str
    Created: str
    Path: str
    Args: list[str]
    State: ContainerState
    Image: str
    ResolvConfPath: str
    HostnamePath: str
    HostsPath: str
    LogPath: str
    Name: str
    RestartCount: int
    Driver: str
    Platform: str
    MountLabel: str
    ProcessLabel: str
    AppArmorProfile: str
    ExecIDs: list[str] | None
    HostConfig: dict[str, Any]
    GraphDriver: GraphDriverData
    SizeRw: int | None = None
    SizeRootFs: int | None = None
    Mounts: list[MountPoint]
    Config: dict[str, Any]
    NetworkSettings: dict[str, Any]


class WaitError(Answer):
    Message: str | None = None


class ContainerWaitResponse(Answer):
    StatusCode: int
    Error: WaitError | None = None


class ContainerTopResponse(Answer):
    Titles: list[str]
    Processes: list[list[str]]


class ContainerUpdateResponse(Answer):
    Warnings: list[str] | None


class FilesystemChange(Answer):
    Path: str
    Kind: int


class ImageSummary(Answer):
    Id: str
    ParentId: str
    RepoTags: list[str] | None
    RepoDigests: list[str] | None
    Created: int
    Size: int
    SharedSize: int
    VirtualSize: int
    Labels: dict[str, str] | None
    Containers: int


class RootFS(Answer):
    Type: str
    Layers: list[str] | None = None


class ImageMetadata(Answer):
    LastTagTime: str | None = None


class ImageInspect(Answer):
    Id: str
    RepoTags: list[str] | None
    RepoDigests: list[str] | None
    Parent: str
    Comment: str
    Created: str
    Container: str
    ContainerConfig: dict[str, Any] | None
    DockerVersion: str
    Author: str
    Config: dict[str, Any] | None
    Architecture: str
    Os: str
    Size: int
    VirtualSize: int
    GraphDriver: GraphDriverData
    RootFS: RootFS
    Metadata: ImageMetadata | None = None


class HistoryResponseItem(Answer):
    Id: str
    Created: int
    CreatedBy: str
    Tags: list[str] | None
    Size: int
    Comment: str


class ImageDeleteResponseItem(Answer):
    Untagged: str | None = None
    Deleted: str | None = None


class ImageSearchResponseItem(Answer):
    description: str | None = None
    is_official: bool | None = None
    is_automated: bool | None = None
    name: str
    star_count: int | None = None


class AuthResponse(Answer):
    Status: str
    IdentityToken: str | None = None


class Volume(Answer):
    Name: str
    Driver: str
    Mountpoint: str
    CreatedAt: str | None = None
    Status: dict[str, Any] | None = None
    Labels: dict[str, str] | None
    Scope: str
    Options: dict[str, str] | None
    UsageData: dict[str, Any] | None = None


class VolumeListResponse(Answer):
    Volumes: list[Volume]
    Warnings: list[str] | None


class VolumePruneResponse(Answer):
    VolumesDeleted: list[str] | None
    SpaceReclaimed: int


class IPAM(Answer):
    Driver: str
    Config: list[dict[str, str]] | None
    Options: dict[str, str] | None


class NetworkContainer(Answer):
    Name: str
    EndpointID: str
    MacAddress: str
    IPv4Address: str
    IPv6Address: str


class Network(Answer):
    Name: str
    Id: str
    Created: str
    Scope: str
    Driver: str
    EnableIPv6: bool
    IPAM: IPAM
    Internal: bool
    Attachable: bool
    Ingress: bool
    Containers: dict[str, NetworkContainer]
    Options: dict[str, str] | None
    Labels: dict[str, str] | None


class NetworkCreateResponse(Answer):
    Id: str
    Warning: str


class NetworkPruneResponse(Answer):
    NetworksDeleted: list[str] | None


class ContainerPruneResponse(Answer):
    ContainersDeleted: list[str] | None
    SpaceReclaimed: int


class ImagePruneResponse(Answer):
    ImagesDeleted: list[ImageDeleteResponseItem] | None
    SpaceReclaimed: int


class BuildPruneResponse(Answer):
    CachesDeleted: list[str] | None
    SpaceReclaimed: int


class SystemDataUsageResponse(Answer):
    LayersSize: int
    Images: list[ImageSummary]
    Containers: list[ContainerSummary]
    Volumes: list[Volume]
    BuildCache: list[dict[str, Any]] | None


class Plugin(Answer):
    Name: str


class ProcessConfig(Answer):
    privileged: bool
    user: str
    tty: bool
    entrypoint: str
    arguments: list[str]


class ExecInspect(Answer):
    CanRemove: bool
    DetachKeys: str
    ID: str
    Running: bool
    ExitCode: int | None
    ProcessConfig: ProcessConfig
    OpenStdin: bool
    OpenStderr: bool
    OpenStdout: bool
    ContainerID: str
    Pid: int
