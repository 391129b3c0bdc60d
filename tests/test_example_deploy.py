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
    first = rollout(
        "deploy",
        "-C",
        deployed_example,
        "--release",
        "example-2026.11.0",
        "--yes",
        "--json",
        "--force-window",
        "--approve-through",
        "americas",
    )
    assert first.code == 0, first.text
    outcomes = records(first.out)[-1]["plants"]
    assert len(outcomes) == 9 and set(outcomes.values()) == {"updated"}

    second = rollout(
        "deploy", "-C", deployed_example, "--release", "example-2026.11.1", "--yes", "--json", "--force-window"
    )
    assert second.code == 4, second.text  # the americas wave waits for approval
    rid = records(second.out)[-1]["id"]
    assert rollout("approve", "-C", deployed_example, rid).code == 0
    resumed = rollout("resume", "-C", deployed_example, rid, "--yes", "--json")
    assert resumed.code == 1, resumed.text
    found = records(second.out) + records(resumed.out)
    outcomes = dict(found[-1]["plants"])
    assert outcomes.pop("monterrey") == "rolled_back"
    assert set(outcomes.values()) == {"updated"}
    failed = [r for r in found if r["type"] == "event" and r["kind"] == "layer.failed"]
    assert [(r["plant"], r["layer"]) for r in failed] == [("monterrey", "ingest")]
    assert "batch_size 2500 exceeds queue_limit 2000" in failed[0]["detail"]["reason"]

    count = sum(1 for _ in deployed_example.glob(".rollout/hosts/*/*"))
    live = rollout("status", "-C", deployed_example, "--live", "--json")
    assert live.code == 0
    hosts = records(live.out)
    assert len(hosts) == count
    for host in hosts:
        expected = "example-2026.11.0" if host["plant"] == "monterrey" else "example-2026.11.1"
        assert host["reachable"] and host["whole"] and host["release"] == expected, host
    # The state's account, asked of no host, says the same of every (layer, host).
    recorded = rollout("status", "-C", deployed_example, "--json")
    assert recorded.code == 0
    by_host = {(h["plant"], h["layer"], h["host"]): h["release"] for h in records(recorded.out)}
    assert by_host == {(h["plant"], h["layer"], h["host"]): h["release"] for h in hosts}
