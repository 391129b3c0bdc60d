"""The per-user plant cache: a cached load equals a fresh one, and every input of a plant's load
invalidates its entry when it changes. Real files in a real project; no fakes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import MiniProject
from rollout.config import plantcache, plants
from rollout.config.project import Project, load_project
from rollout.errors import ConfigError


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ROLLOUT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The inventories parsed (not taken from the cache) by the loads of a test."""
    parsed: list[str] = []
    real = plants.read_inventory

    def counting(path: Path, display: str, raw: bytes | None = None):  # type: ignore[no-untyped-def]
        parsed.append(display)
        return real(path, display, raw)

    monkeypatch.setattr(plants, "read_inventory", counting)
    return parsed


def load(mini: MiniProject) -> Project:
    return load_project(mini.root, overlays=False)


def entries(folder: Path) -> dict[str, object]:
    (file,) = folder.glob("plants-*.json")
    data = json.loads(file.read_text())
    return data["plants"]


def test_a_cached_load_equals_a_fresh_one(mini: MiniProject, cache_dir: Path, reads: list[str]) -> None:
    first = load(mini)
    assert len(reads) == 3 and sorted(entries(cache_dir)) == ["p1.yaml", "p2.yaml", "p3.yaml"]
    (file,) = cache_dir.glob("plants-*.json")
    assert file.stat().st_mode & 0o777 == 0o600 and cache_dir.stat().st_mode & 0o777 == 0o700
    again = load(mini)
    assert len(reads) == 3, "every plant came from the cache"
    assert again.plants == first.plants
    gateway = again.plants["p1"].inventory.hosts["p1-gw"]
    assert dict(gateway.vars) == dict(first.plants["p1"].inventory.hosts["p1-gw"].vars)


def test_a_plant_edit_of_the_same_size_is_seen(mini: MiniProject, cache_dir: Path) -> None:
    load(mini)
    mini.write("plants/p2.yaml", "archetype: small\ntimezone: America/Chicago\nwindows: always\ntags: [nb]\n")
    assert load(mini).plants["p2"].config.tags == ["nb"]


def test_an_inventory_edit_is_seen(mini: MiniProject, cache_dir: Path) -> None:
    load(mini)
    path = mini.root / "inventories/p1.yml"
    path.write_text(path.read_text().replace("p1-gw:", "p1-gateway:"))
    assert "p1-gateway" in load(mini).plants["p1"].inventory.hosts


def test_group_vars_added_or_changed_are_seen(mini: MiniProject, cache_dir: Path) -> None:
    load(mini)
    mini.write("inventories/group_vars/edge.yml", "line: 1\n")
    assert load(mini).plants["p2"].inventory.hosts["p2-gw"].vars["line"] == 1
    mini.write("inventories/group_vars/edge.yml", "line: 2\n")
    assert load(mini).plants["p2"].inventory.hosts["p2-gw"].vars["line"] == 2


def test_a_yml_inventory_beside_the_yaml_one_is_chosen(mini: MiniProject, cache_dir: Path) -> None:
    (mini.root / "inventories/p3.yml").rename(mini.root / "inventories/p3.yaml")
    assert load(mini).plants["p3"].inventory.file == "inventories/p3.yaml"
    text = (mini.root / "inventories/p3.yaml").read_text()
    mini.write("inventories/p3.yml", text.replace("p3-gw:", "p3-edge:"))
    found = load(mini).plants["p3"].inventory
    assert found.file == "inventories/p3.yml" and "p3-edge" in found.hosts


def test_a_default_inventory_gone_or_dangling_falls_back_to_the_yaml_one(
    mini: MiniProject, cache_dir: Path, reads: list[str]
) -> None:
    yml = mini.root / "inventories/p3.yml"
    text = yml.read_text()
    mini.write("inventories/p3.yaml", text.replace("p3-gw:", "p3-edge:"))
    assert load(mini).plants["p3"].inventory.file == "inventories/p3.yml"
    yml.unlink()
    yml.symlink_to(mini.root / "inventories/absent.yml")  # listed in the folder, but no file behind it
    found = load(mini).plants["p3"].inventory
    assert found.file == "inventories/p3.yaml" and "p3-edge" in found.hosts
    yml.unlink()
    reads.clear()
    assert load(mini).plants["p3"].inventory.file == "inventories/p3.yaml"
    assert reads == [], "the plant that chose the .yaml is known unchanged"


