"""Inventories are read as real Ansible reads them: every reading compared with ansible-inventory itself.

The corpus, tests/inventories/ (each file says what it exercises):

* ``guide_*``: the examples of Ansible's inventory guide ("How to build your inventory").
* ``ansible_*``: inventories modelled on ansible-core's own test inventories
  (test/integration/targets/inventory*, ansible-inventory/files).
* ``edge_*``: the corners of Ansible's semantics: precedence, ports, ranges, ungrouped, YAML 1.1.
* ``vars_*/``: an inventory with group_vars/ and host_vars/ folders beside it.
* ``errors/``: inventories Ansible refuses; rollout must refuse them too, naming file and line.
* ``refused/``: inventories rollout refuses on purpose, each listed in REFUSED with why.

The repository's own example inventories (inventories/*.yml) are compared as well.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from rollout.config.inventory import Inventory, ranges, read_inventory
from rollout.errors import ConfigError

ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")
CORPUS = Path(__file__).parent / "inventories"


def corpus(folder: Path) -> list[Path]:
    """Inventory files in ``folder``: its files, and the files at the top of each sub-folder."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            found.append(entry)
        elif entry.name not in ("errors", "refused"):
            found += [f for f in sorted(entry.iterdir()) if f.is_file()]
    return found


READ = corpus(CORPUS) + sorted((REPO / "inventories").glob("*.yml"))
ERRORS = {  # inventory -> what rollout's message must say (Ansible fails on each as well)
    "all_as_child.yml": "groups contain each other: all -> web -> all",
    "bad_priority.yml": "invalid ansible_group_priority",
    "bad_range.yml": "invalid host pattern",
    "child_not_a_name.ini": "not a group name",
    "cycle.ini": "groups contain each other: a -> b -> a",
    "cycle.yml": "groups contain each other: a -> b -> a",
    "date_key.yml": "which JSON cannot write",
    "empty_host_name.yml": "empty host name",
    "ends_in_colon.ini": "cannot end in ':'",
    "guide_inheritance_undeclared.ini": "lists group 'northeast', which is declared nowhere",
    "host_vars_as_text.yml": "invalid host variables",
    "host_word_without_equals.ini": "not a host variable",
    "host_named_all.yml": "groups contain each other: all -> ungrouped -> all",
    "hosts_as_list.yml": "invalid 'hosts'",
    "int_hostname.yml": "invalid host name",
    "literal_type_error.ini": "unsupported value",
    "null_group_name.yml": "invalid group name",
    "range_no_end.yml": "needs an end value",
    "reversed_letters.ini": "begin <= end",
    "script_output.json": "invalid 'hosts'",  # a dynamic inventory's output saved as a file
    "section_spaces.ini": "invalid section header",
    "unbalanced_quote.ini": "No closing quotation",
    "unclosed_range.ini": "a host range is one '[begin:end]'",
    "uneven_range.ini": "begin and end of equal length",
    "unknown_section.ini": "unknown section type 'hostvars'",
    "vars_file_broken/hosts.yml": "invalid YAML",
    "vars_file_list/hosts.ini": "not a mapping of variables",
    "vars_undeclared.ini": "which is declared nowhere",
    "vars_without_equals.ini": "not a variable",
    "yaml_start.ini": "'---' is no host name",
    "yaml_syntax.yml": "invalid YAML",
}
REFUSED = {  # inventory -> (why rollout refuses it, what the message says)
    "binary_value.yml": ("!!binary values have no JSON form for templates", "binary values are not read"),
    "duplicate_key.yml": ("Ansible warns and keeps the last: a host written twice is a mistake", "duplicate key 'h1'"),
    "dynamic_script": ("dynamic inventory scripts would run code to learn hosts", "script is not run"),
    "group_not_mapping.yml": ("Ansible warns and drops the group's hosts", "a group must be a mapping"),
    "huge_range.ini": ("ten million hosts would fill memory (bound: 200,000)", "expand to more than 200000 hosts"),
    "inventory.toml": ("TOML inventories are not among the forms read", "TOML inventories are not read"),
    "latin1.ini": ("values must be UTF-8 to be written to bundles and messages", "not UTF-8 text"),
    "plugin_config.yml": ("inventory plugins run code (and often reach the network)", "plugin configuration"),
    "slash_host/hosts.yml": ("host_vars/racks/r1 would read a sub-folder as one host's", "cannot be looked up"),
    "unknown_group_key.yml": ("Ansible warns and drops the hosts under a mistyped key", "did you mean 'hosts'"),
    "vaulted.yml": ("rollout has no vault password for inventories", "vault-encrypted file is not read"),
}


def ansible_run(path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_HOME": str(home / "home"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_INVENTORY_ENABLED": "yaml,ini,host_list",
    }
    # From an empty folder: ansible-inventory also reads group_vars/ beside the working directory.
    command = [ANSIBLE_INVENTORY, "-i", str(path), "--list"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=home)


