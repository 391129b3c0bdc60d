"""A plant's inventory once read: its hosts with every variable merged, and its groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Connection variables may carry secrets; templates see a host's other variables only.
_HIDDEN_PREFIXES = ("ansible_",)


def _no_groups() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    """``ansible_host`` when set, else the inventory name."""
    vars: Mapping[str, Any]
    """Every variable of the host merged as Ansible merges them, as ``ansible-inventory --list`` shows them."""

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
    """Group name -> sorted names of every host in it, children included (``all`` and ``ungrouped`` too)."""
    children: Mapping[str, tuple[str, ...]] = field(default_factory=_no_groups)
    """Group name -> its child groups, in the order Ansible lists them."""
    direct: Mapping[str, tuple[str, ...]] = field(default_factory=_no_groups)
    """Group name -> the hosts written in the group itself, in the order Ansible lists them."""

    def group_hosts(self, group: str) -> tuple[Host, ...]:
        return tuple(self.hosts[name] for name in self.groups.get(group, ()))