def test_an_inventory_made_executable_is_refused(mini: MiniProject, cache_dir: Path) -> None:
    path = mini.root / "inventories/p1.yml"
    path.write_text("#!/usr/bin/env python3\n" + path.read_text())
    load(mini)  # a comment to YAML while the file cannot run
    path.chmod(0o755)
    with pytest.raises(ConfigError) as exc:
        load(mini)
    assert "executable inventory script is not run" in str(exc.value.problems)


def test_a_layer_group_change_checks_every_plant_again(mini: MiniProject, cache_dir: Path) -> None:
    load(mini)
    text = (mini.root / "rollout.yaml").read_text()
    mini.write("rollout.yaml", text.replace("- name: edge\n", "- name: edge\n    group: gateways\n"))
    with pytest.raises(ConfigError) as exc:
        load(mini)
    assert sum("no hosts in group 'gateways'" in p.message for p in exc.value.problems) == 3, exc.value.problems


def test_an_invalid_plant_is_never_cached(mini: MiniProject, cache_dir: Path) -> None:
    mini.write("plants/p2.yaml", "archetype: small\ntimezone: Mars/Olympus\nwindows: always\n")
    for _ in range(2):  # found afresh every time
        with pytest.raises(ConfigError) as exc:
            load(mini)
        assert [p.file for p in exc.value.problems] == ["plants/p2.yaml"]
        assert "p2.yaml" not in entries(cache_dir)


def test_a_corrupt_cache_is_rebuilt(mini: MiniProject, cache_dir: Path, reads: list[str]) -> None:
    first = load(mini)
    (file,) = cache_dir.glob("plants-*.json")
    file.write_text('{"code": "x", "plants": {"p1.yaml": {"inputs": 3}')
    assert load(mini).plants == first.plants and len(reads) == 6
    assert sorted(entries(cache_dir)) == ["p1.yaml", "p2.yaml", "p3.yaml"]
    data = json.loads(file.read_text())
    data["plants"]["p1.yaml"]["inputs"] = {"plant": 1}
    file.write_text(json.dumps(data))
    assert load(mini).plants == first.plants and len(reads) == 7


def test_a_cache_file_others_may_write_is_not_trusted(mini: MiniProject, cache_dir: Path, reads: list[str]) -> None:
    load(mini)
    (file,) = cache_dir.glob("plants-*.json")
    data = json.loads(file.read_text())
    data["plants"]["p1.yaml"]["inventory"]["hosts"][0][1] = "203.0.113.9"  # an address of someone's choosing
    file.write_text(json.dumps(data))
    file.chmod(0o666)
    found = load(mini).plants["p1"].inventory.hosts["p1-gw"].address
    assert found != "203.0.113.9" and len(reads) == 6
    data["plants"]["p2.yaml"]["inventory"]["hosts"] = {"not": "a list"}
    file.write_text(json.dumps(data))
    load(mini)  # an entry of the wrong shape is read again, never an internal error
    assert len(reads) == 7


def test_an_empty_cache_dir_turns_the_cache_off(
    mini: MiniProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    monkeypatch.setenv("ROLLOUT_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load(mini)
    load(mini)
    assert len(reads) == 6 and not (tmp_path / "xdg").exists()


def test_an_old_file_is_known_by_its_status_until_it_changes(
    mini: MiniProject, cache_dir: Path, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plantcache, "RACY_NS", -(10**18))  # every file counts as old enough
    read: list[str] = []
    for name in ("read_yaml_bytes", "read_bytes"):  # the plant file's and the inventory's readers
        real = getattr(plants, name)
        monkeypatch.setattr(plants, name, lambda path, display, real=real: read.append(display) or real(path, display))
    load(mini)
    read.clear()
    load(mini)
    assert read == [] and len(reads) == 3, "nothing read again: status unchanged"
    path = mini.root / "plants/p1.yaml"
    path.write_text(path.read_text() + "description: the first plant\n")
    assert load(mini).plants["p1"].config.description == "the first plant"
    os.chmod(mini.root / "inventories/p2.yml", 0o600)  # a new status, the same bytes: still a hit
    reads.clear()
    load(mini)
    assert reads == []
