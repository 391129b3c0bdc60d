"""What the journal and the command line tell people and pipelines: the rollout id on every
event line, who holds a lock and until when, one clock for every id, what a rollback went
back to, and a host's history that survives an automatic rollback."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploykit import DeployProject, PlantSpec, build, events_of, journal_complete
from rollout.service import open_state

ZONED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
"""An ISO 8601 time with its offset from UTC."""


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    project = build(tmp_path, "local", None, [PlantSpec("p1"), PlantSpec("p2")], light=True)
    yield project
    project.stop_services()


def test_every_json_event_line_carries_its_rollout_id(dp: DeployProject, rollout) -> None:
    done = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert done.code == 0, done.text
    lines = events_of(done.out)
    rid = lines[-1]["id"]
    events = [line for line in lines if line.get("type") == "event"]
    assert events, lines
    without = [e["kind"] for e in events if e.get("rollout") != rid]
    assert not without, f"event lines without rollout {rid}: {without}"
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    back = rollout("rollback", "-C", dp.root, "--plant", "p1", "--json")
    assert back.code == 0, back.text
    events = [line for line in events_of(back.out) if line.get("type") == "event"]
    ids = {e.get("rollout") for e in events}
    assert len(ids) == 1 and str(ids.pop()).startswith("rollback-"), events


def test_a_lock_refusal_names_rollout_purpose_operator_machine_and_zoned_times(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    journal = open_state(dp.project())
    journal.acquire("p2", "maintenance-by-anna", "replacing a gateway", 600.0, "anna@plant-pc")
    try:
        refused = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes")
        assert refused.code == 4, refused.text
        for part in ("maintenance-by-anna", "replacing a gateway", "anna@plant-pc", socket.gethostname()):
            assert part in refused.err, f"{part!r} missing from: {refused.err}"
        assert len(ZONED.findall(refused.err)) == 2, f"since and until, with their zone: {refused.err}"
        shown = rollout("status", "-C", dp.root)
        line = next((s for s in shown.out.splitlines() if s.startswith("lock: p2")), "")
        assert "anna@plant-pc" in line and ZONED.search(line), shown.out
        locks = [r for r in events_of(rollout("status", "-C", dp.root, "--json").out) if r.get("type") == "lock"]
        assert locks and locks[0]["operator"] == "anna@plant-pc" and ZONED.fullmatch(locks[0]["expires"]), locks
    finally:
        journal.release("p2", "maintenance-by-anna")


def test_rollback_ids_follow_the_same_clock_as_rollout_ids(dp: DeployProject, rollout, monkeypatch) -> None:
    monkeypatch.setenv("ROLLOUT_NOW", "2026-11-23T12:00:00+00:00")
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert rollout("rollback", "-C", dp.root, "--plant", "p1").code == 0
    ids = [h["id"] for h in events_of(rollout("history", "-C", dp.root, "--json").out)]
    assert len(ids) == 3, ids
    assert all(i.removeprefix("rollback-").startswith("20261123-120000-") for i in ids), ids


def test_history_shows_what_a_rollback_went_back_to_and_why(dp: DeployProject, rollout) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert rollout("rollback", "-C", dp.root, "--plant", "p1", "--reason", "gateway [red]drops[/] data").code == 0
    entries = events_of(rollout("history", "-C", dp.root, "--json").out)
    assert [(e["kind"], e["release"]) for e in entries] == [("deploy", "v1"), ("deploy", "v2"), ("rollback", "v1")]
    assert [e["reason"] for e in entries] == ["", "", "gateway [red]drops[/] data"]
    record = open_state(dp.project()).rollouts()[-1]
    assert record.spec["reason"] == "gateway [red]drops[/] data", record.spec
    table = rollout("history", "-C", dp.root).out
    row = next(line for line in table.splitlines() if "rollback-" in line)
    assert " v1 " in row, table
    assert "[red]drops[/]" in table, table  # as written, never read as markup


def test_plant_it_goes_back_further_after_an_automatic_rollback(dp: DeployProject, rollout) -> None:
    """A failed deploy put the plant back on v2; the hosts still know v1 came before it."""
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "bad-ingest", "--yes").code == 1
    dp.assert_whole("p1", "v2")
    back = rollout("rollback", "-C", dp.root, "--plant", "p1")
    assert back.code == 0, back.text
    dp.assert_whole("p1", "v1")
    assert dp.health("p1") == "healthy 1"
    journal_complete(dp)
