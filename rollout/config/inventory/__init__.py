"""A plant's hosts and groups, read from its Ansible inventory exactly as Ansible reads it.

Forms read: YAML (and JSON) inventories, INI inventories, host ranges (``www[01:50]``,
``db-[a:f]``, ``[1:9:2]``) and ``group_vars/`` and ``host_vars/`` beside the inventory file,
with Ansible's default settings (no ansible.cfg). The file's extension picks the format as
Ansible's plugins do: ``.yml``, ``.yaml``, ``.json`` and none are tried as YAML first, then,
when the text is no YAML inventory at all, as INI; any other extension is INI.

Refused, with a message: dynamic inventory scripts and inventory plugin configurations
(rollout runs nothing to learn its hosts), TOML inventories, vault-encrypted files, and
what Ansible only warns about before skipping it (an unknown key in a group, a group that
is not a mapping, a duplicate YAML key). ``tests/test_inventory.py`` holds every reading
to ``ansible-inventory --list`` over a corpus of inventories.

Kept fast on purpose (ten thousand plants load in seconds): no ansible import here.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from rollout.config.inventory.ini_reader import read_ini_inventory
from rollout.config.inventory.model import Host, Inventory
from rollout.config.inventory.source import is_script, read_bytes, text_of
from rollout.config.inventory.tree import Tree
from rollout.config.inventory.vars_dirs import VarsDirs
from rollout.config.inventory.yaml_doc import NotYaml, load
from rollout.config.inventory.yaml_reader import read_yaml_inventory
from rollout.errors import ConfigError

__all__ = ["Host", "Inventory", "read_inventory"]

YAML_EXTENSIONS = (".yml", ".yaml", ".json")


def read_inventory(path: Path, display: str, raw: bytes | None = None) -> Inventory:
    """Read the inventory file at ``path`` (``display`` names it in messages) and the variables beside it;
    ``raw``: the file's bytes, when the caller has read them already."""
    raw = read_bytes(path, display) if raw is None else raw
    if is_script(path, raw):
        raise ConfigError.one(
            display, "executable inventory script is not run", expected="a static YAML or INI inventory"
        )
    if path.suffix == ".toml":
        raise ConfigError.one(display, "TOML inventories are not read", expected="a YAML or INI inventory")
    tree = _parse(path.suffix, text_of(raw, display), display)
    folder = str(PurePosixPath(display).parent)
    return tree.finish(VarsDirs.beside(path.parent, "" if folder == "." else folder))


def _parse(suffix: str, text: str, display: str) -> Tree:
    if suffix and suffix not in YAML_EXTENSIONS:  # case matters, as for Ansible: '.YML' is INI
        return _ini(text, display)
    try:
        return _yaml(text, display)
    except NotYaml as not_yaml:
        try:
            return _ini(text, display)  # Ansible's next plugin: INI, whatever the extension
        except ConfigError as ini_error:
            raise (not_yaml if suffix else ini_error) from None


def _yaml(text: str, display: str) -> Tree:
    doc = load(text, display)
    tree = Tree(display)
    read_yaml_inventory(doc, tree)
    return tree


def _ini(text: str, display: str) -> Tree:
    tree = Tree(display)
    read_ini_inventory(text, tree)
    return tree
