"""Names from Ansible inventories, as rollout's own settings refer to them.

Inventories themselves are read by ``rollout.config.inventory``, exactly as Ansible reads them (YAML,
INI, ranges, group_vars/ and host_vars/), with errors that name file and line; no model
validates them, since their shape depends on the order they are written in.
"""

from __future__ import annotations

HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"
"""A conventional DNS-style host name. Inventories may use any name Ansible accepts."""
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
"""A group a layer of ``rollout.yaml`` deploys to (``layers[].group``): a valid Ansible variable-style name."""
