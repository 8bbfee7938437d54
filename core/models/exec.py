"""Engine API exec shapes (v1.41): the bodies of ``POST /containers/{id}/exec`` and ``POST /exec/{id}/start``."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from dockyard.models.api import ApiModel

__all__ = ["ExecCreateRequest", "ExecStartRequest"]


class ExecCreateRequest(ApiModel):
    """Body of ``POST /containers/{id}/exec``."""

    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    tty: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = None
    #: only in a privileged container (whose processes are all unconfined); refused elsewhere
    privileged: bool = False
    user: str = ""
    working_dir: str = ""

    @field_validator("cmd", mode="before")
    @classmethod
    def _string_is_one_element(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExecStartRequest(ApiModel):
    """Body of ``POST /exec/{id}/start``.  ``Tty`` decides the framing of the stream, as in Docker:
    raw bytes with it, stdout/stderr frames without (whatever the exec was created with)."""

    detach: bool = False
    tty: bool = False
