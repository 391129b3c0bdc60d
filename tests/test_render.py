"""Rendering: deterministic bundles, sandboxed overlays, shared work for equal inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conftest import MiniProject
from netplan import local_address
from rollout import service
from rollout.core.fanout import Failed, fan_out
from rollout.core.render import Renderer
from rollout.errors import ConfigError
from rollout.service import open_project
from rollout.service.bundle_writer import existing_files


def renderer(mini: MiniProject, ref: str = "v1") -> Renderer:
    project = open_project(mini.root)
    return Renderer(project, project.release(ref))


def bundles(mini: MiniProject, plant: str, ref: str = "v1") -> dict[str, dict[str, bytes]]:
    r = renderer(mini, ref)
    return {b.layer: {f.path: f.content for f in b.files} for b in r.render_plant(r.project.plants[plant])}


def test_templates_render_and_plain_files_copy(mini: MiniProject) -> None:
    out = bundles(mini, "p1")
    assert out["edge"] == {"config.yaml": b"port: 9000\nlines: 2\n", "static.txt": b"unchanged bytes\n"}
    assert out["ingest"]["app.conf"] == b"plant=p1\nport=9000\noee=0.85\n"
    assert bundles(mini, "p3")["edge"]["config.yaml"] == b"port: 8000\nlines: 4\n"  # archetype overlay


def test_same_inputs_render_identical_bundles(mini: MiniProject) -> None:
    first = [b.manifest_bytes() for b in renderer(mini).render_plant(open_project(mini.root).plants["p2"])]
    second = [b.manifest_bytes() for b in renderer(mini).render_plant(open_project(mini.root).plants["p2"])]
    assert first == second


def test_equal_inputs_share_one_rendering(mini: MiniProject) -> None:
    # p2 and a copy of it differ only in name; edge templates never read the plant's name.
    mini.write("plants/p4.yaml", (mini.root / "plants/p2.yaml").read_text())
    mini.write("inventories/p4.yml", (mini.root / "inventories/p2.yml").read_text())
    mini.commit()
    r = renderer(mini)
    edge_p2 = r.render_layer(r.project.plants["p2"], r.project.config.layers[0])
    edge_p4 = r.render_layer(r.project.plants["p4"], r.project.config.layers[0])
    assert r.hits == 1 and edge_p2.inputs_hash == edge_p4.inputs_hash
    assert edge_p2.files == edge_p4.files and edge_p2.plant != edge_p4.plant
    ingest_p2 = r.render_layer(r.project.plants["p2"], r.project.config.layers[1])
    ingest_p4 = r.render_layer(r.project.plants["p4"], r.project.config.layers[1])
    assert r.hits == 1 and ingest_p2.inputs_hash != ingest_p4.inputs_hash  # app.conf reads plant.name


def test_inputs_hash_follows_only_the_values_a_layer_reads(mini: MiniProject) -> None:
    before = renderer(mini).render_plant(open_project(mini.root).plants["p2"])
    mini.write("app/values.yaml", (mini.root / "app/values.yaml").read_text().replace("oee: 0.85", "oee: 0.8"))
    mini.commit("v2")
    after = renderer(mini, "v2").render_plant(open_project(mini.root).plants["p2"])
    assert before[0].files == after[0].files  # edge does not read kpi
    assert before[1].files != after[1].files  # ingest does


def test_partials_are_included_not_shipped(mini: MiniProject) -> None:
    mini.write("app/edge/_head.j2", "# plant {{ plant.name }}\n")
    mini.write("app/edge/config.yaml.j2", '{% include "edge/_head.j2" %}port: {{ values.port }}\n')
    mini.commit()
    edge = bundles(mini, "p2")["edge"]
    assert edge["config.yaml"] == b"# plant p2\nport: 8000\n" and "_head" not in edge


def test_filters_to_json_and_to_yaml(mini: MiniProject) -> None:
    mini.write("app/edge/config.yaml.j2", "{{ values.kpi | to_json }}\n{{ ['a', 'b'] | to_yaml }}\n")
    mini.commit()
    assert bundles(mini, "p2")["edge"]["config.yaml"] == b'{"oee": 0.85}\n- a\n- b\n'


def test_quote_filter_makes_values_safe_in_shell_commands(mini: MiniProject) -> None:
    mini.write("app/edge/config.yaml.j2", 'grep {{ "it\'s; rm -rf /" | quote }} x\n')
    mini.commit()
    assert bundles(mini, "p2")["edge"]["config.yaml"] == b"grep 'it'\"'\"'s; rm -rf /' x\n"


def test_fail_lets_a_template_refuse_values(mini: MiniProject) -> None:
    mini.write("app/edge/config.yaml.j2", "{% if values.lines > 3 %}{{ fail('too many lines') }}{% endif %}ok\n")
    mini.commit()
    assert bundles(mini, "p2")["edge"]["config.yaml"] == b"ok\n"
    with pytest.raises(ConfigError, match="too many lines"):
        bundles(mini, "p3")


def test_executable_bit_is_kept(mini: MiniProject) -> None:
    r = renderer(mini)
    ingest = r.render_plant(r.project.plants["p1"])[1]
    modes = {f.path: f.mode for f in ingest.files}
    assert modes == {"app.conf": 0o644, "run.sh": 0o755}


def test_two_sources_for_one_path_are_refused(mini: MiniProject) -> None:
    mini.write("app/edge/config.yaml", "plain\n")
    mini.commit()
    with pytest.raises(ConfigError, match="renders to 'config.yaml'"):
        bundles(mini, "p2")


def test_overlay_template_makes_the_whole_plant_sandboxed(mini: MiniProject) -> None:
    # A base template that includes a partial an overlay replaced must not run it unsandboxed.
    mini.write("app/edge/_part.j2", "base part\n")
    mini.write("app/edge/config.yaml.j2", '{% include "edge/_part.j2" %}')
    mini.write(
        "rollout.yaml", (mini.root / "rollout.yaml").read_text().replace('["edge/*.j2"]', '["edge/*.j2", "edge/_*.j2"]')
    )
    mini.write("overlays/p1/files/edge/_part.j2", "{{ values.sensors.update({'x': 1}) }}\n")
    mini.commit()
    with pytest.raises(ConfigError, match="sandboxed"):
        bundles(mini, "p1")
    assert bundles(mini, "p2")["edge"]["config.yaml"] == b"base part\n"


def test_overlay_file_replaces_and_adds(mini: MiniProject) -> None:
    mini.write("overlays/p2/files/edge/config.yaml.j2", "mine: {{ values.port }}\n")
    mini.write("overlays/p2/files/edge/extra/notes.txt", "hello\n")
    mini.commit()
    edge = bundles(mini, "p2")["edge"]
    assert edge["config.yaml"] == b"mine: 8000\n" and edge["extra/notes.txt"] == b"hello\n"
    assert bundles(mini, "p3")["edge"]["config.yaml"] == b"port: 8000\nlines: 4\n"


def test_templates_see_hosts_but_not_connection_variables(mini: MiniProject) -> None:
    mini.write(
        "inventories/p2.yml",
        (mini.root / "inventories/p2.yml")
        .read_text()
        .replace(
            f"ansible_host: {local_address(12)}",
            f"ansible_host: {local_address(12)}\n          ansible_password: s3cret\n          zone: north",
        ),
    )
    mini.write("app/ingest/app.conf.j2", "{{ hosts | to_json }}\n{{ groups.edge[0].address }}\n")
    mini.commit()
    text = bundles(mini, "p2")["ingest"]["app.conf"].decode()
    assert '"zone": "north"' in text and local_address(12) in text and local_address(11) in text
    assert "s3cret" not in text and "ansible_" not in text


def test_check_templates_render_per_host(mini: MiniProject) -> None:
    r = renderer(mini)
    steps = r.render_steps(r.project.plants["p1"])
    assert steps[("ingest", "p1-in")]["checks.health"]["url"] == f"http://{local_address(2)}:9000/health"
    assert steps[("ingest", "p1-in")]["checks.port"] == {"host": local_address(2), "port": "9000"}
    assert steps[("ingest", "p1-in")]["restart"] == {"command": "current/run.sh restart"}
    assert steps[("edge", "p1-gw")]["checks.config"] == {"command": "test -f current/config.yaml"}


def test_a_dotted_name_is_a_key_unless_a_dict_has_it_and_internals_stay_out(mini: MiniProject) -> None:
    # The sandbox looks a plain dict's keys up directly; a name every dict has is still its method,
    # a missing key is still undefined, and a dunder is still refused.
    mini.write("app/edge/config.yaml.j2", "{{ values.kpi.oee }} {{ values.kpi.items() | list | to_json }}\n")
    mini.write("app/values.yaml", "port: 8000\nlines: 2\nsensors: {}\nkpi: {oee: 0.85, items: 3}\n")
    mini.commit()
    assert bundles(mini, "p2")["edge"]["config.yaml"] == b'0.85 [["oee", 0.85], ["items", 3]]\n'
    mini.write("app/edge/config.yaml.j2", "{{ values.kpi.nothing }}\n")
    mini.commit()
    with pytest.raises(ConfigError, match="undefined value"):
        bundles(mini, "p2")
    mini.write("app/edge/config.yaml.j2", "{{ values.kpi.__class__.__mro__ }}\n")
    mini.commit()
    with pytest.raises(ConfigError, match="undefined value|not allowed"):
        bundles(mini, "p2")


def test_a_template_cannot_change_what_the_next_one_sees(mini: MiniProject) -> None:
    # Base templates are trusted, not sandboxed: each renders from its own copy of the values.
    mini.write("app/edge/a.j2", "{% set _ = values.sensors.update({'x': 1}) %}{{ values.sensors | to_json }}\n")
    mini.write("app/edge/b.j2", "{{ values.sensors | to_json }}\n")
    mini.commit()
    edge = bundles(mini, "p2")["edge"]
    assert edge["a"] == b'{"x": 1}\n' and edge["b"] == b"{}\n"


def test_forked_workers_render_what_one_process_renders(mini: MiniProject) -> None:
    r = renderer(mini)
    plants = list(r.project.plants.values())
    serial = fan_out(plants, r.render_plant, workers=1)
    forked = fan_out(plants, r.render_plant, workers=2)
    assert [[b.manifest_bytes() for b in bs] for bs in forked] == [[b.manifest_bytes() for b in bs] for bs in serial]
    mini.write("app/edge/config.yaml.j2", "{{ values.nope }}\n")
    mini.commit()
    r = renderer(mini)
    failed = fan_out(plants, r.render_plant, workers=2)
    assert all(isinstance(f, Failed) and "nope" in f.problems[0].message for f in failed)


def test_an_unchanged_bundle_is_read_back_not_rendered(mini: MiniProject, tmp_path: Path) -> None:
    project = open_project(mini.root)
    out = tmp_path / "out"
    assert all(r.written for r in service.render(project, "v1", ["p1"], out))
    again = service.render(project, "v1", ["p1"], out)
    assert not any(r.written for r in again)
    head = replace(again[0].bundle, files=())
    assert existing_files(out, head) == again[0].bundle.files
    (out / "p1/edge/files/config.yaml").write_text("port: 1\nlines: 2\n")  # same size, changed by hand
    assert existing_files(out, head) is None
    assert existing_files(out, replace(head, inputs_hash="0" * 64)) is None
    assert [r.written for r in service.render(project, "v1", ["p1"], out)] == [True, False]
    assert (out / "p1/edge/files/config.yaml").read_text() == "port: 9000\nlines: 2\n"
