"""``rollout abort``: from a second process, against a running rollout and a paused one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from stopkit import held_between_writes
from test_faults import ROLLOUT, Run

from deploykit import DeployProject, PlantSpec, build, events_of
from rollout.service import open_state

SIX_BY_TWO = """  parallelism: 2
  max_failures: 6
  waves:
    - name: all
      select: {remaining: true}
"""
APPROVAL = """  waves:
    - name: canary
      select: {plants: [p1]}
    - name: rest
      select: {remaining: true}
      approval: true
"""
WAIT_FOR_WINDOWS = """  parallelism: 2
  max_window_wait: 168h
  waves:
    - name: all
      select: {remaining: true}
"""
NIGHT = "[{days: [sat], start: '02:00', end: '04:00'}]"
LIMIT = 180


def abort(dp: DeployProject, rollout_id: str, reason: str) -> subprocess.CompletedProcess[str]:
    """``rollout abort`` in a process of its own, as from a second terminal."""
    env = {**os.environ, "ROLLOUT_OPERATOR": "ann@console"}
    return subprocess.run(
        [ROLLOUT, "abort", "-C", str(dp.root), rollout_id, "--reason", reason, "--json"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        env=env,
    )


def no_lock_left(dp: DeployProject) -> None:
    left = [f"{lock.plant}: {lock.describe()}" for lock in open_state(dp.project()).locks()]
    assert not left, f"locks left behind: {left}"


def history_of(dp: DeployProject, rollout_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [ROLLOUT, "history", "-C", str(dp.root), "--json"], capture_output=True, text=True, timeout=LIMIT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return next(e for e in entries if e.get("id") == rollout_id)


def test_abort_of_a_running_rollout_from_a_second_process(tmp_path: Path, rollout) -> None:
    dp = build(tmp_path, "local", None, 6, light=True, strategy=SIX_BY_TWO)
    run: Run | None = None
    try:
        assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
        run = Run(dp, "v2")
        assert run.until(lambda e: e.get("kind") == "plant.done"), f"no plant.done: {run.events[-3:]}"
        rollout_id = str(run.events[0]["rollout"])
        # Held still while the abort is recorded, so the test never depends on how fast plants go;
        # the run goes on afterwards and must find the request at its next safe point.
        with held_between_writes(run.proc, dp.root / ".rollout/state.db"):
            asked = abort(dp, rollout_id, "sensor data looks wrong")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert json.loads(asked.stdout.splitlines()[0])["state"] == "aborting", asked.stdout
        code, err = run.finish()
        seen = [(e.get("kind"), e.get("plant"), e.get("seq")) for e in run.events]
        assert code == 4, f"the aborted run exited {code}: {err}; it showed {seen}"
        kinds = [(e.get("kind"), e.get("plant")) for e in run.events]
        assert ("rollout.aborted", "") in kinds, f"no rollout.aborted in {kinds[-5:]}"
        assert ("rollout.finished", "") not in kinds, "an aborted rollout said it finished"
        journal = open_state(dp.project())
        started = {e.event.plant for e in journal.events(rollout=rollout_id, kinds=("plant.started",))}
        ended = {e.event.plant for e in journal.events(rollout=rollout_id, kinds=("plant.done",))}
        assert started == ended, f"plants started {sorted(started)} but ended {sorted(ended)}"
        assert 1 <= len(started) < 6, f"abort let {len(started)} of 6 plants start: {sorted(started)}"
        for plant in (f"p{i}" for i in range(1, 7)):
            dp.assert_whole(plant, "v2" if plant in started else "v1")
        no_lock_left(dp)
        entry = history_of(dp, rollout_id)
        assert entry["state"] == "aborted", entry
        assert entry["note"] == "aborted by ann@console: sensor data looks wrong", entry
        again = abort(dp, rollout_id, "twice")
        assert again.returncode == 2 and "already ended" in again.stdout + again.stderr, again.stdout + again.stderr
        resumed = rollout("resume", "-C", dp.root, rollout_id, "--yes")
        assert resumed.code == 2 and "aborted" in resumed.text, resumed.text
    finally:
        if run is not None:
            run.stop()  # before the services: a run left going would start more of them
        dp.stop_services()


def test_abort_ends_a_wait_for_a_maintenance_window(tmp_path: Path, monkeypatch) -> None:
    """A rollout waiting days for plants' windows is running: the abort ends its wait at once."""
    plants = [PlantSpec("p1"), PlantSpec("p2", windows=NIGHT), PlantSpec("p3", windows=NIGHT)]
    dp = build(tmp_path, "local", None, plants, light=True, strategy=WAIT_FOR_WINDOWS)
    try:
        monkeypatch.setenv("ROLLOUT_NOW", "2026-11-23T12:00:00+00:00")  # a Monday noon: p2, p3 closed till Saturday
        run = Run(dp, "v1")
        assert run.until(lambda e: e.get("kind") == "window.waiting"), f"no window.waiting: {run.events[-3:]}"
        rollout_id = str(run.events[0]["rollout"])
        second = subprocess.run(
            [ROLLOUT, "resume", "-C", str(dp.root), rollout_id, "--yes"], capture_output=True, text=True, timeout=LIMIT
        )
        assert second.returncode == 4, f"a second run of a running rollout: {second.returncode} {second.stderr}"
        assert f"rollout {rollout_id} is already being run by pid {run.proc.pid}" in second.stderr, second.stderr
        asked = abort(dp, rollout_id, "change freeze")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert json.loads(asked.stdout.splitlines()[0])["state"] == "aborting", asked.stdout
        code, err = run.finish()
        assert code == 4, f"the aborted run exited {code}: {err}"
        kinds = [(e.get("kind"), e.get("plant")) for e in run.events]
        assert ("rollout.aborted", "") in kinds, f"no rollout.aborted in {kinds[-5:]}"
        assert not [k for k in kinds if k[0] == "plant.started" and k[1] != "p1"], f"a closed plant started: {kinds}"
        dp.assert_whole("p1", "v1")
        for plant in ("p2", "p3"):
            dp.assert_whole(plant, None)
        no_lock_left(dp)
        assert history_of(dp, rollout_id)["state"] == "aborted"
    finally:
        dp.stop_services()


