"""The recorder on a real SQLite state: a run that lost a plant's lease takes no further step on
it, and never gives up a lease that is no longer its own; plants' threads writing at once share
one write (group commit) and keep journal, display and fold in one order."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rollout.core.clock import ManualClock
from rollout.core.events import ROLLOUT, Event
from rollout.service.recorder import LOCK_TTL, LeaseLost, Recorder
from rollout.state.journal import JournalError, RolloutRecord
from rollout.state.sqlite import SqliteJournal

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def recorder(tmp_path: Path) -> tuple[Recorder, SqliteJournal, ManualClock]:
    clock = ManualClock(START)
    journal = SqliteJournal(tmp_path / "state.db", clock)
    journal.create(RolloutRecord("r1", "deploy", "v2", None, clock.time(), "ann", {"waves": []}))
    shown: list[Event] = []
    return Recorder(journal, "r1", "ann", shown.append), journal, clock


def take_in_another_process(path: Path, now: dt.datetime, owner: str) -> None:
    """Another process of this machine takes the plant's lease at ``now`` (by its clock)."""
    code = (
        "import datetime as dt, sys\n"
        "from pathlib import Path\n"
        "from rollout.core.clock import ManualClock\n"
        "from rollout.state.sqlite import SqliteJournal\n"
        "clock = ManualClock(dt.datetime.fromisoformat(sys.argv[2]))\n"
        "journal = SqliteJournal(Path(sys.argv[1]), clock)\n"
        "journal.acquire('p1', sys.argv[3], 'taken elsewhere', 600, 'bob')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), now.isoformat(), owner], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


def kinds(journal: SqliteJournal, plant: str) -> list[str]:
    return [e.event.kind for e in journal.events(rollout="r1", plant=plant)]


def test_a_step_announced_under_a_held_lease_is_recorded_and_the_outcome_releases_it(tmp_path: Path) -> None:
    rec, journal, _ = recorder(tmp_path)
    with rec.locked("p1", "rollout r1: v2"):
        rec.record(Event("layer.activating", "p1", layer="edge"))
        rec.record(Event("plant.done", "p1", detail={"changed": True}))
    assert kinds(journal, "p1") == ["plant.locked", "layer.activating", "plant.done", "plant.unlocked"]
    assert journal.locks() == [], f"locks left: {journal.locks()}"


def test_a_run_whose_lease_was_taken_over_stops_before_its_next_host_step(tmp_path: Path) -> None:
    rec, journal, clock = recorder(tmp_path)
    other = SqliteJournal(tmp_path / "state.db", clock)
    with pytest.raises(LeaseLost) as lost, rec.locked("p1", "rollout r1: v2"):
        rec.record(Event("layer.activating", "p1", layer="edge"))
        clock.advance(LOCK_TTL + 1)  # the run stalled past its lease: plant IT takes the plant over
        taken = other.acquire("p1", "rollback-x", "rollback by bob", LOCK_TTL, "bob")
        assert taken.fence > 0
        rec.record(Event("layer.activating", "p1", layer="ingest"))
    message = str(lost.value)
    assert "lost its lease" in message and "rollback-x" in message and "layer.activating" in message, message
    assert kinds(journal, "p1") == ["plant.locked", "layer.activating"], "a step was announced without the lease"
    holders = [(lock.plant, lock.owner) for lock in journal.locks()]
    assert holders == [("p1", "rollback-x")], f"the run that lost the lease released it: {holders}"


def test_an_outcome_after_the_lease_was_lost_keeps_the_new_holders_lease(tmp_path: Path) -> None:
    rec, journal, clock = recorder(tmp_path)
    with rec.locked("p1", "rollout r1: v2"):
        clock.advance(LOCK_TTL + 1)
        take_in_another_process(tmp_path / "state.db", clock.now(), "r1")  # the same rollout, resumed elsewhere
        rec.record(Event("plant.done", "p1", detail={"changed": True}))
    assert "plant.unlocked" not in kinds(journal, "p1")
    holders = [(lock.plant, lock.owner, lock.operator) for lock in journal.locks()]
    assert holders == [("p1", "r1", "bob")], f"the new run's lease was released: {holders}"


def test_rollout_events_are_never_fenced(tmp_path: Path) -> None:
    rec, journal, _ = recorder(tmp_path)
    rec.emit("wave.started", ROLLOUT, {"wave": "w", "plants": ["p1"]})
    assert [e.event.kind for e in journal.events(rollout="r1")] == ["wave.started"]


class HeldJournal(SqliteJournal):
    """A real SQLite state whose first group write waits until the test lets it go, so that the
    writers behind it are queued for certain; records the groups of every write."""

    def __init__(self, path: Path, clock: ManualClock, fail: bool = False) -> None:
        super().__init__(path, clock)
        self.release, self.writes, self.fail = threading.Event(), [], fail

    def append_groups(self, rollout, groups, owner):  # type: ignore[no-untyped-def]
        self.writes.append([[e.kind for e in events] for events, _ in groups])
        if len(self.writes) == 1:
            assert self.release.wait(30), "the test never let the first write go"
        elif self.fail:
            raise JournalError("the state went away")
        return super().append_groups(rollout, groups, owner)


def held_recorder(tmp_path: Path, fail: bool = False) -> tuple[Recorder, HeldJournal, list[Event]]:
    clock = ManualClock(START)
    journal = HeldJournal(tmp_path / "state.db", clock, fail)
    journal.create(RolloutRecord("r1", "deploy", "v2", None, clock.time(), "ann", {"waves": []}))
    shown: list[Event] = []
    return Recorder(journal, "r1", "ann", shown.append), journal, shown


def write_at_once(rec: Recorder, journal: HeldJournal, plants: list[str]) -> dict[str, BaseException]:
    """Each plant's thread records one event while the first write is held; what each raised."""
    raised: dict[str, BaseException] = {}

    def one(plant: str) -> None:
        try:
            rec.record(Event("layer.checking", plant, layer="edge"))
        except BaseException as exc:
            raised[plant] = exc

    first = threading.Thread(target=one, args=("p0",))
    first.start()
    deadline = time.monotonic() + 30
    while not journal.writes and time.monotonic() < deadline:
        time.sleep(0.005)
    threads = [threading.Thread(target=one, args=(p,)) for p in plants]
    for thread in threads:
        thread.start()
    while len(rec._queue) < len(plants) and time.monotonic() < deadline:
        time.sleep(0.005)
    journal.release.set()
    for thread in (first, *threads):
        thread.join(30)
    return raised


def test_writers_at_once_share_one_write_and_keep_journal_display_and_fold_order(tmp_path: Path) -> None:
    rec, journal, shown = held_recorder(tmp_path)
    plants = [f"p{n}" for n in range(1, 9)]
    assert write_at_once(rec, journal, plants) == {}
    assert [len(groups) for groups in journal.writes] == [1, 8], f"queued writers not written as one: {journal.writes}"
    kept = journal.events(rollout="r1")
    assert [(e.seq, e.event.plant) for e in kept] == [(e.seq, e.plant) for e in shown], "shown out of journal order"
    assert sorted(e.event.plant for e in kept) == ["p0", *plants] and rec.seen == kept[-1].seq
    assert set(rec.state.plants) >= {"p0", *plants}, "an event journaled was not folded in"


def test_a_failed_shared_write_is_raised_by_every_writer_in_it(tmp_path: Path) -> None:
    rec, journal, shown = held_recorder(tmp_path, fail=True)
    raised = write_at_once(rec, journal, ["p1", "p2", "p3"])
    assert sorted(raised) == ["p1", "p2", "p3"] and all(isinstance(e, JournalError) for e in raised.values())
    assert [e.event.plant for e in journal.events(rollout="r1")] == ["p0"] == [e.plant for e in shown]
