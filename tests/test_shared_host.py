"""One host that serves every layer, over SSH: small plants run everything on one box.

Such a host is read and changed by one thread per layer at once; it must get one SSH
connection that all of them share safely. And a plant-IT rollback that finds a host
unreachable changes nothing, says which host, exits 1 and still ends its record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploykit import DeployProject, PlantSpec, build, events_of, journal_complete
from fleet import Fleet

PLANTS = [PlantSpec(f"p{i}") for i in range(1, 7)]
ALL_AT_ONCE = """  parallelism: 6
  max_failures: 6
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
SSH_NOISE = ("Oops, unhandled type", "No existing session", "Authentication timeout", "Traceback")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    hosts = Fleet(tmp_path_factory.mktemp("fleet"), 3, first=61).start()
    yield hosts
    hosts.stop()


@pytest.fixture
def boxes(tmp_path: Path, fleet: Fleet) -> Iterator[DeployProject]:
    """Six plants of one host each (two plants per server), three layers, the last by playbooks."""
    fleet.ensure_running()
    dp = build(tmp_path, "ssh", fleet, PLANTS, strategy=ALL_AT_ONCE, single_host=True)
    yield dp
    dp.stop_services()


def assert_quiet(result, what: str) -> None:  # type: ignore[no-untyped-def]
    noise = [n for n in SSH_NOISE if n in result.err]
    assert not noise, f"{what}: SSH trouble on stderr ({noise}): {result.err[-2000:]}"


def assert_status(rollout, dp: DeployProject, expected: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """``rollout status --live`` reads every (layer, host) of every plant, each one reachable and
    whole; the state's ``rollout status`` records the same releases."""
    state = events_of(rollout("status", "-C", dp.root, "--json").out)
    recorded = {(r["plant"], r["layer"], r["host"]): r["release"] for r in state if r.get("type") == "host"}
    done = rollout("status", "-C", dp.root, "--live", "--json")
    assert_quiet(done, "status")
    rows = [r for r in events_of(done.out) if r.get("type") == "host"]
    assert len(rows) == 3 * len(expected), f"expected {3 * len(expected)} host-layers, got {len(rows)}: {rows}"
    for row in rows:
        where = f"{row['plant']}/{row['layer']} on {row['host']}"
        assert not row.get("error"), f"{where} unreachable: {row['error']}"
        assert row["release"] == expected[row["plant"]] and row["whole"], f"{where} runs {row['release']}: {row}"
        assert recorded[(row["plant"], row["layer"], row["host"])] == row["release"], f"{where}: the state disagrees"


def test_one_host_in_every_layer_deploys_rolls_back_and_reports(boxes: DeployProject, rollout) -> None:
    dp = boxes
    first = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert_quiet(first, "deploy v1")
    outcome = events_of(first.out)[-1]
    assert first.code == 0, f"exit {first.code}, plants {outcome.get('plants')}: {first.text[-3000:]}"
    assert outcome["plants"] == {p.name: "updated" for p in PLANTS}, outcome
    for plant in PLANTS:
        dp.assert_whole(plant.name, "v1")
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert_status(rollout, dp, {p.name: "v2" for p in PLANTS})
    bad = rollout("deploy", "-C", dp.root, "--release", "bad-ingest", "--yes", "--json")
    assert_quiet(bad, "deploy bad-ingest")
    outcome = events_of(bad.out)[-1]
    assert bad.code == 1 and outcome["plants"] == {p.name: "rolled_back" for p in PLANTS}, outcome
    for plant in PLANTS:
        dp.assert_whole(plant.name, "v2")
        assert dp.health(plant.name) == "healthy 2", f"{plant.name} serves another release"
    back = rollout("rollback", "-C", dp.root, "--plant", "p3")  # plant IT: back to what it ran before
    assert_quiet(back, "rollback p3")
    assert back.code == 0, back.text
    assert_status(rollout, dp, {**{p.name: "v2" for p in PLANTS}, "p3": "v1"})
    journal_complete(dp)


def test_a_rollback_that_finds_a_host_unreachable_changes_nothing_and_ends(
    boxes: DeployProject, fleet: Fleet, rollout
) -> None:
    dp = boxes
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--plant", "p1").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes", "--plant", "p1").code == 0
    server = next(h for h in fleet.hosts if h.address in (dp.root / "inventories/p1.yml").read_text())
    fleet.kill(server)
    try:
        back = rollout("rollback", "-C", dp.root, "--plant", "p1", "--json")
        assert back.code == 1, f"exit {back.code}: {back.text[-2000:]}"
        failed = [e for e in events_of(back.out) if e.get("kind") == "plant.preflight_failed"]
        assert failed and failed[0]["host"] == "p1-box", events_of(back.out)
        assert "p1-box" in failed[0]["detail"]["reason"] and "nothing changed" in failed[0]["detail"]["reason"]
        history = events_of(rollout("history", "-C", dp.root, "--json").out)
        assert history[-1]["kind"] == "rollback" and history[-1]["state"] == "finished", history[-1]
        assert history[-1]["plants"] == {"p1": "preflight_failed"}, history[-1]
    finally:
        fleet.ensure_running()
    dp.assert_whole("p1", "v2")  # nothing was touched
    journal_complete(dp)
    assert rollout("rollback", "-C", dp.root, "--plant", "p1").code == 0
    dp.assert_whole("p1", "v1")
