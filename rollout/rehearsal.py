"""Rehearsal: the whole staged rollout against simulated copies of every plant.

Each host of each plant becomes a folder on this machine (local transport) with its own
loopback address, so that bundles render with their real overlays and services bind and
answer their real checks here, and no real plant is touched. The copies start empty: a
rehearsal is a first install of the release everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from .inventory import Host, Inventory
from .project import Plant, Project

REHEARSAL_NET = "127.77"


def rehearsal_project(project: Project, root: Path) -> Project:
    """The project with every host made a local folder under ``root`` at a loopback address."""
    plants: dict[str, Plant] = {}
    serial = 0
    for name, plant in project.plants.items():
        hosts: dict[str, Host] = {}
        for host_name, host in plant.inventory.hosts.items():
            serial += 1
            address = f"{REHEARSAL_NET}.{serial // 250}.{serial % 250 + 1}"
            folder = root / name / host_name
            variables = {
                **host.vars,
                "ansible_connection": "local",
                "ansible_host": address,
                "rollout_root": str(folder),
            }
            hosts[host_name] = Host(host_name, address, MappingProxyType(variables))
        inventory = Inventory(plant.inventory.file, MappingProxyType(hosts), plant.inventory.groups)
        plants[name] = replace(plant, inventory=inventory)
    return replace(project, plants=MappingProxyType(plants))
