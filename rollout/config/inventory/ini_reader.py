"""The INI inventory format, line by line as Ansible's INI plugin reads it.

Lines before any header are hosts of ``ungrouped``. ``[g]`` holds host lines (a host
pattern, then ``key=value`` words split as a POSIX shell splits them, ``#`` starting a
comment), ``[g:vars]`` holds ``key=value`` lines (the whole rest of the line is the value,
a ``#`` included), ``[g:children]`` holds group names, which may be declared further down.
Every value, on a host line or under ``:vars``, is read as a Python literal when it is one
(``80`` a number, ``[1, 2]`` a list, ``True`` a boolean; tuples and sets become lists,
``...`` and complex numbers stay text) and is text otherwise, as in Ansible.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass, field
from typing import Any

from rollout.config.inventory import ranges
from rollout.config.inventory.tree import MAX_ENTRIES, Tree
from rollout.config.inventory.yaml_doc import Unsupported, json_key
from rollout.errors import ConfigError, shorten

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_COMMENTS = ("#", ";")
_KINDS = ("hosts", "children", "vars")
_MAX_INT_BITS = 3322


@dataclass
class _Pending:
    """A group named before it is declared: as a child (declared later, or an error) or by ``[g:vars]``."""

    line: int
    kind: str
    parents: list[tuple[str, int]] = field(default_factory=list)


def read_ini_inventory(text: str, tree: Tree) -> None:
    _IniReader(tree).read(text.splitlines())  # splitlines(), as Ansible: line numbers agree with its messages


class _IniReader:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.group = "ungrouped"
        self.kind = "hosts"
        self.pending: dict[str, _Pending] = {}

    def fail(self, message: str, line: int, expected: str = "", found: str = "") -> ConfigError:
        where = f"[{self.group}]" if self.kind == "hosts" else f"[{self.group}:{self.kind}]"
        return self.tree.fail(message, line, where, expected, found)

    def read(self, lines: list[str]) -> None:
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith(_COMMENTS):
                continue
            header = _SECTION.match(line)
            if header:
                self.section(header.group(1), header.group(2) or "hosts", number)
            elif line.startswith("[") and line.endswith("]"):
                expected = "[group], [group:vars] or [group:children], without spaces"
                raise self.tree.fail("invalid section header", number, "", expected, shorten(line))
            elif self.kind == "hosts":
                self.host_line(line, number)
            elif self.kind == "vars":
                self.var_line(line, number)
            else:
                self.child_line(line, number)
        self.unresolved()

    def section(self, name: str, kind: str, line: int) -> None:
        if kind not in _KINDS:
            raise self.tree.fail(f"unknown section type {kind!r}", line, f"[{name}:{kind}]", "hosts, vars or children")
        if name not in self.tree.groups:
            if kind == "vars" and name not in self.pending:  # [g:vars] alone does not declare g
                self.pending[name] = _Pending(line, kind)
            self.tree.add_group(name, line, f"[{name}]")
        if name in self.pending and kind != "vars":
            if self.pending[name].kind == "children":
                self.adopt(name)
            else:
                del self.pending[name]
        self.group, self.kind = name, kind

    def adopt(self, group: str) -> None:
        """``group`` is declared now: it joins the parents that listed it before."""
        for parent, line in self.pending[group].parents:
            self.tree.add_child(parent, group, line)
            if parent in self.pending and self.pending[parent].kind == "children":
                self.adopt(parent)
        del self.pending[group]

    def host_line(self, line: str, number: int) -> None:
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise self.fail(f"cannot split the host line: {exc}", number, "a host, then key=value words") from None
        if not words:
            raise self.fail("empty host line", number, "a host, then key=value words")
        names, port = self.host_pattern(words[0], number)
        values = [self.assignment(word, number) for word in words[1:]]
        for name in names:
            self.tree.add_host(name, self.group, port, number, f"[{self.group}]")
            for key, value in values:
                self.tree.set_var(name, key, value, number, f"[{self.group}]")

    def host_pattern(self, pattern: str, number: int) -> tuple[list[str], int | None]:
        host, port = ranges.split_port(pattern)
        if pattern.strip().endswith(":") and port is None:
            raise self.fail("a host pattern cannot end in ':'", number, "host or host:port", pattern)
        try:
            names = ranges.expand(host, MAX_ENTRIES - self.tree.entries)
        except ranges.PatternError as exc:
            raise self.fail(f"invalid host pattern: {exc}", number, found=shorten(pattern)) from None
        if any(name.strip() == "---" for name in names):
            raise self.fail("'---' is no host name (it starts a YAML document)", number, "an INI inventory")
        return names, port

    def assignment(self, word: str, number: int) -> tuple[str, Any]:
        if "=" not in word:
            raise self.fail("not a host variable", number, "key=value words after the host", shorten(word))
        key, text = word.split("=", 1)
        return key, self.value(text, number)

    def var_line(self, line: str, number: int) -> None:
        if "=" not in line:
            raise self.fail("not a variable", number, "key=value", shorten(line))
        key, text = (part.strip() for part in line.split("=", 1))
        self.tree.set_var(self.group, key, self.value(text, number), number, f"[{self.group}:vars]")

    def value(self, text: str, number: int) -> Any:
        try:
            return ini_value(text)
        except Unsupported as exc:
            raise self.fail(f"unsupported value: {exc}", number, found=shorten(text)) from None

    def child_line(self, line: str, number: int) -> None:
        match = _GROUP_NAME.match(line)
        if not match:
            raise self.fail("not a group name", number, "one group name a line", shorten(line))
        child = match.group(1)
        if child in self.tree.groups:
            self.tree.add_child(self.group, child, number)
        else:
            self.pending.setdefault(child, _Pending(number, "children")).parents.append((self.group, number))

    def unresolved(self) -> None:
        for name, pending in self.pending.items():
            if pending.kind == "vars":
                raise self.tree.fail(
                    f"[{name}:vars] for group {name!r}, which is declared nowhere",
                    pending.line,
                    f"[{name}:vars]",
                    f"[{name}] or [{name}:children] somewhere in the file",
                )
            parent = pending.parents[-1][0]
            raise self.tree.fail(
                f"[{parent}:children] lists group {name!r}, which is declared nowhere",
                pending.line,
                f"[{parent}:children]",
                f"[{name}] or [{name}:children] somewhere in the file",
            )


def ini_value(text: str) -> Any:
    """A Python literal when ``text`` is one, else the text itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # '1.2.3' and the like are text, quietly
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, RecursionError, MemoryError) as exc:  # '{[]: 1}', deep nesting: Ansible fails too
        raise Unsupported(f"not a value Ansible can read ({type(exc).__name__})") from None
    return _coerced(value)


def _coerced(value: Any) -> Any:
    """What Ansible keeps of a literal: JSON's types, a few Python ones turned to text."""
    if isinstance(value, (list, tuple, set)):
        return [_coerced(v) for v in value]
    if isinstance(value, dict):
        return {json_key(k): _coerced(v) for k, v in value.items()}
    if value is Ellipsis or isinstance(value, complex):
        return "..." if value is Ellipsis else str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise Unsupported("bytes that are not UTF-8") from None
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise Unsupported("a number of more than 1000 digits")
    return value