def ansible_view(path: Path, tmp_path: Path) -> dict[str, Any]:
    done = ansible_run(path, tmp_path / "ansible")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.fixture(scope="module")
def ansible_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, subprocess.CompletedProcess[str]]:
    """ansible-inventory over the whole corpus, a few at a time (each run takes a second or so)."""
    paths = READ + [CORPUS / "errors" / name for name in ERRORS]
    root = tmp_path_factory.mktemp("ansible")
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda ip: ansible_run(ip[1], root / str(ip[0])), enumerate(paths))
        return dict(zip(paths, done, strict=True))


def label(path: Path) -> str:
    return str(path.relative_to(CORPUS) if path.is_relative_to(CORPUS) else path.relative_to(REPO))


def members(view: dict[str, Any], group: str) -> set[str]:
    entry = view.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= members(view, child)
    return found


def unwrapped(value: Any) -> Any:
    """ansible-inventory marks values never templated ({"__ansible_unsafe": text}); rollout keeps the text."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrapped(v) for v in value]
    return value


def group_differences(ours: Inventory, view: dict[str, Any]) -> list[str]:
    out: list[str] = []
    listed = {g: body for g, body in view.items() if g != "_meta"}
    for group, body in listed.items():
        if list(ours.children.get(group, ())) != body.get("children", []):
            out.append(f"group {group!r}: children {ours.children.get(group)} != Ansible's {body.get('children', [])}")
        if group != "all" and list(ours.direct.get(group, ())) != body.get("hosts", []):
            out.append(f"group {group!r}: hosts {ours.direct.get(group)} != Ansible's {body.get('hosts', [])}")
        theirs = members(view, group) | (set(view["_meta"]["hostvars"]) if group == "all" else set())
        if set(ours.groups.get(group, ())) != theirs:  # 'all' lists no hosts of its own: they have vars, or nothing
            out.append(f"group {group!r}: members {ours.groups.get(group)} != Ansible's {sorted(theirs)}")
    for group in set(ours.groups) - set(listed):  # Ansible lists no group without hosts or children
        if ours.groups[group] or ours.children[group]:
            out.append(f"group {group!r}: rollout has {ours.groups[group]}, Ansible lists no such group")
    return out


def host_differences(ours: Inventory, view: dict[str, Any]) -> list[str]:
    out: list[str] = []
    listed = members(view, "all") | set(view["_meta"]["hostvars"])  # a host in no listed group has only its vars
    if set(ours.hosts) != listed:
        out.append(f"hosts {sorted(ours.hosts)} != Ansible's {sorted(listed)}")
    for name, host in ours.hosts.items():
        theirs = unwrapped(view["_meta"]["hostvars"].get(name, {}))
        mine = json.loads(json.dumps(dict(host.vars)))  # as JSON, the form ansible-inventory prints
        for key in sorted(set(theirs) | set(mine)):
            if mine.get(key, "<unset>") != theirs.get(key, "<unset>"):
                was, want = mine.get(key, "<unset>"), theirs.get(key, "<unset>")
                out.append(f"host {name!r}: variable {key!r} is {was!r}, Ansible's is {want!r}")
        if host.address != str(theirs.get("ansible_host", name)):
            out.append(f"host {name!r}: address {host.address!r}, Ansible's {theirs.get('ansible_host', name)!r}")
    return out


@pytest.mark.parametrize("path", READ, ids=label)
def test_inventory_reads_as_ansible_reads_it(path: Path, ansible_runs: dict[Path, Any]) -> None:
    done = ansible_runs[path]
    assert done.returncode == 0, f"{label(path)}: ansible-inventory failed: {done.stderr}"
    view = json.loads(done.stdout)
    ours = read_inventory(path, label(path))
    found = group_differences(ours, view) + host_differences(ours, view)
    assert not found, f"{label(path)}: rollout reads it differently from Ansible:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_what_ansible_refuses_is_refused_naming_file_and_line(name: str, ansible_runs: dict[Path, Any]) -> None:
    path = CORPUS / "errors" / name
    assert ansible_runs[path].returncode != 0, f"errors/{name}: Ansible reads it, so rollout must too"
    with pytest.raises(ConfigError) as caught:
        read_inventory(path, name)
    problem = caught.value.problems[0]
    assert ERRORS[name] in str(caught.value), f"errors/{name}: {caught.value}"
    assert problem.file.startswith(name.split("/")[0]) or "_vars/" in problem.file, problem
    assert problem.line is not None, f"errors/{name}: no line in {problem.render()}"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_deliberate_refusals_say_why(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_inventory(CORPUS / "refused" / name, name)
    assert REFUSED[name][1] in str(caught.value), f"refused/{name}: {caught.value}"


def test_every_corpus_file_is_accounted_for() -> None:
    for folder, table in (("errors", ERRORS), ("refused", REFUSED)):
        listed = {label(p).removeprefix(folder + "/") for p in corpus(CORPUS / folder)}
        assert listed == set(table), f"{folder}/: not listed {listed - set(table)}, missing {set(table) - listed}"
    assert len(READ) >= 50, "the corpus shrank"


def test_ansible_inventory_is_installed() -> None:
    assert shutil.which(ANSIBLE_INVENTORY) or Path(ANSIBLE_INVENTORY).exists()


PATTERNS = [
    "web1", "web1:2222", "web1:0", "web_:22", "a:b:22", "10.0.0.7:8022", "[2001:db8::1]:22", "2001:db8::2",
    "::1", "[::1]:2200", "[h:33]:22", "[fe80::1%eth0]:22", "1:2:3:4:5:6:7::", "::ffff:10.0.0.1", "bad host",
    "www[01:50].example.com", "www[01:50:2].example.com", "db-[a:f].example.com", "h[:3]", "h[1:10:3]",
    "h[5:1:-1]", "h[a:C]", "h[ab:de]", "h[A:c]:2222", "h[01:03]-[a:b]", "10.0.[1:3].[7:8]", "[2001:db8::[a:c]]:22",
    "h[ 1: 3]", "h[1:3", "h[a-c]", "h[1:]", "h[d:a]", "h[01:100]", "h[1:3:0]", "h[1:3:x]", "h|x[1:2]", "h]1[2:3]",
    "h[1:2]x[3]", "x" * 1000, "h:" + "9" * 1000, "ü[1:2]", "é.example.com:22", "h\n:22",
]  # fmt: skip


def ansible_hosts(pattern: str) -> tuple[list[str], int | None] | str:
    """What Ansible's YAML plugin makes of a host key: names and port, or the error."""
    from ansible.plugins.inventory.yaml import InventoryModule  # the reference, in the test only

    try:
        names, port = InventoryModule()._expand_hostpattern(pattern)
    except Exception as exc:  # noqa: BLE001 - any failure is Ansible refusing the pattern
        return type(exc).__name__
    return list(names), port


