"""The one cattrs converter between Orgo's JSON and the models.

It absorbs the API's drift (docs/orgo-api.md §1.3, §1.6) so nothing else has to:
``instance_id`` falls back to ``fly_instance_id`` and then to the last segment
of ``connection_url``; workspaces list their computers under ``desktops``;
lists come under ``workspaces`` or ``projects``; unknown fields are ignored and
unknown statuses kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, override
from cattrs.preconf.json import make_converter

from .errors import ResponseValidationError
from .models import Computer, ComputerSpec, ComputerStatus, Workspace

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=False)


def _structure_datetime(value: Any, _: type) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")


converter.register_structure_hook(datetime, _structure_datetime)
converter.register_structure_hook(
    datetime | None, lambda v, _: None if v is None else _structure_datetime(v, datetime)
)
converter.register_structure_hook(ComputerStatus, lambda v, _: ComputerStatus(str(v)))

_computer_fields = make_dict_structure_fn(Computer, converter)


def _instance_id(data: dict[str, Any]) -> str | None:
    for key in ("instance_id", "fly_instance_id"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    url = data.get("connection_url")
    if isinstance(url, str) and url.rstrip("/"):
        return url.rstrip("/").rsplit("/", 1)[-1] or None
    return None


def _structure_computer(data: Any, _: type) -> Computer:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    fields = {k: v for k, v in data.items() if v is not None}
    fields["instance_id"] = _instance_id(data)
    if "workspace_id" not in fields and isinstance(data.get("project_id"), str):
        fields["workspace_id"] = data["project_id"]
    return _computer_fields(fields, Computer)


converter.register_structure_hook(Computer, _structure_computer)

_workspace_fields = make_dict_structure_fn(
    Workspace, converter, computers=override(rename="desktops")
)


def _structure_workspace(data: Any, _: type) -> Workspace:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    if "id" not in data:
        # Some answers wrap it: {"workspace": {...}} or {"project": {...}}.
        for key in ("workspace", "project"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    fields = {k: v for k, v in data.items() if v is not None}
    return _workspace_fields(fields, Workspace)


converter.register_structure_hook(Workspace, _structure_workspace)


def unstructure_spec(spec: ComputerSpec) -> dict[str, Any]:
    """The JSON body of ``POST /computers``: set fields only."""
    return {k: v for k, v in attrs.asdict(spec).items() if v is not None}


def structure(data: Any, cls: type[T]) -> T:
    """Build a model from decoded JSON, raising ResponseValidationError on a mismatch."""
    try:
        return converter.structure(data, cls)
    except ClassValidationError as exc:
        problems = cattrs.transform_error(exc, path=cls.__name__)
        raise ResponseValidationError(cls.__name__, problems) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ResponseValidationError(cls.__name__, [str(exc)]) from exc


def structure_list(data: Any, cls: type[T], *keys: str) -> list[T]:
    """A list of models found under the first of ``keys`` present (or a bare list)."""
    items: Any = data
    if isinstance(data, dict):
        for key in keys:
            if key in data:
                items = data[key]
                break
        else:
            raise ResponseValidationError(cls.__name__, [f"no {' or '.join(keys)} list"])
    if not isinstance(items, list):
        raise ResponseValidationError(cls.__name__, ["expected a list"])
    return [structure(item, cls) for item in items]
