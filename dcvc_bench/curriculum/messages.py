"""One line per curriculum problem: pydantic's first validation error as ``key.path: rule``
(with did-you-mean for unknown keys), plus how many more there are, and the custom error
the schema's cross-field rules raise. Pure Python."""

from __future__ import annotations

import difflib
import typing
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from dcvc_bench.curriculum.bounds import short_repr

_RULE_ERROR = "curriculum_rule"


def rule(message: str, *subloc: str | int) -> PydanticCustomError:
    """A cross-field rule violation. ``subloc`` points below the validated model, so the
    message names the offending key (``stages[0].epochs``), not just the table."""
    return PydanticCustomError(_RULE_ERROR, "{rule}", {"rule": message, "subloc": subloc})


def one_line(exc: ValidationError, data: dict[str, Any], root: type[BaseModel]) -> str:
    """The first error as ``key.path: rule``, plus how many more there are. Unknown keys
    come first: a misspelt key also makes its correct spelling look "missing"."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return _describe(errors[0], data, root) + more


def _describe(error: Any, data: dict[str, Any], root: type[BaseModel]) -> str:
    ctx = error.get("ctx") or {}
    loc = [*error["loc"], *ctx.get("subloc", ())]
    if error["type"].startswith("union_tag"):
        loc.append("type")
    path, owner = _walk(loc, data, root)
    return f"{_format_path(path) or '(top level)'}: {message(error, owner, path[-1] if path else None)}"


def _walk(loc: list[Any], data: Any, root: type[BaseModel]) -> tuple[list[str | int], Optional[type[BaseModel]]]:
    """Follow ``loc`` through the TOML data and the models in step. Parts that are not in
    the data (pydantic's union member names and tags) are dropped; the last part is kept
    (a missing key is not in the data either). Returns the clean path and the model that
    owns its last key (for did-you-mean)."""
    path: list[str | int] = []
    node, model, owner = data, root, root
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(part, str) and (last or (isinstance(node, dict) and part in node)):
            path.append(part)
            owner = model
            node = node.get(part) if isinstance(node, dict) else None
            model = _submodel(model, part, node)
    return path, owner


def _submodel(model: Optional[type[BaseModel]], key: str, value: Any) -> Optional[type[BaseModel]]:
    """The model class validating ``model.key`` (choosing a tagged-union member by ``type``)."""
    if model is None:
        return None
    field = next((f for n, f in model.model_fields.items() if (f.alias or n) == key), None)
    if field is None:
        return None
    members = _models_in(field.annotation)
    if len(members) > 1 and isinstance(value, dict):
        members = [m for m in members if value.get("type") in typing.get_args(m.model_fields["type"].annotation)]
    return members[0] if len(members) == 1 else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _format_path(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


_TYPE_NAMES = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false",
               "string_type": "a string", "list_type": "an array", "dict_type": "a table", "model_type": "a table",
               "model_attributes_type": "a table", "finite_number": "a finite number"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt"), "multiple_of": ("a multiple of", "multiple_of")}


def message(error: Any, owner: Optional[type[BaseModel]], key: str | int | None) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        allowed = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        if close:
            return f"unknown key; did you mean {close[0]!r}?"
        return "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "missing required key"
    if kind == _RULE_ERROR:
        return str(ctx["rule"])
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "literal_error":
        return f"must be {ctx['expected']}, got {show(value)}"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx['expected_tags']}, got {show(ctx['tag'])}"
    if kind == "union_tag_not_found":
        return "missing required key"
    if kind in _BOUNDS:
        words, name = _BOUNDS[kind]
        return f"must be {words} {ctx[name]}, got {show(value)}"
    if kind == "too_short" and isinstance(value, list):
        return f"must have at least {ctx['min_length']} entr{'y' if ctx['min_length'] == 1 else 'ies'}"
    if kind == "too_long" and isinstance(value, list):
        return f"must have at most {ctx['max_length']} entries, got {len(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}, got {show(value)}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (``true``, ``'x'``, ``[2, 5, 3]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    return short_repr(value)
