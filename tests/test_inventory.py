"""Inventories are read as real Ansible reads them: compared with ansible-inventory itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from rollout.config.inventory import read_inventory
from rollout.errors import ConfigError

ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")


def ansible_view(path: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
    }
    done = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(path), "--list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def groups_of(view: dict) -> dict[str, set[str]]:
    def members(group: str) -> set[str]:
        entry = view.get(group, {})
        found = set(entry.get("hosts", []))
        for child in entry.get("children", []):
            found |= members(child)
        return found

    return {g: members(g) for g in view if g != "_meta"}


def test_ansible_inventory_is_installed() -> None:
    assert shutil.which(ANSIBLE_INVENTORY) or Path(ANSIBLE_INVENTORY).exists()


@pytest.mark.parametrize("path", sorted((REPO / "inventories").glob("*.yml")), ids=lambda p: p.stem)
def test_example_inventories_match_ansible(path: Path, tmp_path: Path) -> None:
    view = ansible_view(path, tmp_path)
    ours = read_inventory(path, path.name)
    theirs = groups_of(view)
    for group in ("edge", "ingest", "dashboards"):
        assert set(ours.groups[group]) == theirs[group] and theirs[group]
    hostvars = view["_meta"]["hostvars"]
    for name, host in ours.hosts.items():
        assert host.address == hostvars[name]["ansible_host"]
        assert dict(host.vars) == hostvars[name]


NESTED = """
all:
  vars: {tier: base, ansible_user: deploy}
  hosts:
    lone: {}
  children:
    plant:
      vars: {tier: plant}
      children:
        edge:
          vars: {tier: edge}
          hosts:
            gw1: {ansible_host: 127.0.4.1}
            gw2: {tier: host-own}
        ingest:
          hosts:
            in1:
    edge:
      hosts:
        gw3:
"""


def test_nested_groups_and_variable_precedence_match_ansible(tmp_path: Path) -> None:
    path = tmp_path / "nested.yml"
    path.write_text(NESTED)
    view = ansible_view(path, tmp_path)
    ours = read_inventory(path, "nested.yml")
    theirs = groups_of(view)
    for group in ("all", "plant", "edge", "ingest"):
        assert set(ours.groups[group]) == theirs[group], group
    for name, host in ours.hosts.items():
        assert dict(host.vars) == view["_meta"]["hostvars"].get(name, {}), name
    assert ours.hosts["gw1"].vars["tier"] == "edge" and ours.hosts["gw2"].vars["tier"] == "host-own"
    assert ours.hosts["gw1"].address == "127.0.4.1" and ours.hosts["in1"].address == "in1"


def test_group_cycles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yml"
    path.write_text("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n")
    with pytest.raises(ConfigError, match="groups contain each other"):
        read_inventory(path, "cycle.yml")
