"""The example project through the real command line: validate, plan, render, diff, explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import copy_example, git
from netplan import example_net


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_example_validates_with_customization_report(example: Path, rollout) -> None:
    result = rollout("validate", "-C", example, "--json")
    assert result.code == 0, result.text
    records = _records(result.out)
    summary = records[-1]
    assert summary["type"] == "validated" and summary["ok"] is True
    assert summary["plants"] >= 8 and summary["layers"] == ["edge", "ingest", "dashboards"]
    assert summary["bundles"] == summary["plants"] * 3
    custom = {r["plant"]: r for r in records if r["type"] == "customization"}
    assert {"key": "ingest.port", "set_by": "plant:detroit"} in custom["detroit"]["changed_keys"]
    assert custom["lyon"]["added_files"] == ["dashboards/extra/energy.json.j2"]
    assert custom["nagoya"]["replaced_files"] == ["dashboards/plant-overview.json.j2"]
    assert custom["sao-paulo"]["changed_keys"] and all(
        k["set_by"] == "archetype:packaging" for k in custom["sao-paulo"]["changed_keys"]
    )


def test_example_has_the_promised_variety(example: Path, rollout) -> None:
    plan = _records(rollout("plan", "-C", example, "--json").out)
    plants = [r for r in plan if r["type"] == "plant"]
    assert len(plants) >= 8
    assert len({p["archetype"] for p in plants}) >= 3
    assert len({p["timezone"] for p in plants}) >= 3
    assert all(p["hosts"] >= 3 for p in plants)


def test_plan_json_orders_waves_and_plants(example: Path, rollout) -> None:
    result = rollout("plan", "-C", example, "--release", "example-2026.11.0", "--json")
    assert result.code == 0, result.text
    records = _records(result.out)
    assert records[0]["type"] == "plan" and records[0]["release"] == "example-2026.11.0"
    waves = [r for r in records if r["type"] == "wave"]
    assert [w["name"] for w in waves] == ["canary", "europe", "americas", "asia-pacific"]
    assert waves[0]["plants"] == ["berlin"]
    assert waves[2]["approval"] is True and waves[2]["max_failures"] == 1  # 34% of 3
    assert waves[3]["on_failure"] == "rollback_all"
    seen = [r["plant"] for r in records if r["type"] == "plant"]
    assert len(seen) == len(set(seen)) == records[0]["plants"]


def test_render_twice_is_byte_identical_and_skips_rewrites(example: Path, rollout, tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    first = rollout("render", "-C", example, "--out", out_a, "--json")
    assert first.code == 0, first.text
    assert all(r["written"] for r in _records(first.out))
    assert rollout("render", "-C", example, "--out", out_b).code == 0
    files_a = sorted(p.relative_to(out_a) for p in out_a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(out_b) for p in out_b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 27
    for rel in files_a:
        assert (out_a / rel).read_bytes() == (out_b / rel).read_bytes(), rel
    again = rollout("render", "-C", example, "--out", out_a, "--json")
    assert not any(r["written"] for r in _records(again.out))


def test_manifest_lists_every_file_with_hash_and_size(example: Path, rollout, tmp_path: Path) -> None:
    import hashlib

    assert rollout("render", "-C", example, "--out", tmp_path, "--plant", "detroit").code == 0
    manifest = json.loads((tmp_path / "detroit/ingest/manifest.json").read_text())
    assert manifest["plant"] == "detroit" and manifest["layer"] == "ingest"
    assert manifest["release"]["id"] == "example-2026.11.1" and len(manifest["release"]["commit"]) == 40
    assert len(manifest["overlay_hash"]) == 64
    paths = {f["path"] for f in manifest["files"]}
    assert paths == {"ingest.json", "ingest_service.py", "ingestctl"}
    for entry in manifest["files"]:
        data = (tmp_path / "detroit/ingest/files" / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert {f["path"]: f["mode"] for f in manifest["files"]}["ingestctl"] == "0755"
    config = json.loads((tmp_path / "detroit/ingest/files/ingest.json").read_text())
    assert config["port"] == 8710 and config["bind"] == example_net() + "45"
    assert {s["unit"] for s in config["sensors"] if s["kind"] == "temperature"} == {"F"}
    assert not (tmp_path / "berlin").exists()


def test_rendered_dashboards_are_json_and_follow_overlays(example: Path, rollout, tmp_path: Path) -> None:
    assert rollout("render", "-C", example, "--out", tmp_path).code == 0
    berlin = json.loads((tmp_path / "berlin/dashboards/files/plant-overview.json").read_text())
    assert len(berlin["panels"]) == 3 * 2  # three lines (plant overlay), OEE and scrap per line
    brno = json.loads((tmp_path / "brno/dashboards/files/plant-overview.json").read_text())
    assert len(brno["panels"]) == 4 * 2  # four lines (packaging archetype)
    nagoya = json.loads((tmp_path / "nagoya/dashboards/files/plant-overview.json").read_text())
    assert "工場" in nagoya["title"] and nagoya["theme"] == "dark"
    assert (tmp_path / "lyon/dashboards/files/extra/energy.json").is_file()
    assert not (tmp_path / "berlin/dashboards/files/_kpi_panel.json").exists()  # partials stay out


def test_diff_between_releases_shows_the_change(example: Path, rollout) -> None:
    result = rollout(
        "diff",
        "-C",
        example,
        "--plant",
        "monterrey",
        "--release",
        "example-2026.11.1",
        "--against",
        "example-2026.11.0",
    )
    assert result.code == 0, result.text
    assert "--- example-2026.11.0/ingest/ingest.json" in result.out
    assert '+  "queue_limit": 2000,' in result.out
    assert "scrap rate" in result.out
    records = _records(
        rollout("diff", "-C", example, "-p", "monterrey", "--against", "example-2026.11.0", "--json").out
    )
    changed = {(r["layer"], r["path"]) for r in records if r["type"] == "change"}
    assert ("ingest", "ingest_service.py") in changed and ("dashboards", "plant-overview.json") in changed
    same = _records(rollout("diff", "-C", example, "-p", "monterrey", "--against", "example-2026.11.1", "--json").out)
    assert same == [
        {
            "type": "diff",
            "plant": "monterrey",
            "release": "example-2026.11.1",
            "against": "example-2026.11.1",
            "changed": 0,
        }
    ]


def test_explain_names_the_layer_and_line_of_every_value(example: Path, rollout) -> None:
    result = rollout("render", "-C", example, "--explain", "--plant", "monterrey", "--json")
    assert result.code == 0, result.text
    values = {r["key"]: r for r in _records(result.out)}
    assert values["ingest.batch_size"]["set_by"] == "plant:monterrey"
    assert values["ingest.batch_size"]["file"] == "overlays/monterrey/values.yaml"
    assert values["ingest.batch_size"]["line"] == 3
    assert values["edge.protocol"]["set_by"] == "archetype:process" and values["edge.protocol"]["value"] == "modbus"
    assert values["ingest.queue_limit"]["set_by"] == "base"
    assert values["ingest.queue_limit"]["file"] == "solution/values.yaml@example-2026.11.1"


def test_code_base_is_read_from_git_never_the_working_tree(tmp_path: Path, rollout) -> None:
    project = copy_example(tmp_path / "example")
    template = project / "solution/edge/gateway.yaml.j2"
    template.write_text("{{ this_is_not_committed }}\n")
    assert rollout("validate", "-C", project).code == 0
    git(project, "commit", "-qam", "break the edge template")
    result = rollout("validate", "-C", project, "--release", "HEAD")
    assert result.code == 2
    assert "solution/edge/gateway.yaml.j2@HEAD:1" in result.err and "this_is_not_committed" in result.err


def test_make_releases_is_deterministic(tmp_path: Path) -> None:
    first = copy_example(tmp_path / "one")
    second = copy_example(tmp_path / "two")
    for tag in ("example-2026.11.0", "example-2026.11.1"):
        assert git(first, "rev-parse", tag) == git(second, "rev-parse", tag)
    before = git(first, "rev-parse", "example-2026.11.1")
    subprocess.run([str(first / "example/make-releases")], check=True, capture_output=True, timeout=60)
    assert git(first, "rev-parse", "example-2026.11.1") == before


def test_console_script_runs_as_a_real_process(example: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "rollout"
    done = subprocess.run([str(exe), "-C", str(example), "plan", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["type"] == "plan"
    bad = subprocess.run([str(exe), "plan", "-C", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "no rollout.yaml here or in any parent folder" in bad.stderr
