"""The contract every state backend keeps, written once (the interface is ``rollout.state.journal``).

A backend joins by subclassing ``StateContract`` in its test module with one fixture,
``backend``, that yields a ``Backend`` on a new, empty state (see ``tests/test_state.py``).
Every test runs on the real store: several processes write at once, a holder of a lock is
killed for real, the store is removed or made read-only for real.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from multiprocessing.context import SpawnProcess
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from fleet import alive
from rollout.core.clock import Clock, ManualClock
from rollout.core.events import Event
from rollout.state.journal import Journal, JournalError, LockedError, RolloutRecord, SchemaError
from rollout.state.url import open_url, parse_state_url

WAIT = 120.0
"""Seconds any child process or queue is waited for; a test that would wait longer fails."""
SPAWN = multiprocessing.get_context("spawn")  # a fork would copy this process's open connections
START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SEEN_WITHIN = 2.0
"""Seconds a waiting follower may take to learn of an append (polling included)."""


class Backend(ABC):
    """One store under test: its URL (which a child process opens too) and the faults it can suffer."""

    url: str

    def open(self, clock: Clock | None = None) -> Journal:
        """The state at ``url``, through the factory every verb uses."""
        return open_url(parse_state_url(self.url, Path("/")), clock)

    @abstractmethod
    def fail_event_inserts(self, kind: str) -> None:
        """From now on the store itself refuses to insert an event of ``kind`` (inside the transaction)."""

    @abstractmethod
    def set_schema(self, version: int) -> None:
        """Record ``version`` as the store's schema version, as a newer rollout would."""

    @abstractmethod
    def vanish(self) -> None:
        """The store goes away under an open state (a removed file, a dropped database)."""

    @abstractmethod
    def exists(self) -> bool:
        """The store is there (false after ``vanish`` unless something made a new one)."""

    @abstractmethod
    def read_only(self) -> AbstractContextManager[None]:
        """While inside, nothing can write to the store (not even root); undone on leaving."""


def record(rid: str, created: float = 1.0, kind: str = "deploy") -> RolloutRecord:
    return RolloutRecord(rid, kind, "v1", "c0ffee", created, "tester", {"waves": [{"plants": ["p1"]}]})


def spawn(target: Any, *args: Any) -> SpawnProcess:
    process = SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def reap(processes: list[SpawnProcess]) -> None:
    """Every child ended and reaped (a zombie's pid would still look alive)."""
    for process in processes:
        process.join(WAIT)
        if process.is_alive():
            process.kill()
            process.join(WAIT)


def append_many(url: str, rollout: str, writer: str, count: int, go: Any, out: Any) -> None:
    """A child: wait for the others, append ``count`` events as ``writer``, report the seqs it got."""
    journal = open_url(parse_state_url(url, Path("/")))
    try:
        go.wait(WAIT)  # every writer opened its state: they append at once
    except threading.BrokenBarrierError:
        out.put((writer, "the writers never all started"))
        return
    seqs = [journal.append(rollout, Event("step", writer, detail={"writer": writer, "n": n})) for n in range(count)]
    out.put((writer, seqs))


def hold_lock(url: str, plant: str, owner: str, taken: Any, stop: Any) -> None:
    """A child: take the lock of ``plant`` and hold it until told to stop (or killed)."""
    journal = open_url(parse_state_url(url, Path("/")))
    journal.acquire(plant, owner, "holding for a test", 3600.0, "child")
    taken.set()
    stop.wait(WAIT)


def read_kinds(url: str, rollout: str, out: Any) -> None:
    """A child: report the kinds of ``rollout``'s events, in order."""
    journal = open_url(parse_state_url(url, Path("/")))
    out.put([e.event.kind for e in journal.events(rollout=rollout)])


def wait_in_child(url: str, after: int, ready: Any, out: Any) -> None:
    """A child: wait for an event after ``after``; report what wait said, when, and what followed."""
    journal = open_url(parse_state_url(url, Path("/")))
    journal.wait(after, 0.0)  # a backend that listens does so from here on
    ready.set()
    got = journal.wait(after, WAIT)
    returned = time.time()
    out.put((got, returned, [e.seq for e in journal.events_after(after)]))