def rollout_hosts(pattern: str) -> tuple[list[str], int | None] | str:
    host, port = ranges.split_port(pattern)
    try:
        return ranges.expand(host, 10_000), port
    except ranges.PatternError:
        return "error"


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p[:40])
def test_host_patterns_expand_as_ansible_expands_them(pattern: str) -> None:
    theirs, ours = ansible_hosts(pattern), rollout_hosts(pattern)
    said = f"{pattern[:60]!r}: rollout {str(ours)[:200]}, Ansible {str(theirs)[:200]}"
    if isinstance(theirs, str) or isinstance(ours, str):
        assert isinstance(theirs, str) and isinstance(ours, str), said
    else:
        assert ours == theirs, said


def test_overlong_host_names_are_refused() -> None:
    """Deliberate: Ansible takes any length; a bound keeps a range of long names from filling memory."""
    assert ranges.expand("x" * ranges.MAX_NAME, 1) == ["x" * ranges.MAX_NAME]
    with pytest.raises(ranges.PatternError, match="longer than 1024"):
        ranges.expand("x" * ranges.MAX_NAME + "[1:2]", 10)
    digits = "h:" + "9" * 5000  # more digits than int() takes: no port, as for Ansible (and then too long a name)
    assert ranges.split_port(digits) == (digits, None)


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
    assert not group_differences(ours, view) + host_differences(ours, view)
    assert ours.hosts["gw1"].vars["tier"] == "edge" and ours.hosts["gw2"].vars["tier"] == "host-own"
    assert ours.hosts["gw1"].address == "127.0.4.1" and ours.hosts["in1"].address == "in1"
    assert ours.groups["ungrouped"] == ("lone",)


def test_group_cycles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yml"
    path.write_text("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n")
    with pytest.raises(ConfigError, match="groups contain each other") as caught:
        read_inventory(path, "cycle.yml")
    assert caught.value.problems[0].line == 7


def test_long_group_chains_and_many_hosts_stay_fast(tmp_path: Path) -> None:
    """A hostile chain of groups is linear work (a recursive walk would exceed Python's stack)."""
    path = tmp_path / "chain.ini"
    lines = [f"[g{i}:children]\ng{i + 1}\n" for i in range(3000)] + ["[g3000]\n" + "h[0:99]\n"]
    path.write_text("".join(lines))
    inventory = read_inventory(path, "chain.ini")
    assert len(inventory.groups["g0"]) == 100 and inventory.children["g0"] == ("g1",)


def test_loading_a_project_imports_no_ansible() -> None:
    code = (
        "import sys, rollout.config.project, rollout.config.inventory; "
        "print(sorted(m for m in sys.modules if 'ansible' in m))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
