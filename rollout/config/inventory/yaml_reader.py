"""The YAML (and JSON) inventory format, walked in the order it is written, as Ansible's plugin walks it.

Top-level keys are groups; a group has ``hosts``, ``children`` and ``vars``, each a mapping
or a single name (``hosts: web1``). A group written twice is one group: later variables
replace earlier ones, so the last value written wins. Where Ansible only warns and skips
part of the file (an unknown key in a group, a group that is not a mapping), rollout
refuses the file: what Ansible would silently drop is almost always a typo.
"""

from __future__ import annotations

import difflib
from typing import Any

from rollout.config.inventory import ranges
from rollout.config.inventory.tree import MAX_ENTRIES, Tree, Where
from rollout.config.inventory.yaml_doc import Doc, NotYaml, Unsupported, json_key, line_of, plain
from rollout.errors import ConfigError, shorten

SECTIONS = ("vars", "children", "hosts")


def read_yaml_inventory(doc: Doc, tree: Tree) -> None:
    data = doc.data
    if not data:
        raise NotYaml.one(doc.file, "no inventory in the file (empty)", line=doc.line, expected="groups of hosts")
    if not isinstance(data, dict):
        found = type(data).__name__
        raise NotYaml.one(doc.file, "not a YAML inventory", line=doc.line, expected="a mapping of groups", found=found)
    if data.get("plugin"):
        raise ConfigError.one(
            doc.file,
            f"inventory plugin configuration (plugin: {shorten(data['plugin'])}) is not read",
            line=line_of(data, "plugin"),
            expected="a static inventory: rollout does not run inventory plugins",
        )
    walker = _Walker(tree)
    for name, body in data.items():
        walker.group(name, body, line_of(data, name), (name,))


class _Walker:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def group(self, name: object, body: Any, line: int | None, where: tuple[object, ...]) -> str:
        if body is not None and not isinstance(body, dict):
            raise self.tree.fail(
                "a group must be a mapping", line, where, "hosts, children and vars (or nothing)", shorten(body)
            )
        name = self.tree.add_group(name, line, where)
        if body is None:
            return name
        sections = {key: self._section(body, key, where) for key in SECTIONS if key in body}
        for key in body:
            if key not in SECTIONS:
                raise self._unknown(body, key, where)
            value = sections[key]
            here, key_line = (*where, key), line_of(body, key)
            if value is None:
                continue
            if key == "vars":
                for var in value:
                    self.var(name, value, var, (*here, var))
            elif key == "children":
                for child, child_body in value.items():
                    child_line = line_of(value, child) or key_line
                    child = self.group(child, child_body, child_line, (*here, child))
                    self.tree.add_child(name, child, child_line)
            else:
                for pattern, host_vars in value.items():
                    self.hosts(name, pattern, host_vars, line_of(value, pattern) or key_line, (*here, pattern))
        return name

    def _section(self, body: dict[Any, Any], key: str, where: tuple[object, ...]) -> dict[Any, Any] | None:
        value = body[key]
        if isinstance(value, str):  # 'hosts: web1' is 'hosts: {web1: }', as Ansible reads it
            return {value: None}
        if value is not None and not isinstance(value, dict):
            line, here = line_of(body, key), (*where, key)
            raise self.tree.fail(f"invalid {key!r}", line, here, "a mapping (or one name)", shorten(value))
        return value

    def _unknown(self, body: dict[Any, Any], key: object, where: tuple[object, ...]) -> ConfigError:
        close = difflib.get_close_matches(key, SECTIONS, n=1) if isinstance(key, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return self.tree.fail(
            f"unknown key {shorten(key)}{hint}", line_of(body, key), (*where, key), "hosts, children or vars"
        )

    def hosts(self, group: str, pattern: object, host_vars: Any, line: int | None, where: tuple[object, ...]) -> None:
        if not isinstance(pattern, str):
            raise self.tree.fail("invalid host name", line, where, "text (quote numbers)", shorten(pattern))
        host_vars = host_vars or {}  # 'h:', 'h: {}' and even 'h: 0' carry no variables
        if not isinstance(host_vars, dict):
            raise self.tree.fail("invalid host variables", line, where, "a mapping of variables", shorten(host_vars))
        pattern_host, port = ranges.split_port(pattern)
        try:
            names = ranges.expand(pattern_host, MAX_ENTRIES - self.tree.entries)
        except ranges.PatternError as exc:
            raise self.tree.fail(f"invalid host pattern: {exc}", line, where, found=shorten(pattern)) from None
        values = [self.value(host_vars, var, (*where, var)) for var in host_vars]
        for host in names:
            self.tree.add_host(host, group, port, line, where)
            for key, value, var_line, var_where in values:
                self.tree.set_var(host, key, value, var_line, var_where)

    def value(self, mapping: dict[Any, Any], key: object, where: Where) -> tuple[str, Any, int | None, Where]:
        """A variable as it is kept: its key and value as ansible-inventory lists them."""
        line = line_of(mapping, key)
        try:
            return json_key(key), plain(mapping[key]), line, where
        except Unsupported as exc:
            raise self.tree.fail(f"unsupported value: {exc}", line, where) from None

    def var(self, entity: str, mapping: dict[Any, Any], key: object, where: Where) -> None:
        self.tree.set_var(entity, *self.value(mapping, key, where))
