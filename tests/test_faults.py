"""Fault injection: what a rollout leaves behind when it is killed, loses a host, or loses its journal.

- The orchestrator is killed (-9) at 20 points of a 12-plant staged rollout, chosen by a
  seeded generator from the event stream, and each time ``rollout resume`` finishes the
  job. Replay a failure with the seed its message prints:
  ``ROLLOUT_FAULT_SEED=<seed> ./scripts/test tests/test_faults.py -k kill``.
- A host drops off (its sshd and sessions killed) or hangs (SIGSTOP) in the middle of a
  layer: bounded by timeouts, that plant is rolled back or marked as needing attention,
  the other plants are updated, and the exit code says which.
- The journal's file is removed or made read-only mid-run: the rollout stops with a
  clear message and exit 3, no host is switched without a journaled step, and the
  rollout can be finished afterwards.

After every fault: every plant runs one whole release on every layer (link, manifest and
the host's own record agree), its service serves that release, no lock is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploykit import RELEASES, DeployProject, PlantSpec, build, journal_complete
from fleet import Fleet
from rollout.service import open_state

ROLLOUT = str(Path(sys.executable).parent / "rollout")
SEED = int(os.environ.get("ROLLOUT_FAULT_SEED", "20261121"))
KILL_POINTS = 20
FRAGILE = {"p4", "p9"}
TWELVE = [PlantSpec(f"p{i}", ("fragile",) if f"p{i}" in FRAGILE else ()) for i in range(1, 13)]
STAGED = """  parallelism: 3
  max_failures: 2
  on_failure: continue
  waves:
    - name: canary
      select: {plants: [p1]}
    - name: second
      select: {plants: [p2, p3, p4]}
    - name: rest
      select: {remaining: true}
      parallelism: 8
"""
ONE_WAVE = """  parallelism: 4
  max_failures: 4
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
RUN_LIMIT = 180  # seconds any one rollout command may take here
FIXED_POINTS = [
    ("v1", "plant.done", "p2"),
    ("bad-fragile", "plant.rolled_back", "p4"),
    ("v2", "plant.locked", "p7"),
]
"""(release, kind, plant): kill -9 right after that event, before the seeded points."""


@pytest.fixture
def made() -> Iterator[list[DeployProject]]:
    projects: list[DeployProject] = []
    yield projects
    for project in projects:
        project.stop_services()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    hosts = Fleet(tmp_path_factory.mktemp("fleet"), 8, first=41).start()
    yield hosts
    hosts.stop()


