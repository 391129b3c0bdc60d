"""The README's main job: the example deployed on the embedded default, one automatic rollback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import copy_example


@pytest.fixture
def deployed_example(tmp_path: Path) -> Iterator[Path]:
    project = copy_example(tmp_path / "example")
    yield project
    for ctl in project.glob(".rollout/hosts/*/*/opt/factory/ingest/current/ingestctl"):
        subprocess.run(["sh", str(ctl), "stop"], timeout=30, check=False)


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_example_rolls_out_and_rolls_monterrey_back(deployed_example: Path, rollout) -> None:
    first = rollout("deploy", "-C", deployed_example, "--release", "example-2026.11.0", "--yes", "--json")
    assert first.code == 0, first.text
    outcomes = {r["plant"]: r["outcome"] for r in records(first.out) if r["type"] == "plant"}
    assert len(outcomes) == 9 and set(outcomes.values()) == {"updated"}

    second = rollout("deploy", "-C", deployed_example, "--release", "example-2026.11.1", "--yes", "--json")
    assert second.code == 1, second.text
    found = records(second.out)
    outcomes = {r["plant"]: r["outcome"] for r in found if r["type"] == "plant"}
    assert outcomes.pop("monterrey") == "rolled_back"
    assert set(outcomes.values()) == {"updated"}
    failed = [r for r in found if r["type"] == "event" and r["kind"] == "layer.failed"]
    assert [(r["plant"], r["layer"]) for r in failed] == [("monterrey", "ingest")]
    assert "batch_size 2500 exceeds queue_limit 2000" in failed[0]["detail"]["reason"]

    status = rollout("status", "-C", deployed_example, "--json")
    assert status.code == 0
    hosts = records(status.out)
    assert len(hosts) == sum(1 for _ in deployed_example.glob(".rollout/hosts/*/*"))
    for host in hosts:
        expected = "example-2026.11.0" if host["plant"] == "monterrey" else "example-2026.11.1"
        assert host["reachable"] and host["whole"] and host["release"] == expected, host
