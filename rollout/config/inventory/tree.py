"""The groups and hosts an inventory file declares, built as Ansible's inventory data builds them.

Readers call ``add_group``, ``add_host``, ``set_var`` and ``add_child`` in the order the file
is written; ``finish`` then does what Ansible does once every source is read: groups
nobody contains go under ``all``, hosts in no group but ``all`` go to ``ungrouped`` (and
leave it once they are in another group), and every host's variables are merged:

    all < other groups by (depth from all, ansible_group_priority, name) < group_vars/all
    < group_vars of the other groups, same order < the host's own < host_vars/

Each step replaces whole top-level variables (Ansible's default ``hash_behaviour``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rollout.config.inventory.model import Host, Inventory
from rollout.errors import ConfigError, shorten

MAX_GROUPS = 10_000
MAX_ENTRIES = 200_000
"""Hosts written (ranges expanded) in one inventory: a range such as h[0:99999999] is refused, not built."""
MAX_MEMBERSHIPS = 2_000_000
"""Host-in-group pairs once children are followed: deep chains of groups over many hosts are refused."""

# Names ansible-inventory leaves out of what it lists: Ansible sets them itself at run time.
INTERNAL_VARS = frozenset(
    "ansible_async_path ansible_collection_name ansible_config_file ansible_dependent_role_names ansible_diff_mode "
    "ansible_facts ansible_forks ansible_inventory_sources ansible_limit ansible_play_batch ansible_play_hosts "
    "ansible_play_hosts_all ansible_play_role_names ansible_playbook_python ansible_role_name ansible_role_names "
    "ansible_run_tags ansible_skip_tags ansible_verbosity ansible_version inventory_dir inventory_file "
    "inventory_hostname inventory_hostname_short groups group_names hostvars playbook_dir play_hosts role_name "
    "role_names role_path role_uuid".split()
)
PRIORITY = "ansible_group_priority"

VarsSource = Callable[[str, str], dict[str, Any]]
"""``(kind, name) -> variables`` of group_vars/ (kind 'group') or host_vars/ (kind 'host')."""
Where = str | tuple[object, ...]
"""Where in the file, for messages: text, or the keys leading there (formatted only when a message needs them)."""


def where_text(where: Where) -> str:
    if isinstance(where, str):
        return where
    # An empty key, or one with control or bidi characters, is quoted: a message must show what it names.
    return ".".join(p if isinstance(p, str) and p and p.isprintable() else shorten(p) for p in where)


@dataclass
class _Group:
    name: str
    line: int | None
    vars: dict[str, Any] = field(default_factory=dict)
    priority: int = 1
    hosts: dict[str, None] = field(default_factory=dict)  # insertion-ordered sets
    children: dict[str, int | None] = field(default_factory=dict)  # child -> line of the edge
    parents: dict[str, None] = field(default_factory=dict)


@dataclass
class _Host:
    name: str
    line: int | None
    vars: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, None] = field(default_factory=dict)  # groups it is written in


class Tree:
    """One inventory file's groups and hosts, before ``finish`` merges them."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.groups: dict[str, _Group] = {name: _Group(name, None) for name in ("all", "ungrouped")}
        self.hosts: dict[str, _Host] = {}
        self.entries = 0
        self.add_child("all", "ungrouped", None)

    def fail(
        self, message: str, line: int | None, where: Where = "", expected: str = "", found: str = ""
    ) -> ConfigError:
        return ConfigError.one(self.display, message, where_text(where), line, expected, found)

    def add_group(self, name: object, line: int | None, where: Where = "") -> str:
        if not isinstance(name, str) or not name:
            raise self.fail("invalid group name", line, where, "a non-empty string", shorten(name))
        if name not in self.groups:
            if len(self.groups) >= MAX_GROUPS:
                raise self.fail(f"more than {MAX_GROUPS} groups", line, where)
            self.groups[name] = _Group(name, line)
        return name

    def add_host(self, name: str, group: str, port: int | None, line: int | None, where: Where = "") -> None:
        if not name:
            raise self.fail("empty host name", line, where, "a host name")
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise self.fail(f"more than {MAX_ENTRIES} hosts written (ranges expanded)", line, where)
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = _Host(name, line)
            if port:  # only where the host first appears, and ':0' sets nothing: as Ansible does
                host.vars["ansible_port"] = port
        self.groups[group].hosts[name] = None
        host.groups[group] = None

    def set_var(self, entity: str, key: str, value: Any, line: int | None, where: Where = "") -> None:
        """A variable of a group or, when no group has that name, of a host (Ansible looks groups up first)."""
        group = self.groups.get(entity)
        if group is None:
            self.hosts[entity].vars[key] = value
        elif key == PRIORITY:  # not a variable: an order among groups of the same depth
            group.priority = self._priority(value, line, where)
        else:
            group.vars[key] = value

    def _priority(self, value: Any, line: int | None, where: Where) -> int:
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            raise self.fail(f"invalid {PRIORITY}", line, where, "a whole number", shorten(value)) from None

    def add_child(self, parent: str, child: str, line: int | None) -> None:
        """``child`` (a group already added) into ``parent``; cycles are found in ``finish``."""
        if child not in self.groups[parent].children:
            self.groups[parent].children[child] = line
            self.groups[child].parents[parent] = None

    def finish(self, outside: VarsSource | None) -> Inventory:
        """Ansible's last steps after reading: roots under ``all``, ``ungrouped``, merged variables."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name, group.line)
        self._refuse_cycles()
        closure = _Closure(self)
        left = self._reconcile_ungrouped(closure)
        depth = _depths(self)
        hosts = {}
        for name in sorted(self.hosts):
            if "all" not in closure.of_host(name):  # it left 'ungrouped', its only group: Ansible lists it nowhere
                continue
            # A host that left 'ungrouped' loses its variables even through a child group of it, as in Ansible.
            skip = {"all", "ungrouped"} if name in left else {"all"}
            groups = sorted(closure.of_host(name) - skip, key=lambda g: (depth[g], self.groups[g].priority, g))
            hosts[name] = self._host(name, groups, outside)
        members = closure.members()
        return Inventory(
            self.display,
            MappingProxyType(hosts),
            MappingProxyType({g: tuple(sorted(members[g])) for g in self.groups}),
            MappingProxyType({g: tuple(grp.children) for g, grp in self.groups.items()}),
            MappingProxyType({g: tuple(grp.hosts) for g, grp in self.groups.items()}),
        )

    def _reconcile_ungrouped(self, closure: _Closure) -> set[str]:
        """Hosts in no group but ``all`` join ``ungrouped``; those also in another group leave it."""
        ungrouped = self.groups["ungrouped"]
        left: set[str] = set()
        for name, host in self.hosts.items():
            groups = closure.of_host(name)
            if "ungrouped" in groups:
                if groups - {"all", "ungrouped"} and name in ungrouped.hosts:
                    del ungrouped.hosts[name]
                    del host.groups["ungrouped"]
                    left.add(name)
                    closure.refresh(name)
            elif groups <= {"all"} and name in self.groups:
                # Ansible adds by name, and a group of that name wins: the group joins 'ungrouped', not the host.
                self.add_child("ungrouped", name, host.line)
                self._refuse_cycles()
                closure.reset()
            elif groups <= {"all"}:
                ungrouped.hosts[name] = None
                host.groups["ungrouped"] = None
                closure.refresh(name)
        return left

    def _host(self, name: str, groups: list[str], outside: VarsSource | None) -> Host:
        merged = dict(self.groups["all"].vars)
        for group in groups:
            merged.update(self.groups[group].vars)
        if outside is not None:
            merged.update(outside("group", "all"))
            for group in groups:
                merged.update(outside("group", group))
        merged.update(self.hosts[name].vars)
        if outside is not None:
            merged.update(outside("host", name))
        for internal in INTERNAL_VARS.intersection(merged):
            del merged[internal]
        return Host(name, str(merged.get("ansible_host", name)), MappingProxyType(merged))

    def _refuse_cycles(self) -> None:
        """Ansible refuses a group that contains itself, however far down; so do we, naming the edge."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for start in self.groups:
            if start in state:
                continue
            path = [start]
            stack = [iter(self.groups[start].children)]
            state[start] = 1
            while stack:
                child = next(stack[-1], None)
                if child is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(child) == 1:
                    self._cycle(path[path.index(child) :] + [child])
                elif child not in state:
                    state[child] = 1
                    path.append(child)
                    stack.append(iter(self.groups[child].children))

    def _cycle(self, cycle: list[str]) -> None:
        line = self.groups[cycle[-2]].children[cycle[-1]]
        raise self.fail(f"groups contain each other: {' -> '.join(cycle)}", line, expected="groups without cycles")


