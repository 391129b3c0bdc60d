"""Merging values base < archetype < plant, remembering which layer set every value.

The rule, in full:

* A mapping merges into a mapping key by key, recursively.
* Anything else replaces what was there: a list is replaced whole, never appended to or
  merged item by item (as in Helm), so a plant's list reads exactly as written.
* ``null`` in an overlay replaces any value with null.
* An overlay cannot change the kind of a value (mapping, list, scalar) the base set, and
  cannot introduce a key the base does not have, unless the base declares that mapping
  open by leaving it empty (``sensors: {}``); everything under a key an overlay added
  is the overlay's own. This catches a misspelt key instead of silently ignoring it.
"""

from __future__ import annotations

import copy
import difflib
import marshal
from dataclasses import dataclass
from typing import Any

from rollout.config.yamlfile import Path_, YamlDoc, format_path
from rollout.errors import ConfigError, Problem, shorten


@dataclass(frozen=True)
class Source:
    """Where a value came from: the layer (``base``, ``archetype:X``, ``plant:Y``), file, line."""

    layer: str
    file: str
    line: int | None

    def describe(self) -> str:
        return f"{self.layer} ({self.file}:{self.line})" if self.line else f"{self.layer} ({self.file})"


@dataclass(frozen=True)
class MergedValues:
    values: dict[str, Any]
    sources: dict[Path_, Source]
    """Every leaf (scalar, list or empty mapping) -> the layer that set it."""

    def leaves(self) -> list[tuple[Path_, Any, Source]]:
        return [(path, lookup(self.values, path), self.sources[path]) for path in sorted(self.sources, key=_sort_key)]


def _sort_key(path: Path_) -> tuple[str, ...]:
    return tuple(f"{p:09d}" if isinstance(p, int) else p for p in path)


def lookup(values: Any, path: Path_) -> Any:
    for part in path:
        values = values[part]
    return values


def merge_values(base: YamlDoc, overlays: list[tuple[str, YamlDoc]]) -> MergedValues:
    """Merge base values with overlays applied in order; every problem is reported at once."""
    values, sources = _base_alone(base)
    problems: list[Problem] = []
    for layer, doc in overlays:
        data = _mapping_or_empty(doc)
        base_data = values_base(base)
        _merge(values, data, base_data, not base_data, (), _Ctx(layer, doc, sources, problems))
    if problems:
        raise ConfigError(problems)
    return MergedValues(values, sources)


_last_base: tuple[YamlDoc, dict[str, Any], dict[Path_, Source]] | None = None
"""The base document last merged, with its values and sources: every plant starts from them."""


def _base_alone(base: YamlDoc) -> tuple[dict[str, Any], dict[Path_, Source]]:
    """Fresh copies of the base's values and sources, worked out once per base, not once per plant."""
    global _last_base
    if _last_base is None or _last_base[0] is not base:  # identity: the cache keeps ``base`` alive
        values = _mapping_or_empty(base)
        sources: dict[Path_, Source] = {}
        _mark(sources, (), values, "base", base)
        _last_base = (base, values, sources)
    return plain_copy(_last_base[1]), dict(_last_base[2])


def plain_copy(value: Any) -> Any:
    """A deep copy of plain data (what YAML and inventories give), several times faster than deepcopy."""
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:  # not plain data after all
        return copy.deepcopy(value)


def values_base(base: YamlDoc) -> dict[str, Any]:
    return base.data if isinstance(base.data, dict) else {}


def _mapping_or_empty(doc: YamlDoc) -> dict[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise ConfigError(
            [doc.problem((), "wrong top level", expected="a mapping of values", found=type(doc.data).__name__)]
        )
    copied: dict[str, Any] = plain_copy(doc.data)
    return copied


@dataclass
class _Ctx:
    layer: str
    doc: YamlDoc
    sources: dict[Path_, Source]
    problems: list[Problem]


def _merge(target: dict[str, Any], overlay: dict[str, Any], base: Any, open_: bool, path: Path_, ctx: _Ctx) -> None:
    """Merge ``overlay`` into ``target``; ``base`` is the base's value at the same place."""
    for key, value in overlay.items():
        here = path + (key,)
        base_child = base.get(key) if isinstance(base, dict) else None
        if key not in target:
            if not open_:
                ctx.problems.append(_unknown(ctx, here, target))
                continue
            ctx.sources.pop(path, None)  # an open mapping is no longer an empty leaf
            target[key] = plain_copy(value)
            _mark(ctx.sources, here, value, ctx.layer, ctx.doc)
            continue
        current = target[key]
        if isinstance(current, dict) and isinstance(value, dict):
            child_open = not isinstance(base, dict) or key not in base or base_child == {}
            _merge(current, value, base_child, child_open, here, ctx)
            continue
        if value is not None and current is not None and _kind(current) != _kind(value):
            ctx.problems.append(
                ctx.doc.problem(
                    here,
                    "changes the kind of a base value",
                    expected=_kind(current),
                    found=f"{_kind(value)} {shorten(value)}",
                )
            )
            continue
        _forget(ctx.sources, here, current)
        target[key] = plain_copy(value)
        _mark(ctx.sources, here, value, ctx.layer, ctx.doc)


def _unknown(ctx: _Ctx, path: Path_, siblings: dict[str, Any]) -> Problem:
    close = difflib.get_close_matches(str(path[-1]), [str(k) for k in siblings], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    parent = format_path(path[:-1]) or "the top level"
    return ctx.doc.problem(
        path,
        f"key {path[-1]!r} is not in the base values{hint}",
        expected=f"a key the base defines under {parent} (or an open mapping: {{}} in the base)",
    )


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a scalar"


def _forget(sources: dict[Path_, Source], path: Path_, current: Any) -> None:
    """Drop the sources of ``current``, the value at ``path``: only a filled mapping has any below it."""
    if not (isinstance(current, dict) and current):
        sources.pop(path, None)
        return
    for known in [p for p in sources if p[: len(path)] == path]:
        del sources[known]


def _mark(sources: dict[Path_, Source], path: Path_, value: Any, layer: str, doc: YamlDoc) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _mark(sources, path + (key,), child, layer, doc)
    elif path:
        sources[path] = Source(layer, doc.file, doc.line_of(path))
