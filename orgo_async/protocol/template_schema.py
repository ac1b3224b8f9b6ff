"""``orgo.ai/v1`` template documents against the JSON Schema Orgo publishes, for both ends.

Orgo's contract for template documents is the JSON Schema (draft 2020-12) at
``GET /template-schema``. The emulator checks documents against its copy of
it; the client checks them against the copy the server published. Both check
with jsonschema (a ``Draft202012Validator`` of a checked schema, see
:func:`compile_schema`); this module only turns each of jsonschema's errors
into Orgo's problem shape ``{field, code, message, hint}`` (:func:`problems`),
with the field as a path (``hardware.cpu``, ``files[0].to``) and the message
and hint taken from the schema's own ``description`` and ``examples``:

=====================================  =================
jsonschema keyword                     problem ``code``
=====================================  =================
``required``                           ``required``
``additionalProperties``               ``unknown_field``
``type``                               ``invalid_type``
``const``                              ``invalid_value``
``enum``                               ``invalid_enum``
``pattern``, lengths, property names   ``invalid_format``
``maxItems`` / ``minItems``            ``too_long`` / ``too_short``
``oneOf``, ``anyOf``, ``not``          ``invalid_value``
=====================================  =================

jsonschema is optional (the ``templates`` extra). Without it
:func:`compile_schema` raises ``ImportError`` with the install hint, and
:func:`structural_problems` checks what does not need it: the schema's
``type``, ``const``, ``enum``, ``required`` and closed ``properties``, followed
through ``$ref`` into nested objects and array items (patterns, lengths and
the combinators are skipped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "INSTALL_HINT",
    "compile_schema",
    "has_jsonschema",
    "problems",
    "structural_problems",
]

INSTALL_HINT: Final = "validating templates needs jsonschema: pip install 'orgo_async[templates]'"
_UNKNOWN_HINT: Final = "see GET /template-schema"
_MAX_MESSAGE: Final = 200

Problem = dict[str, Any]


def has_jsonschema() -> bool:
    """Whether jsonschema can be imported (the ``templates`` extra is installed)."""
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        return False
    return True


def compile_schema(schema: Mapping[str, Any]) -> Validator:
    """A validator of ``schema``, after checking that it is a valid 2020-12 schema.

    Raises:
        ImportError: jsonschema is not installed (the message is the install hint).
        jsonschema.SchemaError: ``schema`` is not a valid schema.
    """
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(validator: Validator, document: object) -> list[Problem]:
    """Every problem of ``document``, ordered by field (``[]`` when it is valid)."""
    found: dict[tuple[str, str], Problem] = {}
    instance: Any = document
    for error in validator.iter_errors(instance):
        for problem in _translate(error):
            found.setdefault((problem["field"], problem["code"]), problem)
    return sorted(found.values(), key=lambda p: (p["field"], p["code"]))


def structural_problems(schema: Mapping[str, Any], document: object) -> list[Problem]:
    """The problems found without jsonschema: types, constants, enums, required and
    unknown fields, as ``schema`` states them (see the module docstring)."""
    found: list[Problem] = []
    _walk(schema, schema, document, [], found)
    return sorted(found, key=lambda p: (p["field"], p["code"]))


# -- jsonschema's errors as problems -------------------------------------------------


def _problem(field: str, code: str, message: str, hint: str | None = None) -> Problem:
    return {"field": field, "code": code, "message": message, "hint": hint}


def _path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _join(field: str, key: object) -> str:
    return f"{field}.{key}" if field else str(key)


def _hint(schema: Mapping[str, Any]) -> str | None:
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return f"for example {examples[0]}"
    return None


def _type_name(expected: object) -> str:
    names = {"object": "an object", "array": "an array", "integer": "an integer"}
    kinds = expected if isinstance(expected, list) else [expected]
    words = [names.get(str(kind), f"a {kind}") for kind in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _translate(error: ValidationError) -> list[Problem]:
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    field = _path(error.absolute_path)
    label = field or "the document"
    described = schema.get("description")
    kind = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # A key of a map breaks the rule on keys: the key is the field.
        field = _join(field, instance)
        wanted = described or "a valid name"
        return [_problem(field, "invalid_format", f"{field} must be {wanted}", _hint(schema))]
    if kind == "required":
        names = [n for n in value if isinstance(instance, dict) and n not in instance]
        return [_problem(_join(field, n), "required", f"{_join(field, n)} is required")
                for n in names]  # fmt: skip
    if kind == "additionalProperties":
        known = schema.get("properties", {})
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extra = [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]
        return [_problem(_join(field, k), "unknown_field", f"unknown field {_join(field, k)!r}",
                         _UNKNOWN_HINT) for k in sorted(extra)]  # fmt: skip
    if kind == "type":
        return [_problem(field, "invalid_type", f"{label} must be {_type_name(value)}")]
    if kind == "const":
        shown = value if isinstance(value, str) else json.dumps(value)
        return [_problem(field, "invalid_value", f"{label} must be {shown}",
                         f"add '{field}: {shown}'")]  # fmt: skip
    if kind == "enum":
        allowed = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in value)
        return [_problem(field, "invalid_enum", f"{label} must be one of {allowed}")]
    if kind in ("pattern", "format", "minLength", "maxLength"):
        wanted = described or f"in the expected format ({kind} {value!r})"
        return [_problem(field, "invalid_format", f"{label} must be {wanted}", _hint(schema))]
    if kind in ("maxItems", "minItems"):
        code, bound = ("too_long", "at most") if kind == "maxItems" else ("too_short", "at least")
        return [_problem(field, code, f"{label} takes {bound} {value} entries")]
    if kind == "not" and isinstance(value, Mapping) and value.get("required"):
        # "not: {required: [x]}": x is the field that must not be there.
        field = _join(field, value["required"][0])
        return [_problem(field, "invalid_value", f"{field}: {described or 'not allowed here'}")]
    if kind in ("oneOf", "anyOf", "not") and described:
        return [_problem(field, "invalid_value", f"{label}: {described}")]
    message = f"{label}: {error.message}"
    return [_problem(field, "invalid", message[:_MAX_MESSAGE])]


# -- the structural checks without jsonschema ------------------------------------


def _resolve(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    while isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        schema = target if isinstance(target, Mapping) else {}
        ref = schema.get("$ref")
    return schema


_TYPES: Final[Mapping[str, type | tuple[type, ...]]] = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float), "null": type(None),
}  # fmt: skip


def _is(instance: object, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(instance, bool):
        return False
    expected = _TYPES.get(kind)
    return expected is None or isinstance(instance, expected)


def _walk(
    root: Mapping[str, Any],
    schema: Mapping[str, Any],
    instance: object,
    at: Sequence[str | int],
    found: list[Problem],
) -> None:
    schema = _resolve(root, schema)
    field = _path(at)
    label = field or "the document"
    kinds = schema.get("type")
    if kinds is not None:
        wanted = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(instance, str(k)) for k in wanted):
            found.append(_problem(field, "invalid_type", f"{label} must be {_type_name(kinds)}"))
            return
    if "const" in schema and instance != schema["const"]:
        found.append(_problem(field, "invalid_value", f"{label} must be {schema['const']}",
                              f"add '{field}: {schema['const']}'"))  # fmt: skip
    if "enum" in schema and instance not in schema["enum"]:
        allowed = ", ".join(map(str, schema["enum"]))
        found.append(_problem(field, "invalid_enum", f"{label} must be one of {allowed}"))
    if isinstance(instance, dict):
        required = list(schema.get("required", []))
        condition = schema.get("if")
        if isinstance(condition, Mapping) and "required" in condition:
            branch = "then" if all(k in instance for k in condition["required"]) else "else"
            required += _resolve(root, schema.get(branch, {})).get("required", [])
        for name in required:
            if name not in instance:
                found.append(_problem(_join(field, name), "required",
                                      f"{_join(field, name)} is required"))  # fmt: skip
        properties = schema.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                _walk(root, properties[key], value, [*at, key], found)
            elif schema.get("additionalProperties") is False:
                where = _join(field, key)
                found.append(
                    _problem(where, "unknown_field", f"unknown field {where!r}", _UNKNOWN_HINT)
                )
            elif isinstance(schema.get("additionalProperties"), Mapping):
                _walk(root, schema["additionalProperties"], value, [*at, key], found)
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(instance):
            _walk(root, schema["items"], item, [*at, index], found)
