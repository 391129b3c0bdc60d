"""What a running rollout writes, and the leases it holds while it runs.

Every event goes to the journal first, then to the display, and is folded into the
rollout's state in the same order, under one lock: the state the decisions read is the
journal's, never ahead of it. A run holds a lease on the rollout itself (so a second
process cannot drive it at the same time, and ``abort`` can tell a running rollout from
one that nothing runs) and a lease on each plant it works on; a heartbeat renews them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from rollout.core.events import DURABLE, PLANT_DONE, ROLLOUT, Event, EventKind, EventSink
from rollout.core.projection import RolloutState, fold
from rollout.errors import RolloutError
from rollout.masking import mask_data
from rollout.state.journal import Journal, JournalError, Lock, LockedError

LOCK_TTL = 60.0
"""Seconds a lease lasts unless renewed; the heartbeat renews it four times as often."""
RUN_PREFIX = "rollout/"
"""Leases on rollouts are keyed ``rollout/<id>``: a ``/`` is never in a plant's name."""
FENCED = ("layer.staging", "layer.activating", "layer.restarting", "rollback.started", "rollback.layer")
"""Events announcing a step that changes a host: each is written only while the plant's lease
is still this run's (its fencing number unchanged); otherwise the step is not taken."""
FOREIGN = ("abort.requested", "approval.granted", "rollout.aborted")
"""Kinds other processes write into a running rollout (``abort``, ``approve``)."""

T = TypeVar("T")


def masked(event: Event) -> Event:
    detail = mask_data(event.detail)
    return event if detail == event.detail else replace(event, detail=detail)  # type: ignore[arg-type]


def run_key(rollout: str) -> str:
    return RUN_PREFIX + rollout


def is_run_lease(lock: Lock) -> bool:
    return lock.plant.startswith(RUN_PREFIX)


class AlreadyRunning(LockedError):
    """Another live process runs this rollout."""

    def __init__(self, rollout: str, lock: Lock) -> None:
        self.plant = ""
        self.lock = lock
        RolloutError.__init__(self, f"rollout {rollout} is already being run by pid {lock.pid} on {lock.hostname}")


class LeaseLost(LockedError):
    """The plant's lease is no longer this run's (it expired and was taken over, or was released
    under it): the run stops before the step it was about to take."""

    def __init__(self, plant: str, lease: Lock, step: str, holder: Lock | None) -> None:
        self.plant = plant
        self.lock = holder or lease
        now = holder.describe() if holder else "it expired and nobody holds it"
        RolloutError.__init__(
            self, f"plant {plant}: this run lost its lease (fence {lease.fence}; now {now}); stopped before {step}"
        )


@dataclass
class _Queued:
    """One writer's events in the group commit, and how its write ended."""

    events: list[Event]
    unlock: str | None
    finished: bool = False
    error: Exception | None = None

    def finish(self, error: Exception | None) -> None:
        self.finished, self.error = True, error


