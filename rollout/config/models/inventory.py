"""The YAML form of an Ansible inventory, read as Ansible reads it.

Only what ``ansible-inventory`` accepts is accepted here; host ranges
(``gw[01:04]``) are refused rather than half-supported.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from rollout.config.models.common import Model

HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
HostName = Annotated[str, Field(pattern=HOST_PATTERN)]
GroupName = Annotated[str, Field(pattern=GROUP_PATTERN)]
Vars = dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Any]


class InventoryGroup(Model):
    hosts: dict[HostName, Vars | None] | None = None
    children: dict[GroupName, InventoryGroup | None] | None = None
    vars: Vars | None = None


class InventoryFile(Model):
    """Top level: group names (normally just ``all``) to groups."""

    groups: dict[GroupName, InventoryGroup | None]