class _Closure:
    """Every group each host is in (children followed upward), and every host each group holds."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._ancestors: dict[str, frozenset[str]] = {}
        self._hosts: dict[str, set[str]] = {}
        self._work = 0
        self.reset()

    def reset(self) -> None:
        """Everything again, after a group moved."""
        self._ancestors.clear()
        for name in self.tree.hosts:
            self.refresh(name)

    def _count(self, work: int) -> None:
        # Every step here is a host-in-group pair or less: bounded, so a hostile chain is refused, not walked.
        self._work += work
        if self._work > MAX_MEMBERSHIPS:
            raise self.tree.fail(f"inventory too large: more than {MAX_MEMBERSHIPS} host-in-group pairs", None)

    def refresh(self, host: str) -> set[str]:
        """The groups ``host`` is in, from the groups it is written in."""
        found: set[str] = set()
        for group in self.tree.hosts[host].groups:
            found |= self.ancestors(group)
        self._count(len(found))
        self._hosts[host] = found
        return found

    def ancestors(self, group: str) -> frozenset[str]:
        """The group and every group above it, kept only for groups hosts are written in."""
        known = self._ancestors.get(group)
        if known is None:
            seen, todo = {group}, [group]
            while todo:  # iterative: chains of groups can be long
                for parent in self.tree.groups[todo.pop()].parents:
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            self._count(len(seen))
            known = self._ancestors[group] = frozenset(seen)
        return known

    def of_host(self, name: str) -> set[str]:
        return self._hosts[name]

    def members(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {g: set() for g in self.tree.groups}
        for host, groups in self._hosts.items():
            for group in groups:
                out[group].add(host)
        return out


def _depths(tree: Tree) -> dict[str, int]:
    """Longest path from ``all``: the depth Ansible sorts groups by (a group under two parents takes the deeper)."""
    indegree = {g: len(grp.parents) for g, grp in tree.groups.items()}
    depth = dict.fromkeys(tree.groups, 0)
    ready = [g for g, n in indegree.items() if n == 0]
    while ready:
        name = ready.pop()
        for child in tree.groups[name].children:
            depth[child] = max(depth[child], depth[name] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return depth
