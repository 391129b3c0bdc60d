"""YAML and JSON text read as Ansible's loader reads it, keeping the line of every key.

Ansible tries JSON first, then YAML 1.1 (PyYAML's safe schema: ``yes``/``on`` are booleans,
``0755`` an octal number, ``22:00`` the number 1320, ``2024-01-01`` a date) plus its own
tags ``!unsafe`` (a value never templated) and ``!vault`` (encrypted text). This loader
does the same, with the bounds of rollout's other YAML files: size, nesting and nodes
after aliases. Duplicate keys, which Ansible only warns about before keeping the last
one, are refused: a host written twice in one group is almost always a mistake.

Values then become what ``ansible-inventory --list`` prints, JSON's data model, because
templates, hashes and messages need exactly that: dates as ISO text, sets and ordered
pairs as lists, non-string keys as JSON writes them (``1`` -> ``"1"``, ``null`` -> ``"null"``)
and a vaulted value as ``{"__ansible_vault": ciphertext}``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from rollout.config.yamlfile import MAX_DEPTH, MAX_NODES, check_depth
from rollout.errors import ConfigError, Problem, shorten

_MAX_INT_BITS = 3322  # about 1000 decimal digits: JSON, messages and templates must write every number
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_VAULT_TAGS = ("!vault", "!vault-encrypted")
VAULT_KEY = "__ansible_vault"


class NotYaml(ConfigError):
    """The text is no YAML (inventory) at all: Ansible then tries the next format, INI."""


class Unsupported(ValueError):
    """A value Ansible cannot list either (``ansible-inventory --list`` fails on it)."""


class Lined(dict[Any, Any]):
    """A mapping that knows the line of each of its keys."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


def line_of(mapping: object, key: object) -> int | None:
    return mapping.lines.get(key) if isinstance(mapping, Lined) else None


@dataclass(frozen=True)
class Doc:
    file: str
    data: Any
    line: int | None
    """Where the document starts (None for JSON, read without positions)."""


def load(text: str, display: str) -> Doc:
    """One document, JSON when it parses as JSON (as Ansible tries first), else YAML 1.1."""
    try:
        data = json.loads(text, object_hook=_json_object)
    except (ValueError, RecursionError):  # not JSON, too deep, or a bad marker: YAML decides, as in Ansible
        return _Builder(display).document(text)
    try:  # JSON keeps no positions: borrow them from the same text read as YAML, which JSON nearly always is
        shadow = _Builder(display).document(text)
    except ConfigError:
        return Doc(display, data, None)
    return Doc(display, _lined(data, shadow.data), shadow.line)


def _lined(data: Any, shadow: Any) -> Any:
    """``data`` with the key lines of ``shadow``, the same document read as YAML."""
    if isinstance(data, dict) and isinstance(shadow, Lined):
        out = Lined()
        for key, value in data.items():
            out[key] = _lined(value, shadow.get(key))
            if key in shadow.lines:
                out.lines[key] = shadow.lines[key]
        return out
    if isinstance(data, list) and isinstance(shadow, list) and len(data) == len(shadow):
        return [_lined(v, s) for v, s in zip(data, shadow, strict=True)]
    return data


def _json_object(pairs: dict[str, Any]) -> Any:
    """Ansible's JSON decoder reads its own markers back as values (and a bad one sends the text to YAML)."""
    if "__ansible_unsafe" in pairs:
        return _marked_text(pairs["__ansible_unsafe"], "__ansible_unsafe")
    if VAULT_KEY in pairs:
        return {VAULT_KEY: _marked_text(pairs[VAULT_KEY], VAULT_KEY)}
    if "__ansible_type" in pairs:
        raise Unsupported("'__ansible_type' values (Ansible's serialized objects) are not read")
    return pairs


def _marked_text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise Unsupported(f"{key!r} must hold text, found {shorten(value)}")
    return value


def plain(value: Any) -> Any:
    """``value`` as ``ansible-inventory --list`` writes it (JSON's data model)."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        return {json_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    raise Unsupported(f"a value of type {type(value).__name__} ({shorten(value)})")


def json_key(key: Any) -> str:
    """A mapping key as JSON writes it: ``1`` -> ``"1"``, ``True`` -> ``"true"``, ``None`` -> ``"null"``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (int, float)):
        return json.dumps(key)
    raise Unsupported(f"a mapping key of type {type(key).__name__} ({shorten(key)}), which JSON cannot write")


_RESOLVED: dict[str, str] = {}
_MAX_RESOLVED = 8192


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader, YAML 1.1 resolvers untouched: the ones Ansible's loader uses."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        # Plant inventories repeat the same keys ('hosts', 'ansible_host', ...): remember what a plain
        # scalar resolves to (the tag depends on its text alone) rather than run the regexes again.
        if kind is not yaml.ScalarNode or not implicit[0]:
            return str(super().resolve(kind, value, implicit))
        tag = _RESOLVED.get(value)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(_RESOLVED) >= _MAX_RESOLVED:
                _RESOLVED.clear()
            _RESOLVED[value] = tag
        return tag


