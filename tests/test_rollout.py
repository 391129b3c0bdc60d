"""Staged rollouts: waves, thresholds, failure responses, bake, approvals, windows, locks,
crash-safe resume, JUnit and JSON output. Real hosts (local folders or the sshd fleet)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploykit import DeployProject, PlantSpec, build, events_of, journal_complete
from fleet import Fleet
from rollout.service import open_state

ROLLOUT = str(Path(sys.executable).parent / "rollout")

NINE = [
    PlantSpec("p1"),
    PlantSpec("p2", ("early",)),
    PlantSpec("p3", ("early", "fragile")),
    PlantSpec("p4", ("early",)),
    PlantSpec("p5"),
    PlantSpec("p6"),
    PlantSpec("p7", ("fragile",)),
    PlantSpec("p8"),
    PlantSpec("p9"),
]
FRAGILE = {"p3", "p7"}

STAGED = """  parallelism: 2
  max_failures: 0
  on_failure: halt
  waves:
    - name: canary
      select: {plants: [p1]}
    - name: early
      select: {tags: [early]}
      max_failures: 1
      on_failure: continue
    - name: rest
      select: {remaining: true}
      parallelism: 3
      max_failures: "40%"
      on_failure: rollback_all
"""


def one_wave(extra: str) -> str:
    return f"  waves:\n    - name: all\n      select: {{remaining: true}}\n{extra}"


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("fleet"), 8, first=21).start()
    yield fleet
    fleet.stop()


def make(
    tmp_path: Path, plants: list[PlantSpec], strategy: str, transport: str = "local", fleet: Fleet | None = None
) -> DeployProject:
    return build(tmp_path, transport, fleet, plants, light=True, strategy=strategy)


@pytest.fixture
def cleanup() -> Iterator[list[DeployProject]]:
    made: list[DeployProject] = []
    yield made
    for project in made:
        project.stop_services()


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_staged_rollout_of_nine_plants(transport: str, tmp_path: Path, rollout, cleanup, request) -> None:
    fleet = request.getfixturevalue("fleet") if transport == "ssh" else None
    dp = make(tmp_path, NINE, STAGED, transport, fleet)
    cleanup.append(dp)
    first = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert first.code == 0, first.text
    second = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json")
    assert second.code == 1, second.text
    result = events_of(second.out)[-1]
    assert result["state"] == "finished"
    assert {p for p, o in result["plants"].items() if o == "rolled_back"} == FRAGILE
    assert {o for p, o in result["plants"].items() if p not in FRAGILE} == {"updated"}
    for spec in NINE:
        dp.assert_whole(spec.name, "v1" if spec.name in FRAGILE else "bad-fragile")
    waves = [e["detail"]["wave"] for e in events_of(second.out) if e.get("kind") == "wave.started"]
    assert waves == ["canary", "early", "rest"]
    journal_complete(dp)
    history = events_of(rollout("history", "-C", dp.root, "--json").out)
    assert [h["state"] for h in history] == ["finished", "finished"] and history[1]["release"] == "bad-fragile"


def test_a_count_threshold_halts_and_leaves_the_rest_alone(tmp_path: Path, rollout, cleanup) -> None:
    plants = [PlantSpec("p1"), PlantSpec("p2", ("fragile",)), PlantSpec("p3"), PlantSpec("p4")]
    dp = make(tmp_path, plants, "  parallelism: 1\n  max_failures: 0\n  on_failure: halt\n" + one_wave(""))
    cleanup.append(dp)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    done = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json")
    assert done.code == 1
    result = events_of(done.out)[-1]
    assert result["state"] == "halted" and result["plants"] == {"p1": "updated", "p2": "rolled_back"}
    dp.assert_whole("p1", "bad-fragile")
    for plant in ("p2", "p3", "p4"):
        dp.assert_whole(plant, "v1")
    assert any(e.get("kind") == "rollout.halted" for e in events_of(done.out))
    journal_complete(dp)


def test_abort_criteria_stop_a_wave_once_too_many_of_the_finished_failed(tmp_path: Path, rollout, cleanup) -> None:
    plants = [PlantSpec("p1"), PlantSpec("p2", ("fragile",)), PlantSpec("p3"), PlantSpec("p4"), PlantSpec("p5")]
    criteria = "  max_starts_per_minute: 100\n  abort_when: {failed_above: 40%, min_finished: 2}\n"
    dp = make(tmp_path, plants, "  parallelism: 1\n  max_failures: 4\n  on_failure: halt\n" + criteria + one_wave(""))
    cleanup.append(dp)
    plan = rollout("plan", "-C", dp.root, "--release", "v1", "--json")
    wave = next(r for r in events_of(plan.out) if r.get("type") == "wave")
    assert wave["max_starts_per_minute"] == 100 and wave["abort_when"] == {"failed_above": "40%", "min_finished": 2}
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    done = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json")
    assert done.code == 1, done.text  # 1 of 2 finished failed: 50%, over 40%, though 4 failures were allowed
    result = events_of(done.out)[-1]
    assert result["state"] == "halted" and result["plants"] == {"p1": "updated", "p2": "rolled_back"}, result
    threshold = next(e for e in events_of(done.out) if e.get("kind") == "wave.threshold")
    assert "abort criteria" in str(threshold["detail"]), threshold
    for plant in ("p3", "p4", "p5"):
        dp.assert_whole(plant, "v1")
    journal_complete(dp)


def test_a_percentage_threshold_rolls_back_every_updated_plant(tmp_path: Path, rollout, cleanup) -> None:
    plants = [PlantSpec(f"p{i}", ("fragile",) if i in (3, 5) else ()) for i in range(1, 7)]
    strategy = "  parallelism: 1\n" + one_wave('      max_failures: "20%"\n      on_failure: rollback_all\n')
    dp = make(tmp_path, plants, strategy)
    cleanup.append(dp)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    done = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json")
    assert done.code == 1, done.text
    events = events_of(done.out)
    threshold = [e for e in events if e.get("kind") == "wave.threshold"]
    assert len(threshold) == 1 and threshold[0]["detail"]["response"] == "rollback_all"
    for plant in plants:  # 20% of 6 allows one failure; the second rolls everything back
        dp.assert_whole(plant.name, "v1")
    assert events[-1]["state"] == "halted"
    journal_complete(dp)


def test_bake_rechecks_and_rolls_back_a_plant_that_sickens(tmp_path: Path, rollout, cleanup) -> None:
    plants = [PlantSpec("p1"), PlantSpec("p2")]
    dp = make(tmp_path, plants, "  parallelism: 2\n" + one_wave("      bake: 3s\n      max_failures: 1\n"))
    cleanup.append(dp)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    proc = subprocess.Popen(
        [ROLLOUT, "deploy", "-C", str(dp.root), "--release", "v2", "--json"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("kind") == "wave.baking":
            pidfile = dp.host_roots["p2-in"] / "srv/dp/ingest/state/svc.pid"
            os.kill(int(pidfile.read_text()), signal.SIGTERM)  # p2's service dies during the bake
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 1
    kinds = [(e.get("kind"), e.get("plant")) for e in events_of(rest)]
    assert ("plant.bake_failed", "p2") in kinds and ("plant.rolled_back", "p2") in kinds
    dp.assert_whole("p1", "v2")
    dp.assert_whole("p2", "v1")
    journal_complete(dp)


def test_approval_pauses_then_approve_and_resume(tmp_path: Path, rollout, cleanup, monkeypatch) -> None:
    monkeypatch.setenv("ROLLOUT_OPERATOR", "alice@ci")
    strategy = STAGED.replace("    - name: rest\n", "    - name: rest\n      approval: true\n")
    dp = make(tmp_path, NINE, strategy)
    cleanup.append(dp)
    paused = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert paused.code == 4, paused.text
    rid = events_of(paused.out)[-1]["id"]
    assert "rollout approve" in events_of(paused.out)[-1]["message"]
    assert rollout("resume", "-C", dp.root, rid, "--yes").code == 4  # still not approved
    status = rollout("status", "-C", dp.root, "--json")
    assert any(r.get("type") == "rollout" and r["state"] == "paused" for r in events_of(status.out))
    approved = rollout("approve", "-C", dp.root, rid, "--reason", "canary and early look good", "--json")
    assert approved.code == 0, approved.text
    assert events_of(approved.out) == [
        {"type": "approval", "rollout": rid, "wave": "rest", "by": "alice@ci", "reason": "canary and early look good"}
    ]
    done = rollout("resume", "-C", dp.root, rid, "--yes", "--json")
    assert done.code == 0, done.text
    started = [e["plant"] for e in events_of(done.out) if e.get("kind") == "plant.started"]
    assert sorted(started) == ["p5", "p6", "p7", "p8", "p9"]  # nothing deployed twice
    for spec in NINE:
        dp.assert_whole(spec.name, "v1")
    through = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes", "--approve-through", "rest")
    assert through.code == 0, through.text
    history = events_of(rollout("history", "-C", dp.root, "--json").out)
    assert [h["reason"] for h in history] == ["approved rest by alice@ci: canary and early look good", ""]
    assert "approved rest by alice@ci" in rollout("history", "-C", dp.root).out
    journal_complete(dp)


def test_windows_in_each_plants_time_zone(tmp_path: Path, rollout, cleanup, monkeypatch) -> None:
    night = "[{days: [sat], start: '02:00', end: '04:00'}]"
    plants = [PlantSpec("p1"), PlantSpec("p2", windows=night)]
    dp = make(tmp_path, plants, "  outside_window: skip\n" + one_wave(""))
    cleanup.append(dp)
    monkeypatch.setenv("ROLLOUT_NOW", "2026-11-23T12:00:00+00:00")  # a Monday noon: p2 is closed
    skipped = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
    assert skipped.code == 4, skipped.text
    assert events_of(skipped.out)[-1]["plants"] == {"p1": "updated", "p2": "skipped"}
    skip = [e for e in events_of(skipped.out) if e.get("kind") == "plant.skipped"][0]
    assert skip["detail"]["next_opening"].startswith("2026-11-28T02:00")
    dp.assert_whole("p2", None)
    monkeypatch.setenv("ROLLOUT_NOW", "2026-11-28T02:30:00+00:00")  # Saturday 02:30 UTC: open
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    dp.assert_whole("p2", "v1")
    monkeypatch.setenv("ROLLOUT_NOW", "2026-11-23T12:00:00+00:00")
    forced = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes", "--json", "--force-window")
    assert forced.code == 0
    assert any(e.get("kind") == "window.forced" and e["plant"] == "p2" for e in events_of(forced.out))
    dp.assert_whole("p2", "v2")


def test_two_deploys_on_the_same_plant_one_proceeds(tmp_path: Path, rollout, cleanup) -> None:
    # Four plants one after another keep some plant locked for seconds, whatever the load.
    plants = [PlantSpec(f"p{i}") for i in range(1, 5)]
    dp = make(tmp_path, plants, "  parallelism: 1\n" + one_wave("      bake: 2s\n"))
    cleanup.append(dp)
    first = subprocess.Popen(
        [ROLLOUT, "deploy", "-C", str(dp.root), "--release", "v1", "--json"], stdout=subprocess.PIPE, text=True
    )
    assert first.stdout is not None
    holder = ""
    for line in first.stdout:
        event = json.loads(line)
        if event.get("kind") == "rollout.created":
            holder = event["detail"]["by"]
        if event.get("kind") == "plant.locked":
            break
    second = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes")
    assert second.code == 4 and "is locked by" in second.err
    first.stdout.read()
    assert first.wait(timeout=120) == 0 and holder
    dp.assert_whole("p1", "v1")
    journal_complete(dp)


def test_junit_report_and_json_event_order(tmp_path: Path, rollout, cleanup) -> None:
    plants = [PlantSpec("p1"), PlantSpec("p2", ("fragile",)), PlantSpec("p3")]
    dp = make(tmp_path, plants, "  parallelism: 2\n" + one_wave("      max_failures: 1\n      on_failure: continue\n"))
    cleanup.append(dp)
    report = tmp_path / "report.xml"
    done = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json", "--junit", report)
    assert done.code == 1
    suite = ET.parse(report).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "1"
    failing = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failing == ["p2/ingest"]
    events = events_of(done.out)
    assert events[0]["kind"] == "rollout.created" and events[-2]["kind"] == "rollout.finished"
    seqs = [e["seq"] for e in events if e["type"] == "event"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # printed in the journal's order
    for plant in ("p1", "p2", "p3"):
        kinds = [e["kind"] for e in events if e.get("plant") == plant]
        assert kinds[0] == "plant.locked" and kinds[-1] == "plant.unlocked"
        assert kinds.index("plant.started") < kinds.index("plant.before") < kinds.index("layer.staging")


def test_rehearsal_runs_everything_on_simulated_copies(tmp_path: Path, rollout, cleanup) -> None:
    unreachable = Fleet(tmp_path / "nowhere", 4, first=200)  # never started: no real host answers
    dp = build(tmp_path, "ssh", unreachable, 2)  # three layers, the last activated by a playbook
    cleanup.append(dp)
    report = tmp_path / "rehearsal.xml"
    done = rollout("deploy", "-C", dp.root, "--release", "v2", "--rehearse", "--yes", "--json", "--junit", report)
    assert done.code == 0, done.text
    events = events_of(done.out)
    assert events[-1]["plants"] == {"p1": "updated", "p2": "updated"}
    checks = [e for e in events if e.get("kind") == "check.result"]
    assert {e["detail"]["check"] for e in checks} == {"config", "port", "health", "published"}
    assert ET.parse(report).getroot().get("tests") == "6"
    assert not any(p.exists() for p in dp.host_roots.values())  # the real hosts' folders: untouched
    assert open_state(dp.project()).rollouts() == []  # the real journal knows nothing of it
    bad = rollout("deploy", "-C", dp.root, "--release", "bad-ingest", "--rehearse", "--yes", "--json")
    outcome = events_of(bad.out)[-1]  # the default strategy: no failure allowed, halt
    assert bad.code == 1 and outcome["state"] == "halted" and outcome["plants"] == {"p1": "rolled_back"}
    assert not list((dp.root / ".rollout/rehearsal/hosts").glob("*/*/srv/dp/*/current"))  # cleared after


def test_a_locked_plant_refuses_deploy_and_rollback_naming_the_holder(tmp_path: Path, rollout, cleanup) -> None:
    dp = make(tmp_path, [PlantSpec("p1"), PlantSpec("p2")], one_wave(""))
    cleanup.append(dp)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    journal = open_state(dp.project())
    journal.acquire("p2", "maintenance-by-anna", "replacing a gateway", 600.0)  # held by this live process
    deploy = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes")
    assert deploy.code == 4 and "maintenance-by-anna" in deploy.err and "replacing a gateway" in deploy.err
    back = rollout("rollback", "-C", dp.root, "--plant", "p2")
    assert back.code == 4 and "maintenance-by-anna" in back.err
    dp.assert_whole("p2", "v2")  # nothing touched
    journal.release("p2", "maintenance-by-anna")
    assert rollout("rollback", "-C", dp.root, "--plant", "p2").code == 0
    dp.assert_whole("p2", "v1")
    kinds = [h["kind"] for h in events_of(rollout("history", "-C", dp.root, "--json").out)]
    assert kinds == ["deploy", "deploy", "rollback"]  # the refused deploy never started a rollout


def test_the_live_view_draws_waves_plants_and_layers() -> None:
    from rich.console import Console

    from rollout.cli.views.progress import LiveView
    from rollout.core.events import Event

    class _Project:
        class config:  # noqa: N801 (a stand-in for the project's config)
            layers = [type("L", (), {"name": "edge"})(), type("L", (), {"name": "ingest"})()]

    console = Console(record=True, width=100, force_terminal=True)
    with LiveView(console, _Project()) as live:  # type: ignore[arg-type]
        live.update(Event("wave.started", "", detail={"wave": "canary", "plants": ["p1", "p2"]}))
        live.update(Event("plant.locked", "p1"))
        live.update(Event("check.result", "p1", "edge", detail={"outcome": "succeeded"}))
        live.update(Event("layer.failed", "p1", "ingest", detail={"reason": "x"}))
        live.update(Event("plant.rolled_back", "p1"))
    text = console.export_text()
    assert "canary" in text and "p2" in text and "waiting" in text
    assert "ok" in text and "FAILED" in text and "rolled back" in text