class Recorder:
    """The journal, the display and the folded state of one rollout, written as one."""

    def __init__(self, journal: Journal, rollout: str, operator: str, display: EventSink) -> None:
        self.journal = journal
        self.rollout = rollout
        self.operator = operator
        self.display = display
        history = journal.events(rollout=rollout)
        self.state: RolloutState = fold(e.event for e in history)
        self._seen = history[-1].seq if history else 0
        self._outside = self._seen
        """The last seq of another process's events looked at: never moved by this run's writes,
        whose seqs may pass an abort written in between."""
        self._order = threading.Lock()
        """Journal order = display order = fold order."""
        self._queue_guard = threading.Lock()
        self._queue: list[_Queued] = []
        """Writes waiting for the thread that holds ``_order`` to journal them with its own."""
        self._guard = threading.Lock()
        self._held: set[str] = set()
        self._leases: dict[str, Lock] = {}
        """The lease this run took of each plant it works on, with its fencing number."""
        self._stop = threading.Event()

    # -- reading -----------------------------------------------------------------------

    @property
    def seen(self) -> int:
        """The last journal seq folded in: it grows with every event this run writes."""
        return self._seen

    def read(self, look: Callable[[RolloutState], T]) -> T:
        """``look`` at the state while no event is folded in (decisions are made on a still state)."""
        with self._order:
            return look(self.state)

    def take_foreign(self) -> None:
        """Fold in what other processes wrote since (an abort, an approval): a cheap query."""
        found = [e for e in self.journal.events(rollout=self.rollout, kinds=FOREIGN) if e.seq > self._outside]
        with self._order:
            for journal_event in found:
                self.state.apply(journal_event.event)
                self._outside = max(self._outside, journal_event.seq)

    # -- writing -----------------------------------------------------------------------

    def sink(self) -> EventSink:
        return self.record

    def emit(self, kind: EventKind, plant: str = ROLLOUT, detail: dict[str, Any] | None = None) -> None:
        self.record(Event(kind, plant, detail=detail or {}))

    def record(self, event: Event) -> None:
        """Journal first, then show and fold. A plant's outcome, the release of its lease and
        ``plant.unlocked`` are one write: a run killed between two writes would otherwise leave
        the lease behind a finished plant."""
        event = masked(event)  # a check's output may quote a rendered secret: never journaled or shown
        if event.kind in FENCED:
            self._fence(event)
        lease: Lock | None = None
        with self._guard:
            releasing = event.kind in PLANT_DONE and event.plant in self._held
            if releasing:
                self._held.discard(event.plant)
                lease = self._leases.pop(event.plant, None)
        if releasing and self._still_mine(lease):
            self._write([event, Event("plant.unlocked", event.plant)], event.plant)
        else:
            self._write([event], None)
        if event.kind in DURABLE:
            self.journal.sync()  # outside the lock: plants' syncs overlap instead of queueing

    def _fence(self, event: Event) -> None:
        """Refuse to announce (and so to take) a step on a plant whose lease this run lost."""
        with self._guard:
            lease = self._leases.get(event.plant)
        if lease is not None and not self.journal.holding(lease):
            holder = next((lock for lock in self.journal.locks() if lock.plant == event.plant), None)
            raise LeaseLost(event.plant, lease, event.kind, holder)

    def _still_mine(self, lease: Lock | None) -> bool:
        """Whether the lease is still this run's to give up: one lost to another process of this
        same rollout (same owner) must not be released by the run that lost it."""
        return lease is None or self.journal.holding(lease)

    def _write(self, events: list[Event], unlock: str | None) -> None:
        """Append, then fold and show, as one. Group commit: the thread that takes the lock writes
        every group queued by then in one transaction, so plants' threads that write at once share
        a commit instead of queueing one commit each behind the lock. Each returns once its own
        events are journaled, and raises what its own write met."""
        mine = _Queued(events, unlock)
        with self._queue_guard:
            self._queue.append(mine)
        with self._order:
            if not mine.finished:
                self._write_queued()
        if mine.error is not None:
            raise mine.error

    def _write_queued(self) -> None:
        with self._queue_guard:
            batch, self._queue = self._queue, []
        try:
            written = self.journal.append_groups(self.rollout, [(q.events, q.unlock) for q in batch], self.rollout)
        except BaseException as exc:  # nothing of the batch is journaled: every writer in it raises
            for queued in batch:
                queued.finish(exc if isinstance(exc, Exception) else JournalError("interrupted before it was written"))
            if not isinstance(exc, Exception):
                raise
            return
        for queued, seqs in zip(batch, written, strict=True):
            try:
                for event, seq in zip(queued.events, seqs, strict=True):
                    shown = replace(event, seq=seq, rollout=self.rollout)
                    self.state.apply(shown)
                    self._seen = max(self._seen, seq)
                    self.display(shown)
            except Exception as exc:  # the display failed (a closed pipe): raised by its own writer
                queued.finish(exc)
            else:
                queued.finish(None)

    # -- leases ------------------------------------------------------------------------

    @contextmanager
    def driving(self) -> Iterator[None]:
        """Hold the rollout's own lease, with a heartbeat renewing every lease this run holds;
        at the end, every lease of the rollout is given up (a killed run's left-overs too)."""
        try:
            self.journal.acquire(run_key(self.rollout), self.rollout, "running it", LOCK_TTL, self.operator)
        except LockedError as exc:
            raise AlreadyRunning(self.rollout, exc.lock) from None
        heartbeat = threading.Thread(target=self._renew, daemon=True, name=f"heartbeat {self.rollout}")
        heartbeat.start()
        try:
            self.release_leftovers()
            yield
            self.release_leftovers()
        finally:
            self._stop.set()
            heartbeat.join(timeout=5)
            self.journal.release(run_key(self.rollout), self.rollout)

    @contextmanager
    def locked(self, plant: str, purpose: str) -> Iterator[None]:
        """Hold the plant's lease while its work goes on. The plant's outcome releases it in the
        same write (``record``); when the work ends without one, it is released here."""
        lease = self.journal.acquire(plant, self.rollout, purpose, LOCK_TTL, self.operator)
        with self._guard:
            self._held.add(plant)
            self._leases[plant] = lease
        self.emit("plant.locked", plant, {"owner": self.rollout})
        try:
            yield
        finally:
            with self._guard:
                still = plant in self._held
                self._held.discard(plant)
                taken = self._leases.pop(plant, None)
            if still and self._still_mine(taken):
                self._write([Event("plant.unlocked", plant)], plant)

    def release_leftovers(self) -> None:
        """Plant leases of this rollout that no live process of it holds: a killed run's, left on
        plants whose outcome it had already written, or that it had locked but not yet started."""
        now = time.time()  # leases are timed by the state's clock, not by a shifted ROLLOUT_NOW
        for lock in self.journal.locks():
            if lock.owner != self.rollout or is_run_lease(lock) or lock.plant in self._held:
                continue
            if lock.stale(now) or lock.mine(self.rollout):
                left = {"left_by": f"pid {lock.pid} on {lock.hostname}"}
                self._write([Event("plant.unlocked", lock.plant, detail=left)], lock.plant)

    def _renew(self) -> None:
        while not self._stop.wait(LOCK_TTL / 4):
            with self._guard:
                held = [run_key(self.rollout), *sorted(self._held)]
            try:
                self.journal.renew(held, self.rollout, LOCK_TTL)
            except Exception:  # a failed renewal shows as an expiring lease; the next write stops the run
                pass