def test_abort_of_a_paused_rollout_ends_it_at_once(tmp_path: Path, rollout) -> None:
    dp = build(tmp_path, "local", None, 3, light=True, strategy=APPROVAL)
    try:
        first = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
        assert first.code == 4, first.text
        rollout_id = next(json.loads(line)["rollout"] for line in first.out.splitlines() if '"rollout"' in line)
        asked = abort(dp, rollout_id, "wrong release")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert json.loads(asked.stdout.splitlines()[0])["state"] == "aborted", asked.stdout
        entry = history_of(dp, rollout_id)
        assert (entry["state"], entry["note"]) == ("aborted", "aborted by ann@console: wrong release"), entry
        assert entry["reason"] == "wrong release", entry
        assert entry["plants"] == {"p1": "updated"}, entry
        resumed = rollout("resume", "-C", dp.root, rollout_id, "--yes")
        assert resumed.code == 2 and "aborted" in resumed.text, resumed.text
        for plant in ("p2", "p3"):
            dp.assert_whole(plant, None)
        dp.assert_whole("p1", "v1")
        no_lock_left(dp)
        unknown = abort(dp, "no-such-rollout", "x")
        assert unknown.returncode == 2 and "no-such-rollout" in unknown.stdout + unknown.stderr, unknown.stderr
        status = rollout("status", "-C", dp.root, "--json")
        under_way = [r for r in events_of(status.out) if r.get("type") == "rollout"]
        assert rollout_id not in str(under_way), f"an aborted rollout still shows as under way: {under_way}"
    finally:
        dp.stop_services()