def holder_in_child(backend: Backend, plant: str, owner: str) -> tuple[SpawnProcess, Any]:
    taken, stop = SPAWN.Event(), SPAWN.Event()
    child = spawn(hold_lock, backend.url, plant, owner, taken, stop)
    assert taken.wait(WAIT), f"the child never took the lock (exit code {child.exitcode})"
    return child, stop


class StateContract:
    """The tests; a subclass provides the ``backend`` fixture."""

    def test_appends_of_several_processes_at_once_get_one_strictly_increasing_order(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        writers = [f"w{i}" for i in range(4)]
        go, out = SPAWN.Barrier(len(writers)), SPAWN.Queue()
        children = [spawn(append_many, backend.url, "r1", w, 200, go, out) for w in writers]
        try:
            reported = dict(out.get(timeout=WAIT) for _ in writers)
        finally:
            reap(children)
        assert all(isinstance(s, list) for s in reported.values()), f"a writer failed: {reported}"
        stored = journal.events(rollout="r1")
        seqs = [e.seq for e in stored]
        assert len(stored) == 800, f"{len(stored)} events stored of 800 appended"
        assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False)), f"seqs not strictly increasing: {seqs}"
        for writer in writers:
            mine = [e for e in stored if e.event.detail["writer"] == writer]
            assert [e.event.detail["n"] for e in mine] == list(range(200)), f"{writer}'s events out of its order"
            assert [e.seq for e in mine] == reported[writer], f"{writer} was told other seqs than were stored"

    def test_a_write_is_read_at_once_by_another_connection_thread_and_process(self, backend: Backend) -> None:
        writer, reader = backend.open(), backend.open()
        writer.create(record("r1"))
        writer.append("r1", Event("rollout.created", "*"))
        writer.append("r1", Event("plant.started", "p1"))
        assert [e.event.kind for e in reader.events(rollout="r1")] == ["rollout.created", "plant.started"]
        seen: list[list[str]] = []
        thread = Thread(target=lambda: seen.append([e.event.kind for e in writer.events(rollout="r1")]))
        thread.start()
        thread.join(WAIT)
        assert seen == [["rollout.created", "plant.started"]], f"another thread of the same state read {seen}"
        out = SPAWN.Queue()
        child = spawn(read_kinds, backend.url, "r1", out)
        try:
            got = out.get(timeout=WAIT)
        finally:
            reap([child])
        assert got == ["rollout.created", "plant.started"], f"another process read {got}"

    def test_a_waiter_in_another_process_sees_an_append_at_once(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        before = journal.append("r1", Event("rollout.created", "*"))
        ready, out = SPAWN.Event(), SPAWN.Queue()
        child = spawn(wait_in_child, backend.url, before, ready, out)
        try:
            assert ready.wait(WAIT), f"the waiter never started (exit code {child.exitcode})"
            time.sleep(0.5)  # the child is inside wait by now
            appended = time.time()
            seq = journal.append("r1", Event("plant.started", "p1"))
            got, returned, seqs = out.get(timeout=WAIT)
        finally:
            reap([child])
        assert got is True and seqs == [seq], f"the waiter said {got} and then read {seqs}, not [{seq}]"
        assert appended <= returned, "wait returned before anything was appended"
        assert returned - appended < SEEN_WITHIN, f"the waiter took {returned - appended:.2f} s to see the append"

    def test_wait_ends_after_its_timeout_when_nothing_is_appended(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        seq = journal.append("r1", Event("rollout.created", "*"))
        started = time.monotonic()
        assert journal.wait(seq, 0.6) is False, "wait said an event came, but none was appended"
        took = time.monotonic() - started
        assert 0.55 <= took < 0.6 + SEEN_WITHIN, f"a wait of 0.6 s took {took:.2f} s"
        started = time.monotonic()
        assert journal.wait(seq - 1, WAIT) is True, "an event after the given seq exists already"
        assert time.monotonic() - started < SEEN_WITHIN, "wait did not return at once for an existing event"

    def test_events_after_a_seq_are_exactly_the_later_ones_in_order(self, backend: Backend) -> None:
        journal = backend.open()
        assert journal.last_seq() == 0 and journal.events_after(0) == []
        journal.create(record("r1"))
        journal.create(record("r2", 2.0))
        appended = [("r1", "rollout.created"), ("r2", "rollout.created"), ("r1", "plant.started"), ("r2", "plant.done")]
        seqs = [journal.append(rid, Event(kind, "p1")) for rid, kind in appended]  # type: ignore[arg-type]
        assert journal.last_seq() == seqs[-1]
        later = journal.events_after(seqs[1])
        assert [(e.seq, e.rollout, e.event.kind) for e in later] == [
            (seqs[2], "r1", "plant.started"),
            (seqs[3], "r2", "plant.done"),
        ], later
        assert [e.seq for e in journal.events_after(seqs[0], rollout="r2")] == [seqs[1], seqs[3]]
        assert journal.events_after(0) == journal.events() and len(journal.events()) == 4
        assert journal.events_after(seqs[-1]) == [], "nothing was appended after the last seq"

    def test_rollouts_are_created_once_and_read_back_whole(self, backend: Backend) -> None:
        journal = backend.open()
        first, second = record("r1", 1.0), record("r2", 2.0, "rollback")
        journal.create(second)
        journal.create(first)
        assert journal.rollout("r1") == first and journal.rollout("r2") == second
        assert journal.rollout("nope") is None
        assert [r.id for r in journal.rollouts()] == ["r1", "r2"], "rollouts not in order of creation"
        journal.append("r2", Event("plant.started", "p2"))
        assert [r.id for r in journal.rollouts("p2")] == ["r2"]
        assert journal.rollouts("p9") == []
        with pytest.raises(JournalError):
            journal.create(record("r1", 3.0))
        assert journal.rollout("r1") == first, "a refused create changed the rollout"

    def test_events_are_kept_whole_and_filtered_by_rollout_plant_and_kind(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        journal.create(record("r2", 2.0))
        full = Event("layer.done", "p1", "edge", "h1", "v2", {"took": 1.5, "hosts": ["h1"]}, 1234.5)
        appended = [
            ("r1", full),
            ("r1", Event("plant.started", "p2")),
            ("r2", Event("layer.done", "p2", "edge")),
            ("r2", Event("plant.done", "p1")),
        ]
        seqs = [journal.append(rid, event) for rid, event in appended]
        back = journal.events(rollout="r1")[0]
        assert (back.seq, back.rollout) == (seqs[0], "r1")
        assert back.event == Event("layer.done", "p1", "edge", "h1", "v2", full.detail, 1234.5, seqs[0], "r1"), back

        def kinds(events: list[Any]) -> list[tuple[str, str]]:
            return [(e.rollout, e.event.kind) for e in events]

        assert kinds(journal.events(plant="p2")) == [("r1", "plant.started"), ("r2", "layer.done")]
        assert kinds(journal.events(kinds=("layer.done",))) == [("r1", "layer.done"), ("r2", "layer.done")]
        assert kinds(journal.events("r2", "p1")) == [("r2", "plant.done")]
        assert kinds(journal.events("r2", kinds=("plant.done", "layer.done"))) == [
            ("r2", "layer.done"),
            ("r2", "plant.done"),
        ]
        assert journal.events(rollout="r9") == [] and journal.events(kinds=("nothing",)) == []

    def test_an_outcome_and_the_release_of_its_lock_are_one_write(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        journal.acquire("p1", "r1", "deploy", 60.0)
        seqs = journal.append_releasing("r1", [Event("plant.done", "p1"), Event("plant.ok", "p1")], "p1", "r1")
        assert [e.seq for e in journal.events(rollout="r1")] == seqs and len(seqs) == 2
        assert journal.locks() == [], f"the lock outlived its outcome: {journal.locks()}"

    def test_a_failing_outcome_write_leaves_the_lock_held_and_no_event(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        lock = journal.acquire("p1", "r1", "deploy", 60.0)
        journal.append("r1", Event("plant.started", "p1"))
        backend.fail_event_inserts("boom")
        outcome = [Event("layer.done", "p1"), Event("plant.done", "p1"), Event("boom", "p1")]
        with pytest.raises(JournalError):
            journal.append_releasing("r1", outcome, "p1", "r1")
        left = [e.event.kind for e in journal.events()]
        assert left == ["plant.started"], f"half an outcome was recorded: {left}"
        assert journal.locks() == [lock], f"the lock went without its outcome: {journal.locks()}"

    def test_groups_of_several_writers_are_one_write_that_releases_only_their_locks(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        for plant in ("p1", "p2", "p3"):
            journal.acquire(plant, "r1", "deploy", 60.0)
        other = journal.acquire("p4", "r2", "deploy", 60.0)
        groups = [
            ([Event("layer.staging", "p1")], None),
            ([Event("plant.done", "p2"), Event("plant.unlocked", "p2")], "p2"),
            ([Event("layer.activated", "p3"), Event("layer.checking", "p3")], None),
            ([Event("plant.failed", "p4")], "p4"),  # p4's lock is r2's: the group names it, but r1 owns none
        ]
        seqs = journal.append_groups("r1", groups, "r1")
        assert [len(s) for s in seqs] == [1, 2, 2, 1]
        flat = [seq for group in seqs for seq in group]
        assert flat == sorted(flat) and len(set(flat)) == 6, f"seqs not in the groups' order: {seqs}"
        kept = journal.events(rollout="r1")
        assert [(e.seq, e.event.kind) for e in kept] == list(zip(flat, [
            "layer.staging", "plant.done", "plant.unlocked", "layer.activated", "layer.checking", "plant.failed",
        ], strict=True))  # fmt: skip
        assert sorted(lock.plant for lock in journal.locks()) == ["p1", "p3", "p4"], journal.locks()
        assert other in journal.locks(), "another rollout's lock went"
        assert journal.append_groups("r1", [], "r1") == [] and len(journal.events(rollout="r1")) == 6

    def test_a_failing_group_write_keeps_none_of_its_groups(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        locks = [journal.acquire(plant, "r1", "deploy", 60.0) for plant in ("p1", "p2")]
        backend.fail_event_inserts("boom")
        groups = [([Event("plant.done", "p1")], "p1"), ([Event("layer.done", "p2"), Event("boom", "p2")], "p2")]
        with pytest.raises(JournalError):
            journal.append_groups("r1", groups, "r1")
        assert journal.events() == [], "part of a failed group write was kept"
        assert sorted(journal.locks(), key=lambda lock: lock.plant) == locks, "a lock went without its outcome"

    def test_a_lock_is_renewed_and_expires_on_the_injected_clock(self, backend: Backend) -> None:
        clock = ManualClock(START)
        mine, theirs = backend.open(clock), backend.open(clock)
        now = START.timestamp()
        lock = mine.acquire("p1", "r1", "deploy", 60.0, "ann")
        assert (lock.acquired, lock.expires, lock.operator) == (now, now + 60.0, "ann")
        assert mine.locks() == [lock]
        clock.advance(50)
        mine.renew(["p1"], "r1", 60.0)
        assert [lk.expires for lk in theirs.locks()] == [now + 110.0], "renew did not move the expiry"
        clock.advance(55)  # 105 s: the renewed lease still runs
        with pytest.raises(LockedError):
            theirs.acquire("p1", "r2", "deploy", 60.0)
        clock.advance(10)  # 115 s: expired
        taken = theirs.acquire("p1", "r2", "deploy", 60.0, "bob")
        assert mine.locks() == [taken] and taken.expires == now + 175.0, f"expired lock not taken: {mine.locks()}"

    def test_a_live_holder_is_refused_and_named(self, backend: Backend) -> None:
        journal = backend.open()
        child, stop = holder_in_child(backend, "p1", "r-child")
        try:
            held = journal.locks()
            for owner in ("r-other", "r-child"):  # the same owner in another process is another run
                with pytest.raises(LockedError) as refused:
                    journal.acquire("p1", owner, "deploy", 60.0)
                message = str(refused.value)
                assert "r-child" in message and f"pid {child.pid}" in message and "child" in message, message
            assert journal.locks() == held, "a refused acquire changed the lock"
        finally:
            stop.set()
            reap([child])

    def test_the_lock_of_a_killed_holder_is_taken_over(self, backend: Backend) -> None:
        journal = backend.open()
        child, _ = holder_in_child(backend, "p1", "r-child")
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        reap([child])
        assert [lk.pid for lk in journal.locks()] == [child.pid], "the dead holder's lock should still be recorded"
        taken = journal.acquire("p1", "r-next", "deploy", 60.0)
        assert journal.locks() == [taken] and taken.pid == os.getpid(), f"not taken over: {journal.locks()}"

    def test_the_lock_of_a_killed_holder_not_yet_reaped_is_taken_over(self, backend: Backend) -> None:
        """A holder that ended is a zombie until its parent reaps it, and a parent (an init) may
        take seconds or never: its pid still answers kill -0, yet it holds nothing."""
        journal = backend.open()
        child, _ = holder_in_child(backend, "p1", "r-child")
        assert child.pid is not None
        try:
            os.kill(child.pid, signal.SIGKILL)
            deadline = time.monotonic() + WAIT
            while alive(child.pid):
                assert time.monotonic() < deadline, "the killed child never ended"
                time.sleep(0.01)
            os.kill(child.pid, 0)  # still there, not reaped: a zombie
            taken = journal.acquire("p1", "r-next", "deploy", 60.0)
            assert journal.locks() == [taken] and taken.pid == os.getpid(), f"not taken over: {journal.locks()}"
        finally:
            reap([child])

    def test_a_lock_is_reentrant_for_its_owner_in_this_process_only(self, backend: Backend) -> None:
        journal = backend.open()
        journal.acquire("p1", "r1", "deploy", 60.0)
        again = journal.acquire("p1", "r1", "deploy again", 90.0)
        assert journal.locks() == [again], f"re-entrant acquire: {journal.locks()}"
        with pytest.raises(LockedError):
            backend.open().acquire("p1", "r2", "deploy", 60.0)
        assert journal.locks() == [again]

    def test_only_the_owner_renews_or_releases_a_lock(self, backend: Backend) -> None:
        clock = ManualClock(START)
        journal = backend.open(clock)
        lock = journal.acquire("p1", "r1", "deploy", 60.0)
        other = journal.acquire("p2", "r2", "deploy", 60.0)
        clock.advance(30)
        journal.renew(["p1", "p2"], "r2", 60.0)
        journal.release("p1", "r2")
        renewed = [lk.expires - START.timestamp() for lk in journal.locks()]
        assert journal.locks()[0] == lock and renewed == [60.0, 90.0], f"another owner moved a lock: {renewed}"
        journal.release("p1", "r1")
        assert [lk.plant for lk in journal.locks()] == ["p2"] and journal.locks()[0].owner == other.owner

    def test_a_newer_schema_is_refused_and_the_current_one_opens(self, backend: Backend) -> None:
        journal = backend.open()
        assert journal.schema() == journal.known_schema, f"a new state is at schema {journal.schema()}"
        journal.create(record("r1"))
        backend.set_schema(journal.known_schema + 1)
        with pytest.raises(SchemaError) as refused:
            backend.open()
        expected = f"has schema {journal.known_schema + 1}, this rollout knows up to {journal.known_schema}"
        assert expected in str(refused.value) and "upgrade rollout" in str(refused.value), str(refused.value)
        backend.set_schema(journal.known_schema)
        assert backend.open().rollout("r1") == record("r1"), "the refused state lost its rollout"

    def test_a_vanished_store_is_an_error_never_a_new_empty_state(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        journal.acquire("p1", "r1", "deploy", 60.0)
        backend.vanish()
        attempts: list[Callable[[], object]] = [
            lambda: journal.append("r1", Event("plant.started", "p1")),
            lambda: journal.append_releasing("r1", [Event("plant.done", "p1")], "p1", "r1"),
            lambda: journal.acquire("p2", "r1", "deploy", 60.0),
            lambda: journal.events(),
            lambda: journal.events_after(0),
            journal.last_seq,
            lambda: journal.locks(),
            journal.sync,
        ]
        for attempt in attempts:
            with pytest.raises(JournalError):
                attempt()
        assert not backend.exists(), "a new, empty store took the vanished one's place"

    def test_a_read_only_store_refuses_every_write_with_a_journal_error(self, backend: Backend) -> None:
        journal = backend.open()
        journal.create(record("r1"))
        lock = journal.acquire("p1", "r1", "deploy", 60.0)
        journal.append("r1", Event("plant.started", "p1"))
        with backend.read_only():
            writes: list[Callable[[], object]] = [
                lambda: journal.append("r1", Event("plant.failed", "p1")),
                lambda: journal.append_releasing("r1", [Event("plant.done", "p1")], "p1", "r1"),
                lambda: journal.acquire("p2", "r1", "deploy", 60.0),
                lambda: journal.renew(["p1"], "r1", 600.0),
                lambda: journal.release("p1", "r1"),
                lambda: journal.create(record("r2")),
            ]
            for write in writes:
                with pytest.raises(JournalError):
                    write()
        assert [e.event.kind for e in journal.events()] == ["plant.started"], "a refused write was recorded"
        assert journal.locks() == [lock] and [r.id for r in journal.rollouts()] == ["r1"]