class _Builder:
    """Composed nodes to data: Ansible's constructors, with positions and bounds."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.budget = MAX_NODES
        self.depth = 0
        self.scalars = yaml.SafeLoader("")  # constructs scalars of resolved tags; resolves !unsafe's inner tag
        self.fast: dict[str, Callable[[yaml.ScalarNode], Any]] = {
            _TAG + "null": lambda node: None,
            _TAG + "bool": self.scalars.construct_yaml_bool,
            _TAG + "int": self.scalars.construct_yaml_int,
            _TAG + "float": self.scalars.construct_yaml_float,
            _TAG + "timestamp": self.scalars.construct_yaml_timestamp,
        }

    def fail(self, node: yaml.Node, message: str, expected: str = "", found: str = "") -> ConfigError:
        return ConfigError([Problem(self.display, "", node.start_mark.line + 1, expected, found, message)])

    def document(self, text: str) -> Doc:
        try:
            check_depth(text, self.display, _Loader)
            nodes = list(yaml.compose_all(text, Loader=_Loader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise NotYaml.one(self.display, f"invalid YAML: {exc.problem or exc.context}", line=line) from None
        except yaml.YAMLError as exc:
            raise NotYaml.one(self.display, f"invalid YAML: {exc}") from None
        if len(nodes) > 1:
            line = nodes[1].start_mark.line + 1
            raise NotYaml.one(self.display, "more than one YAML document", line=line, expected="one document")
        if not nodes:
            return Doc(self.display, None, None)
        return Doc(self.display, self.build(nodes[0]), nodes[0].start_mark.line + 1)

    def build(self, node: yaml.Node) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(node, f"document too large (over {MAX_NODES} nodes after expanding aliases)")
        if node.tag == _STR and type(node) is yaml.ScalarNode:  # most nodes: nothing to construct
            return node.value
        if node.tag == "!unsafe":  # the value as if untagged; rollout never templates values anyway
            return self.build(self._untagged(node))
        if node.tag in _VAULT_TAGS:
            return self._vault(node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if self.depth >= MAX_DEPTH:  # aliases and merge keys nest without the text doing so
            raise self.fail(node, f"nested too deeply (over {MAX_DEPTH} levels, aliases included)")
        self.depth += 1
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node)
            assert isinstance(node, yaml.SequenceNode)  # the composer makes no other kind
            return self._sequence(node)
        finally:
            self.depth -= 1

    def _untagged(self, node: yaml.Node) -> yaml.Node:
        tag = self.scalars.resolve(type(node), node.value, (True, False))  # type: ignore[no-untyped-call]
        return type(node)(tag, node.value, node.start_mark, node.end_mark)

    def _vault(self, node: yaml.Node) -> dict[str, str]:
        text = self.build(self._untagged(node))
        if not isinstance(text, str):
            raise self.fail(node, f"the {node.tag} tag needs text", expected="the ciphertext", found=shorten(text))
        return {VAULT_KEY: text}

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _TAG + "binary":
            raise self.fail(node, "binary values are not read", expected="text, numbers, lists or mappings")
        try:
            construct = self.fast.get(node.tag)
            value = construct(node) if construct else self.scalars.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.fail(node, f"invalid value: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise self.fail(node, f"invalid value: {exc}") from None
        except ValueError:  # an integer of more digits than Python converts
            raise self.fail(node, "number too long", expected="at most 1000 digits") from None
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x...: no digit limit, but no str()
            raise self.fail(node, "number too long", expected="at most 1000 digits")
        return value

    def _sequence(self, node: yaml.SequenceNode) -> list[Any]:
        if node.tag in (_TAG + "omap", _TAG + "pairs"):  # lists of [key, value], as Ansible lists them
            return [self._pair(item) for item in node.value]
        if node.tag != _TAG + "seq":
            raise self.fail(node, f"unknown tag {node.tag!r}", expected="YAML's standard tags, !unsafe or !vault")
        return [self.build(item) for item in node.value]

    def _pair(self, item: yaml.Node) -> list[Any]:
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            raise self.fail(item, "invalid !!omap or !!pairs entry", expected="a mapping of one key")
        key, value = item.value[0]
        return [self._key(key), self.build(value)]

    def _mapping(self, node: yaml.MappingNode) -> Any:
        if node.tag == _TAG + "set":  # a set's members, kept in the order written
            return list(self._own(node, Lined()))
        if node.tag not in (_TAG + "map", _TAG + "python/dict"):
            raise self.fail(node, f"unknown tag {node.tag!r}", expected="YAML's standard tags, !unsafe or !vault")
        merged = Lined()
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                for source in self._merge_sources(value_node):
                    for key, value in source.items():  # earlier sources win, own keys over all
                        if key not in merged:
                            merged[key] = value
                            merged.lines[key] = key_node.start_mark.line + 1
        return self._own(node, merged)

    def _own(self, node: yaml.MappingNode, out: Lined) -> Lined:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                continue
            key = self._key(key_node)
            if key in seen:
                raise self.fail(key_node, f"duplicate key {shorten(key)}", expected="each key once")
            seen.add(key)
            out[key] = self.build(value_node)
            out.lines[key] = key_node.start_mark.line + 1
        return out

    def _merge_sources(self, node: yaml.Node) -> list[dict[Any, Any]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            raise self.fail(node, "invalid merge key", expected="a mapping or a list of mappings")
        return [self.build(s) for s in sources]

    def _key(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "invalid key", expected="a text, number, boolean or null key", found="a collection")
        return self.build(node)
