"""An inventory checked against the project: the hosts of its layers reachable as rollout reaches them."""

from __future__ import annotations

from pathlib import PurePosixPath

from rollout.config.filenames import name_problem
from rollout.config.inventory.model import Host, Inventory
from rollout.config.models import ProjectConfig
from rollout.errors import ConfigError, Problem, shorten

CONNECTIONS = ("local", "ssh")


def _check_connections(inventory: Inventory, config: ProjectConfig, display: str) -> None:
    groups = {layer.inventory_group for layer in config.layers}
    hosts = sorted({h for g in groups for h in inventory.groups.get(g, ())})
    bad = [h for h in hosts if inventory.hosts[h].connection not in CONNECTIONS]
    if bad:
        found = ", ".join(f"{h}: {inventory.hosts[h].connection}" for h in bad)
        raise ConfigError.one(display, "unsupported ansible_connection", expected="local or ssh", found=found)


def _check_hosts(inventory: Inventory, config: ProjectConfig, display: str) -> None:
    """The variables rollout itself reaches a host with: refused now rather than failing a deploy."""
    groups = {layer.inventory_group for layer in config.layers}
    names = sorted({h for g in groups for h in inventory.groups.get(g, ())})
    problems = [p for name in names for p in _host_problems(inventory.hosts[name], display)]
    if problems:
        raise ConfigError(problems)


def _host_problems(host: Host, display: str) -> list[Problem]:
    rules = (
        ("ansible_host", _address_ok, "a host name or IP address (no spaces or control characters, no leading '-')"),
        ("ansible_port", _port_ok, "a TCP port (1-65535)"),
        ("rollout_root", _root_ok, "an absolute folder path without '..'"),
    )
    found = [
        Problem(display, message=f"host {host.name!r}: invalid {var}", expected=expected, found=shorten(host.vars[var]))
        for var, ok, expected in rules
        if var in host.vars and not ok(host.vars[var])
    ]
    # Ansible takes any text as a host name; a local host's files live in a folder named after it.
    why = "it holds '/'" if "/" in host.name else name_problem(host.name)
    if why:
        expected = "a host name that can name a folder (no '/', control characters, '.' or '..')"
        found.insert(0, Problem(display, message=f"host {host.name!r}: invalid host name: {why}", expected=expected))
    return found


def _address_ok(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 253
        and not value.startswith("-")  # would read as an option to ssh
        and value.isprintable()
        and value.split() == [value]  # no whitespace anywhere (split() cuts at every kind)
    )


def _port_ok(value: object) -> bool:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _root_ok(value: object) -> bool:
    if not isinstance(value, str) or "\x00" in value:
        return False
    path = PurePosixPath(value)
    return path.is_absolute() and ".." not in path.parts


def check_inventory(inventory: Inventory, config: ProjectConfig, inventory_rel: str) -> None:
    """Every layer's group has hosts, and every such host a supported connection and valid settings."""
    _check_connections(inventory, config, inventory_rel)
    _check_hosts(inventory, config, inventory_rel)
    missing = [layer for layer in config.layers if not inventory.groups.get(layer.inventory_group)]
    if missing:
        raise ConfigError(
            [
                Problem(
                    inventory_rel,
                    message=f"no hosts in group {layer.inventory_group!r}",
                    expected=f"the hosts of layer {layer.name!r} in group {layer.inventory_group!r}",
                )
                for layer in missing
            ]
        )
