"""A plant's hosts and groups, read from its YAML Ansible inventory as Ansible reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rollout.config.models import InventoryFile, InventoryGroup
from rollout.config.models.validation import validate_doc
from rollout.config.yamlfile import read_yaml
from rollout.errors import ConfigError

# Connection variables may carry secrets; templates see a host's other variables only.
_HIDDEN_PREFIXES = ("ansible_",)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    """``ansible_host`` when set, else the inventory name."""
    vars: Mapping[str, Any]

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection", "ssh"))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str | None:
        user = self.vars.get("ansible_user")
        return str(user) if user is not None else None

    @property
    def key_file(self) -> str | None:
        key = self.vars.get("ansible_ssh_private_key_file") or self.vars.get("ansible_private_key_file")
        return str(key) if key else None

    @property
    def root(self) -> str | None:
        """``rollout_root``: a folder every target of this host lives under (default: '/')."""
        root = self.vars.get("rollout_root")
        return str(root) if root else None

    def template_view(self) -> dict[str, Any]:
        public = {k: v for k, v in self.vars.items() if not k.startswith(_HIDDEN_PREFIXES)}
        return {"name": self.name, "address": self.address, "vars": public}


@dataclass(frozen=True)
class Inventory:
    file: str
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]
    """Group name -> sorted names of every host in it, children included."""

    def group_hosts(self, group: str) -> tuple[Host, ...]:
        return tuple(self.hosts[name] for name in self.groups.get(group, ()))


@dataclass
class _Group:
    hosts: dict[str, dict[str, Any]]
    children: set[str]
    vars: dict[str, Any]


def read_inventory(path: Path, display: str) -> Inventory:
    """Read a YAML inventory; INI inventories are refused with a clear message."""
    if path.suffix not in (".yml", ".yaml"):
        raise ConfigError.one(display, "unsupported inventory format", expected="a YAML inventory (.yml or .yaml)")
    doc = read_yaml(path, display)
    model = validate_doc(InventoryFile, doc, wrap="groups")
    groups: dict[str, _Group] = {}
    for name, group in model.groups.items():
        _collect(name, group, groups)
    groups.setdefault("all", _Group({}, set(), {}))
    groups["all"].children |= {g for g in groups if g != "all"}
    members = {name: _members(name, groups, display, ()) for name in groups}
    depth = {g: _depth(g, groups) for g in groups}
    hosts = {name: _host(name, groups, members, depth) for name in sorted(members["all"])}
    return Inventory(
        display,
        MappingProxyType(hosts),
        MappingProxyType({g: tuple(sorted(m)) for g, m in members.items()}),
    )


def _collect(name: str, group: InventoryGroup | None, out: dict[str, _Group]) -> None:
    """Merge every definition of a group, as Ansible does when a name appears twice."""
    entry = out.setdefault(name, _Group({}, set(), {}))
    if group is None:
        return
    for host, host_vars in (group.hosts or {}).items():
        entry.hosts.setdefault(host, {}).update(host_vars or {})
    entry.vars.update(group.vars or {})
    for child, child_group in (group.children or {}).items():
        entry.children.add(child)
        _collect(child, child_group, out)


def _members(name: str, groups: dict[str, _Group], display: str, trail: tuple[str, ...]) -> set[str]:
    if name in trail:
        cycle = " -> ".join(trail + (name,))
        raise ConfigError.one(display, f"groups contain each other: {cycle}", expected="groups without cycles")
    group = groups[name]
    found = set(group.hosts)
    for child in group.children:
        found |= _members(child, groups, display, trail + (name,))
    return found


def _host(name: str, groups: dict[str, _Group], members: dict[str, set[str]], depth: dict[str, int]) -> Host:
    # Ansible's order: 'all' first, then groups by depth, then by name; host vars last.
    merged: dict[str, Any] = {}
    for group in sorted((g for g in groups if name in members[g]), key=lambda g: (depth[g], g)):
        merged.update(groups[group].vars)
    for entry in groups.values():
        merged.update(entry.hosts.get(name, {}))
    address = str(merged.get("ansible_host", name))
    return Host(name, address, MappingProxyType(merged))


def _depth(name: str, groups: dict[str, _Group]) -> int:
    if name == "all":
        return 0
    parents = [g for g, grp in groups.items() if name in grp.children and g != "all"]
    return 1 + max((_depth(p, groups) for p in parents), default=0)
