"""Turning pydantic's validation errors into problems that name file, place and line."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError

from rollout.config.models.common import NAME_PATTERN
from rollout.config.models.inventory import GROUP_PATTERN, HOST_PATTERN
from rollout.config.models.notify import HIDDEN
from rollout.config.yamlfile import Path_, YamlDoc, format_path
from rollout.errors import ConfigError, Problem, shorten

M = TypeVar("M", bound=BaseModel)


def validate_doc(model: type[M], doc: YamlDoc, wrap: str | None = None) -> M:
    """Validate a parsed YAML document; ``wrap`` nests the data under one field first."""
    data = doc.data
    if data is None:
        raise ConfigError([doc.problem((), "file is empty", expected=f"a mapping ({_what(model)})")])
    if not isinstance(data, dict):
        found = type(data).__name__
        raise ConfigError([doc.problem((), "wrong top level", expected="a mapping of keys", found=found)])
    try:
        return model.model_validate({wrap: data} if wrap else data)
    except ValidationError as exc:
        problems = [_problem(doc, model, err, wrap) for err in exc.errors()]
        raise ConfigError(_dedupe(problems)) from None


def _what(model: type[BaseModel]) -> str:
    required = [name for name, f in model.model_fields.items() if f.is_required()]
    return "with keys " + ", ".join(required) if required else "of settings"


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Drop repeats, and a union's complaint about a parent when a child says more."""
    locations = {p.location for p in problems}
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        key = (problem.location, problem.message)
        deeper = any(
            loc.startswith(problem.location + ".") or loc.startswith(problem.location + "[")
            for loc in locations
            if problem.location
        )
        if key not in seen and not deeper:
            seen.add(key)
            out.append(problem)
    return out or problems[:1]


_PATTERNS = {
    NAME_PATTERN: "a name of lower-case letters, digits, '-' and '_', starting with a letter or digit",
    HOST_PATTERN: "a host name of letters, digits, '.', '-' and '_' (host ranges such as gw[1:4] are not supported)",
    GROUP_PATTERN: "an Ansible group name: letters, digits and '_', not starting with a digit",
}


def _expected(err: Any) -> str:
    pattern = (err.get("ctx") or {}).get("pattern")
    if err["type"] == "string_pattern_mismatch" and pattern in _PATTERNS:
        return _PATTERNS[pattern]
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")


def _problem(doc: YamlDoc, model: type[BaseModel], err: Any, wrap: str | None) -> Problem:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    if wrap and loc[:1] == (wrap,):
        loc = loc[1:]
    root = model.model_fields[wrap].annotation if wrap else model
    path = _resolve(doc.data, loc, err["type"], root)
    kind = err["type"]
    line = doc.line_of(path)
    where = format_path(path)
    if kind == "missing":
        return Problem(doc.file, where, line, message=f"missing required key {path[-1]!r}")
    if kind == "extra_forbidden":
        return _unknown_key(doc.file, where, line, str(path[-1]), model, loc, wrap)
    if kind == "union_tag_invalid":
        tags = err["ctx"]["expected_tags"]
        return Problem(
            doc.file,
            format_path(path + ("type",)),
            doc.line_of(path + ("type",)),
            f"one of {tags}",
            repr(err["ctx"]["tag"]),
            "unknown type",
        )
    expected = _expected(err)
    value = err.get("input")
    found = "" if isinstance(value, (dict, list)) and len(shorten(value)) > 40 else shorten(value)
    if kind == HIDDEN:  # a secret (a webhook's header, a URL's password): its validator says what may be shown
        found = str((err.get("ctx") or {}).get("found", ""))
    return Problem(doc.file, where, line, expected, found, "invalid value")


def _unknown_key(
    file: str, where: str, line: int | None, key: str, model: type[BaseModel], loc: Path_, wrap: str | None
) -> Problem:
    parent = _model_at(model, ((wrap,) if wrap else ()) + tuple(loc[:-1]))
    if parent is None:
        return Problem(file, where, line, message=f"unknown key {key!r}")
    allowed = sorted(parent.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return Problem(file, where, line, expected="one of: " + ", ".join(allowed), message=f"unknown key {key!r}{hint}")


def _resolve(data: Any, loc: tuple[str | int, ...], kind: str, model: Any) -> Path_:
    """Map pydantic's loc onto the document, walking the model beside it to skip union tags."""
    path: list[str | int] = []
    node, tp = data, model
    for i, part in enumerate(loc):
        chosen = _union_member(tp, part)
        if chosen is not None:  # a tag naming the union member, not a key of the document
            tp = chosen
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif i == len(loc) - 1 and kind == "missing":
            path.append(part)
        tp = _step(tp, part) if tp is not None else None
    return tuple(path)


def _union_member(tp: Any, part: str | int) -> Any:
    """The member a union error's loc part names: a discriminator value or a class name."""
    models = [m for m in _members(tp) if _is_model(m)] if tp is not None else []
    if len(_members(tp)) < 2 or not isinstance(part, str):
        return None
    for member in models:
        tag = member.model_fields.get("type")
        if member.__name__ == part or (tag is not None and part in typing.get_args(tag.annotation)):
            return member
    return None


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class found by following ``loc`` through field annotations."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    models = [c for c in _members(current) if _is_model(c)]
    return models[0] if len(models) == 1 else None


def _step(tp: Any, part: str | int) -> Any:
    for member in _members(tp):
        origin = typing.get_origin(member)
        if isinstance(part, int) and origin is list:
            return typing.get_args(member)[0]
        if isinstance(part, str) and origin is dict:
            return typing.get_args(member)[1]
        if _is_model(member) and isinstance(part, str):
            if part in member.model_fields:
                return member.model_fields[part].annotation
            tag = member.model_fields.get("type")
            if tag is not None and part in typing.get_args(tag.annotation):
                return member
    return None


def _members(tp: Any) -> list[Any]:
    """Flatten Annotated, Optional and Union into their member types."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _members(arg)]
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)
