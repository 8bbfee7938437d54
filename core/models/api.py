"""The base of the Engine API models, and how each field says what dockyard does with it.

The rule (Docker's, and the one ``docs/api-coverage.md`` checks): every field of
API v1.41 is implemented as Docker implements it, or refused when a client sets
it to anything but its default -- never accepted and ignored.  A model declares
every field of its API object; the plain ones are implemented, and three
markers, used as ``Annotated`` metadata, say the rest::

    cgroup_parent: Annotated[str, Refused()] = ""
    ipc_mode: Annotated[str, Allowed("", "private", "shareable")] = ""
    network_id: Annotated[str, NoOp("inspect output")] = ""

* :class:`Refused` -- not implemented: a value other than the default (or another
  zero value: ``None``, ``""``, ``0``, ``[]``, ``{}``, ``false``; the docker CLI sends
  every field, at its zero value) is refused with a 400 naming the field;
* :class:`Allowed` -- implemented for the values listed; others are refused;
* :class:`NoOp` -- a field Docker itself does nothing with when it comes in a
  request (inspect output clients echo back, such as an endpoint's
  ``IPAddress``; a deprecated field): accepted and dropped, as Docker does.

:func:`unsupported` walks a parsed request and lists what it must refuse; the
daemon calls it on every request body and query (``dockyard.daemon.params``).
It is not run when a model is read back from the store or an image config, so
a pulled image whose config sets a field dockyard refuses still loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_pascal

from dockyard.errors import InvalidParameter

__all__ = ["Allowed", "ApiModel", "NoOp", "Refused", "check_supported", "marker_of", "unsupported"]


@dataclass(frozen=True)
class Refused:
    """dockyard does not implement this field: any value but the default is a 400 naming it."""

    why: str = ""


@dataclass(frozen=True)
class Allowed:
    """Implemented for these values only; others are refused with a 400 naming the field and value."""

    values: tuple[Any, ...]
    why: str = ""

    def __init__(self, *values: Any, why: str = "") -> None:
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "why", why)


@dataclass(frozen=True)
class NoOp:
    """Docker does nothing with this field in a request (inspect output, deprecated); dropped, as Docker does."""

    why: str = ""


Marker = Refused | Allowed | NoOp


class ApiModel(BaseModel):
    """An Engine API object: Python attributes in snake_case, JSON names (aliases) as the API spells
    them, serialised ``by_alias``.  Fields outside API v1.41 are dropped, as Docker's JSON decoder
    drops them (newer clients send fields of later API versions)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore")

    def api(self) -> dict[str, Any]:
        """The JSON-ready dict with the API's field names."""
        return self.model_dump(mode="json", by_alias=True)


def marker_of(model: type[BaseModel], name: str) -> Marker | None:
    """The marker of a field of ``model`` (by attribute name), or None: implemented."""
    for item in model.model_fields[name].metadata:
        if isinstance(item, (Refused, Allowed, NoOp)):
            return item
    return None


def is_default(value: Any, default: Any) -> bool:
    """Whether a client left a field alone: its default, or any zero value when the default is one."""
    return value is None or value == default or (_is_zero(value) and _is_zero(default))


def _is_zero(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value is False
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, (str, list, dict, tuple)):
        return len(value) == 0
    if isinstance(value, BaseModel):
        return all(_is_zero(getattr(value, name)) for name in type(value).model_fields)
    return False


def unsupported(model: BaseModel, prefix: str = "") -> list[str]:
    """What ``model`` (a parsed request) sets that dockyard refuses, one message each, with the
    field's API path (``HostConfig.CgroupParent``)."""
    problems: list[str] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = prefix + (info.alias or name)
        marker = marker_of(type(model), name)
        if isinstance(marker, Refused):
            if not is_default(value, info.get_default(call_default_factory=True)):
                problems.append(f"{path} is not supported by dockyard" + (f" ({marker.why})" if marker.why else ""))
            continue
        if isinstance(marker, Allowed):
            if value not in marker.values and not (value is None and None in marker.values):
                allowed = ", ".join(repr(v) for v in marker.values if v not in (None, "")) or "only the default"
                problems.append(
                    f"{path}={value!r} is not supported by dockyard (supported: {allowed})"
                    + (f"; {marker.why}" if marker.why else "")
                )
            continue
        if isinstance(marker, NoOp):
            continue
        problems += _nested(value, path)
    return problems


def _nested(value: Any, path: str) -> list[str]:
    if isinstance(value, BaseModel):
        return unsupported(value, path + ".")
    if isinstance(value, list):
        return [p for item in value for p in _nested(item, path)]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _nested(item, f"{path}.{key}")]
    return []


def check_supported(model: BaseModel, prefix: str = "") -> None:
    """Raise InvalidParameter (400) naming every field of ``model`` dockyard refuses."""
    problems = unsupported(model, prefix)
    if problems:
        raise InvalidParameter("; ".join(problems))
