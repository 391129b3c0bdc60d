"""YAML loading that remembers where every key came from.

Two departures from PyYAML's SafeLoader, both deliberate:

* Implicit typing follows YAML 1.2's core schema: ``22:00`` stays a string (YAML 1.1
  reads it as the base-60 integer 1320), ``no``/``on`` stay strings, dates stay strings,
  and a number with a leading zero (``0755``) stays a string.
* ``!vault`` (ansible-vault's tag) makes an encrypted value: a ``Vaulted``, never decrypted here.
* Duplicate keys are an error, and the number of nodes (after expanding aliases) is
  bounded, so a hostile file cannot blow up memory.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollout.config.secrets import VAULT_TAG, Vaulted
from rollout.errors import ConfigError, Problem, shorten

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
"""Nesting levels, aliases and merge keys included: the composer and the builder recurse per level."""
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_MAX_INT_BITS = 3322
"""About 1000 decimal digits; messages, JSON and templates must be able to write every number."""


# libyaml's parser when PyYAML was built with it (several times faster); same nodes, same marks.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Core12Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader with YAML 1.2 core-schema implicit resolvers."""


_Core12Loader.yaml_implicit_resolvers = {}
_RESOLVERS: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:0|[1-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
]
for _tag, _pattern, _first in _RESOLVERS:
    _Core12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
# An empty plain scalar has no first character; PyYAML looks it up under None.
_Core12Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [None])


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML document with the line of every key and item."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest known ancestor of ``path`` (1-based)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path_, message: str, expected: str = "", found: str = "") -> Problem:
        return Problem(self.file, format_path(path), self.line_of(path), expected, found, message)


def format_path(path: Path_) -> str:
    """``('layers', 1, 'checks')`` -> ``layers[1].checks``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # An empty key or one with control or bidi characters is quoted: a message must show what it names.
            name = part if part and part.isprintable() else repr(part)
            out += f".{name}" if out else name
    return out


def read_yaml(path: Path, display: str) -> YamlDoc:
    """Read and parse one YAML file; every failure is a ConfigError naming ``display``."""
    return parse_yaml_bytes(read_yaml_bytes(path, display), display)


def read_yaml_bytes(path: Path, display: str) -> bytes:
    """The bytes of a YAML file to parse: a regular file of bounded size."""
    return read_bounded(path, display, "a YAML file")


def read_bounded(path: Path, display: str, kind: str) -> bytes:
    """The bytes of a file to parse, ``kind`` saying what it should be: a regular file of at most
    ``MAX_FILE_BYTES``; every failure is a ConfigError naming ``display``."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError.one(display, "is a directory", expected=kind)
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, /dev/zero never end
            raise ConfigError.one(display, "not a regular file", expected=f"{kind} (not a FIFO, device or socket)")
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError.one(display, "file too large", expected=f"at most {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError.one(display, "file not found") from None
    except IsADirectoryError:  # became one since the stat
        raise ConfigError.one(display, "is a directory", expected=kind) from None
    except OSError as exc:
        raise ConfigError.one(display, f"cannot read: {exc.strerror}") from None


def parse_yaml_bytes(raw: bytes, display: str) -> YamlDoc:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError.one(display, f"not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, display)


def parse_yaml(text: str, display: str) -> YamlDoc:
    """Parse YAML text that must hold at most one document."""
    try:
        check_depth(text, display, _Core12Loader)
        nodes = list(yaml.compose_all(text, Loader=_Core12Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError.one(display, f"invalid YAML: {what}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError.one(display, f"invalid YAML: {exc}") from None
    if len(nodes) > 1:
        line = nodes[1].start_mark.line + 1
        raise ConfigError.one(display, "more than one YAML document", line=line, expected="one document")
    if not nodes:
        return YamlDoc(display, None, {})
    builder = _Builder(display)
    data = builder.build(nodes[0], ())
    return YamlDoc(display, data, builder.lines)


def check_depth(text: str, display: str, loader: type[yaml.SafeLoader]) -> None:
    """Refuse deep nesting from the event stream, before the (recursive) composer can overflow the stack."""
    # Every collection starts at one of these characters ('[', '{', a '- ' item, a ': ' or '? ' key):
    # with fewer of them than the bound, no nesting can exceed it, and the slower walk is not needed.
    if sum(map(text.count, "[{-:?")) <= MAX_DEPTH:
        return
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else None
                raise ConfigError.one(display, f"nested too deeply (over {MAX_DEPTH} levels)", line=line)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _Builder:
    """Turns a composed node tree into plain data, recording positions."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.lines: dict[Path_, int] = {}
        self.budget = MAX_NODES
        self.depth = 0
        self.constructor = yaml.SafeLoader("")  # constructs scalars from already-resolved tags

    def fail(self, node: yaml.Node, path: Path_, message: str, expected: str = "", found: str = "") -> ConfigError:
        line = node.start_mark.line + 1
        return ConfigError([Problem(self.display, format_path(path), line, expected, found, message)])

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(node, path, f"document too large (over {MAX_NODES} nodes after expanding aliases)")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if self.depth >= MAX_DEPTH:  # aliases and merge keys nest without the text doing so
            raise self.fail(node, path, f"nested too deeply (over {MAX_DEPTH} levels, aliases included)")
        self.depth += 1
        try:
            if node.tag == VAULT_TAG:
                return self._vaulted(node, path)
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self.depth -= 1

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag == _STR and isinstance(node, yaml.ScalarNode):
            return node.value  # what the constructor would return, without its generic dispatch (most scalars)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.fail(node, path, f"invalid value: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise self.fail(node, path, f"invalid value: {exc}") from None
        except ValueError:  # an integer of more digits than Python converts
            raise self.fail(node, path, "number too long", expected="at most 1000 digits") from None
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x...: no digit limit, but no str() either
            raise self.fail(node, path, "number too long", expected="at most 1000 digits")
        return value

    def _vaulted(self, node: yaml.Node, path: Path_) -> Vaulted:
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        if not text.lstrip().startswith("$ANSIBLE_VAULT;"):
            raise self.fail(
                node, path, "invalid !vault value", expected="ansible-vault ciphertext ($ANSIBLE_VAULT;...)"
            )
        return Vaulted(text, self.display, format_path(path), node.start_mark.line + 1)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        # "<<" merges are built here, not by PyYAML's flatten_mapping, whose copies escape the node budget.
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.update(self._merge(value_node, path))
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node, path)
            if key in out:
                raise self.fail(key_node, path + (key,), f"duplicate key {key!r}")
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,))
        return {**merged, **out}  # merged keys first, own keys win

    def _merge(self, node: yaml.Node, path: Path_) -> dict[str, Any]:
        """``<<: *a`` or ``<<: [*a, *b]``: the mappings to merge, earlier ones winning."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                raise self.fail(source, path, "invalid merge key", expected="a mapping or a list of mappings")
            self.depth += 1
            try:
                out.update(self.build(source, path))
            finally:
                self.depth -= 1
        return out

    def _key(self, node: yaml.Node, path: Path_) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, "invalid key", expected="a string key", found="a mapping or list")
        key = self._scalar(node, path)
        if not isinstance(key, str):
            raise self.fail(node, path, "invalid key", expected="a string key", found=shorten(key))
        return key