class Run:
    """``rollout deploy --json`` in a process of its own, its events read as they come."""

    def __init__(self, dp: DeployProject, release: str) -> None:
        self.proc = subprocess.Popen(
            [ROLLOUT, "deploy", "-C", str(dp.root), "--release", release, "--yes", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []

    def until(self, stop: Callable[[dict[str, Any]], bool]) -> bool:
        """Read events until ``stop`` says so (True) or the output ends (False)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if stop(event):
                return True
        return False

    def stop(self) -> None:
        """Make sure it no longer runs (a test that failed half way): let go if held, kill, reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=RUN_LIMIT)

    def finish(self) -> tuple[int, str]:
        """Read to the end; the exit code, and stderr with the error lines of the JSON output."""
        self.until(lambda _: False)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        errors = [e["message"] for e in self.events if e.get("type") == "error"]
        return self.proc.wait(timeout=RUN_LIMIT), err + "\n".join(errors)


def event(kind: str, plant: str, layer: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """Stops at the first such event (any layer when ``layer`` is None)."""
    return lambda e: e.get("kind") == kind and e.get("plant") == plant and layer in (None, e.get("layer"))


def at_count(run: Run, count: int) -> Callable[[dict[str, Any]], bool]:
    """Stops once the run has shown ``count`` events."""
    return lambda _: len(run.events) >= count


def expected_after(current: dict[str, str], release: str) -> dict[str, str]:
    """Where each plant ends: on ``release``, except fragile plants that reject bad-fragile."""
    return {p: r if release == "bad-fragile" and p in FRAGILE else release for p, r in current.items()}


def assert_plants(dp: DeployProject, expected: dict[str, str], context: str) -> None:
    """Whole on every layer, and the running service serves exactly that release."""
    for plant, release in expected.items():
        try:
            dp.assert_whole(plant, release)
            assert dp.health(plant) == f"healthy {RELEASES[release]['version']}", f"{plant} serves another release"
        except AssertionError as exc:
            raise AssertionError(f"{context}: {plant} (expected {release}): {exc}") from None


def assert_recorded(dp: DeployProject, shown: list[dict[str, Any]], context: str) -> None:
    """Every event the killed process showed is in the journal: it recorded before it showed."""
    journal = {e.seq: e.event for e in open_state(dp.project()).events()}
    for event in shown:
        if "seq" in event:
            recorded = journal.get(event["seq"])
            assert recorded is not None and recorded.kind == event["kind"], f"{context}: {event} not journaled"


def assert_finished_once(dp: DeployProject, context: str) -> None:
    journal = open_state(dp.project())
    record = journal.rollouts()[-1]
    ends = [e.event.plant for e in journal.events(rollout=record.id, kinds=("plant.done", "plant.rolled_back"))]
    assert len(ends) == len(set(ends)), f"{context}: a plant finished twice: {ends}"


def test_kill_9_at_seeded_points_then_resume_leaves_every_plant_whole(tmp_path: Path, rollout, made) -> None:
    dp = build(tmp_path, "local", None, TWELVE, light=True, strategy=STAGED)
    made.append(dp)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    state = {spec.name: "v1" for spec in TWELVE}
    # Two whole runs first: they prove the path and count the events of each kind of run.
    lengths: dict[str, int] = {}
    for release in ("bad-fragile", "v2"):
        run = Run(dp, release)
        code, err = run.finish()
        assert code == (1 if release == "bad-fragile" else 0), err
        lengths[release] = len(run.events)
        state = expected_after(state, release)
    assert_plants(dp, state, "after the reference runs")
    # Fixed points first: right after an outcome (its lock must go in the same write) and
    # right after a lock was taken; then the seeded ones.
    for release, kind, plant in FIXED_POINTS:
        context = f"fixed point: deploy {release} killed right after {kind} of {plant}"
        state = kill_then_resume(dp, rollout, release, lambda _, k=kind, p=plant: event(k, p), state, context)
    rng = random.Random(SEED)
    cycle = ["bad-fragile", "v1", "bad-fragile", "v2"]
    for point in range(KILL_POINTS):
        release = cycle[point % len(cycle)]
        length = lengths["bad-fragile" if release == "bad-fragile" else "v2"]  # a good release: as long as v2's
        at = rng.randint(1, int(length * 0.9))  # the run always gets this far
        context = f"seed {SEED}, point {point}: deploy {release} killed after event {at} of ~{length}"
        state = kill_then_resume(dp, rollout, release, lambda run, at=at: at_count(run, at), state, context)


def kill_then_resume(  # type: ignore[no-untyped-def]
    dp: DeployProject,
    rollout,
    release: str,
    stop_at: Callable[[Run], Callable[[dict[str, Any]], bool]],
    state: dict[str, str],
    context: str,
) -> dict[str, str]:
    """Deploy ``release``, kill -9 it where ``stop_at`` says, resume; every plant whole, nothing left behind."""
    run = Run(dp, release)
    assert run.until(stop_at(run)), f"{context}: the run ended first"
    run.proc.kill()
    assert run.proc.wait(timeout=60) == -signal.SIGKILL, context
    resumed = rollout("resume", "-C", dp.root, "--yes", "--json")
    assert resumed.code == (1 if release == "bad-fragile" else 0), f"{context}: {resumed.text[-2000:]}"
    state = expected_after(state, release)
    assert_plants(dp, state, context)
    assert_recorded(dp, run.events, context)
    assert_finished_once(dp, context)
    try:
        journal_complete(dp)
    except AssertionError as exc:
        raise AssertionError(f"{context}: {exc}") from None
    return state


def plant_hosts(dp: DeployProject, fleet: Fleet, plant: str) -> dict[str, Any]:
    """The fleet servers behind the plant's edge and ingest hosts."""
    inventory = (dp.root / "inventories" / f"{plant}.yml").read_text()
    addresses = [line.split(":", 1)[1].strip() for line in inventory.splitlines() if "ansible_host:" in line]
    by_address = {h.address: h for h in fleet.hosts}
    return {"edge": by_address[addresses[0]], "ingest": by_address[addresses[1]]}


def ssh_project(tmp_path: Path, fleet: Fleet, made: list[DeployProject]) -> DeployProject:
    """Four plants, each on two servers of its own; short timeouts so a hung host costs seconds."""
    fleet.ensure_running()
    plants = [PlantSpec(f"p{i}") for i in range(1, 5)]
    dp = build(tmp_path, "ssh", fleet, plants, light=True, strategy=ONE_WAVE, command_timeout=4)
    made.append(dp)
    config = dp.root / "rollout.yaml"
    config.write_text(config.read_text().replace("timeout: 15s", "timeout: 4s"))
    return dp


def outcome_of(events: list[dict[str, Any]], plant: str) -> str:
    final = [e for e in events if e.get("type") == "result" or "plants" in e]
    plants = final[-1].get("plants", {}) if final else {}
    return str(plants.get(plant))


def test_a_host_dropped_mid_layer_is_bounded_and_only_its_plant_is_affected(
    tmp_path: Path, rollout, made, fleet: Fleet
) -> None:
    dp = ssh_project(tmp_path, fleet, made)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    victim = plant_hosts(dp, fleet, "p2")["ingest"]
    started = time.monotonic()
    run = Run(dp, "v2")
    assert run.until(event("layer.staging", "p2", "ingest"))
    fleet.kill(victim)  # the host drops off the network while its layer is under way
    code, err = run.finish()
    assert time.monotonic() - started < 90, "a dropped host must cost a bounded time"
    outcome = outcome_of(run.events, "p2")
    assert outcome in ("rolled_back", "attention"), (outcome, err)
    assert code == (3 if outcome == "attention" else 1), err
    assert_plants(dp, {"p1": "v2", "p3": "v2", "p4": "v2"}, "the other plants")
    fleet.ensure_running()
    if outcome == "rolled_back":
        assert_plants(dp, {"p2": "v1"}, "the plant that lost a host")
    else:  # its edge went back; its ingest, which the rollback could not reach, needs a person and
        # runs whole what it ran when it dropped: v2 if its switch was recorded before, else still v1
        switched = any(
            e.get("kind") == "layer.activated" and e.get("plant") == "p2" and e.get("layer") == "ingest"
            for e in run.events
        )
        dp.assert_whole("p2", layers={"edge": "v1", "ingest": "v2" if switched else "v1"})
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--plant", "p2", "--yes").code == 0
    assert_plants(dp, {"p2": "v2"}, "once the host is back")
    journal_complete(dp)


def test_a_hung_host_is_bounded_by_timeouts_and_needs_attention(tmp_path: Path, rollout, made, fleet: Fleet) -> None:
    dp = ssh_project(tmp_path, fleet, made)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    victim = plant_hosts(dp, fleet, "p3")["ingest"]
    started = time.monotonic()
    run = Run(dp, "v2")
    # Switched, not yet restarted: the restart, then the rollback's switch back, both hang.
    assert run.until(event("layer.activated", "p3", "ingest"))
    fleet.kill(victim, signal.SIGSTOP)
    try:
        code, err = run.finish()
        elapsed = time.monotonic() - started
    finally:
        fleet.kill(victim, signal.SIGCONT)
    assert elapsed < 90, f"a hung host must cost a bounded time, took {elapsed:.0f} s"
    assert outcome_of(run.events, "p3") == "attention", err
    assert code == 3, err
    failed = [e for e in run.events if e.get("kind") == "layer.failed" and e.get("plant") == "p3"]
    assert failed and "timed out" in json.dumps(failed), failed
    assert_plants(dp, {"p1": "v2", "p2": "v2", "p4": "v2"}, "the other plants")
    healed = rollout("rollback", "-C", dp.root, "--plant", "p3", "--to", "v1")  # plant IT, once the host answers
    assert healed.code == 0, healed.text
    assert_plants(dp, {"p3": "v1"}, "after plant IT's rollback")
    journal_complete(dp)


def host_switches(dp: DeployProject, release: str) -> dict[tuple[str, str], int]:
    """(plant, layer) -> how many of its hosts' own histories record a switch to ``release``."""
    found: dict[tuple[str, str], int] = {}
    for history in dp.root.parent.glob("roots/*/srv/dp/*/.rollout/history.jsonl"):
        for line in history.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("release") == release:
                key = (entry["plant"], entry["layer"])
                found[key] = found.get(key, 0) + 1
    return found


def assert_no_unrecorded_switch(dp: DeployProject, shown: list[dict[str, Any]], release: str) -> None:
    """A host switched to ``release`` only in a layer whose activation the run journaled (and showed)."""
    announced = {(e["plant"], e["layer"]) for e in shown if e.get("kind") == "layer.activating"}
    switched = set(host_switches(dp, release))
    assert switched <= announced, f"switched without a journaled step: {sorted(switched - announced)}"


def six(tmp_path: Path, made: list[DeployProject]) -> DeployProject:
    dp = build(tmp_path, "local", None, [PlantSpec(f"p{i}") for i in range(1, 7)], light=True, strategy=ONE_WAVE)
    made.append(dp)
    return dp


def test_a_removed_journal_stops_the_rollout_before_its_next_step(tmp_path: Path, rollout, made) -> None:
    dp = six(tmp_path, made)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    journal = dp.root / ".rollout" / "state.db"
    run = Run(dp, "v2")
    assert run.until(event("layer.activating", "p2"))
    journal.unlink()
    code, err = run.finish()
    assert code == 3, err
    assert "journal" in err and "removed" in err and "Traceback" not in err, err
    assert_no_unrecorded_switch(dp, run.events, "v2")
    assert len({e.get("plant") for e in run.events if e.get("kind") == "plant.done"}) < 6  # it did stop
    again = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes")  # a new journal; hosts say where they are
    assert again.code == 0, again.text
    assert_plants(dp, {f"p{i}": "v2" for i in range(1, 7)}, "after deploying again")
    journal_complete(dp)


def test_a_host_switched_but_not_restarted_when_the_journal_went_is_restarted_by_the_next_deploy(
    tmp_path: Path, rollout, made
) -> None:
    # The journal goes after p4's ingest host switched and before its restart: the run stops
    # there, and only the host itself still knows that a restart is owed.
    dp = six(tmp_path, made)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    layer = dp.host_roots["p4-in"] / "srv/dp/ingest"
    run = Run(dp, "v2")
    with held_history(layer / ".rollout/history.jsonl"):
        assert run.until(event("layer.activating", "p4", "ingest"))
        wait_for_link(layer, "v2")  # switched; its activation now waits on its history
        (dp.root / ".rollout" / "state.db").unlink()
    code, err = run.finish()
    assert code == 3, err
    assert "journal" in err and "removed" in err, err
    assert not any(e.get("kind") == "layer.restarting" and e.get("plant") == "p4" for e in run.events)
    dp.assert_whole("p4", "v2")
    assert dp.health("p4") == f"healthy {RELEASES['v1']['version']}", "the old release serves behind the new link"
    again = rollout("deploy", "-C", dp.root, "--release", "v2", "--yes")
    assert again.code == 0, again.text
    assert_plants(dp, {f"p{i}": "v2" for i in range(1, 7)}, "after deploying again")
    journal_complete(dp)


@contextlib.contextmanager
def held_history(history: Path, limit: float = 60.0) -> Iterator[None]:
    """The host's history becomes a FIFO, so its next activation, which appends to it after its
    switch and record, waits there while the body runs; then the line it writes is kept."""
    kept = history.read_bytes()
    history.unlink()
    os.mkfifo(history)
    try:
        yield
        written = read_fifo(history, limit)
    finally:
        history.unlink()
    history.write_bytes(kept + written)


def read_fifo(path: Path, limit: float) -> bytes:
    """What one writer writes to the FIFO ``path``, waiting for it up to ``limit`` seconds."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    data, deadline = b"", time.monotonic() + limit
    try:
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                data += os.read(fd, 65536)
    finally:
        os.close(fd)
    assert data.endswith(b"\n"), f"no history line came within {limit}s: {data!r}"
    return data


def wait_for_link(layer: Path, release: str, limit: float = 60.0) -> None:
    """Until ``current`` of the layer folder points at ``release``'s folder."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        link = os.readlink(layer / "current") if (layer / "current").is_symlink() else ""
        if Path(link).name.startswith(f"{release}-"):
            return
        time.sleep(0.01)
    raise AssertionError(f"{layer}: current never pointed at {release}")


def chattr(flag: str, *paths: Path) -> None:
    # As root, permissions do not stop writes; the immutable flag does, even on open files.
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True, timeout=30)


def test_a_read_only_journal_stops_the_rollout_then_resume_finishes_it(tmp_path: Path, rollout, made) -> None:
    dp = six(tmp_path, made)
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    db = dp.root / ".rollout" / "state.db"
    files = [db, db.with_name("state.db-wal")]
    run = Run(dp, "v2")
    try:
        assert run.until(event("layer.activating", "p2"))
        chattr("+i", *files)
        code, err = run.finish()
    finally:
        chattr("-i", *files)
    assert code == 3, err
    assert "cannot write the journal" in err and "Traceback" not in err, err
    assert_no_unrecorded_switch(dp, run.events, "v2")
    assert_recorded(dp, run.events, "read-only journal")
    resumed = rollout("resume", "-C", dp.root, "--yes", "--json")
    assert resumed.code == 0, resumed.text
    assert_plants(dp, {f"p{i}": "v2" for i in range(1, 7)}, "after resume")
    journal_complete(dp)
