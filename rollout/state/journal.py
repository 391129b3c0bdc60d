"""The state's interface: what rollout needs of any backend that records its events and locks,
and keeps the console's users, sessions, jobs and notifications (``rollout.state.access``).

Every event is committed before the step it announces is taken, so a run killed at any
point leaves a state that says how far it got. Status, history and resume read it;
nothing keeps a second truth. SQLite (``rollout.state.sqlite``) is the embedded default;
a backend is opened from a state URL by ``rollout.state.url.open_url``. Every backend
passes the same contract suite (``tests/state_contract.py``).
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rollout.core.clock import local_time
from rollout.core.events import Event
from rollout.state.access import AccessStore
from rollout.state.agents import AgentStore
from rollout.state.assets import AssetStore
from rollout.state.errors import JournalError as JournalError  # the state's errors, named here as before
from rollout.state.errors import LockedError as LockedError
from rollout.state.errors import SchemaError as SchemaError

EventGroup = tuple[list[Event], str | None]
"""Events appended together, and the plant whose lock they release (None: none)."""


@dataclass(frozen=True)
class Lock:
    """A lease on one plant: who holds it, from which process, until when.

    ``fence`` grows each time the plant's lease goes to a new holder (never for a
    re-entrant acquire or a renewal): a holder that was taken over sees a fence other
    than its own and knows it must not act (``Journal.holding``).
    """

    plant: str
    owner: str
    purpose: str
    acquired: float
    expires: float
    hostname: str
    pid: int
    operator: str = ""
    fence: int = 0

    def describe(self) -> str:
        """Who holds it, from where, for what and until when: all a person needs to find the holder."""
        who = self.operator or "an unknown operator"
        return (
            f"rollout {self.owner} ({self.purpose}) of {who} on machine {self.hostname} (pid {self.pid}), "
            f"since {local_time(self.acquired)}, until {local_time(self.expires)} unless renewed"
        )

    def mine(self, owner: str) -> bool:
        """Held by this very process for this owner (re-entrant), not by another run of it."""
        return self.owner == owner and self.pid == os.getpid() and self.hostname == socket.gethostname()

    def stale(self, now: float) -> bool:
        """Expired, or held by a process of this machine that no longer exists."""
        if self.expires < now:
            return True
        return self.hostname == socket.gethostname() and not _alive(self.pid)


@dataclass(frozen=True)
class RolloutRecord:
    """One rollout or rollback as created: what it deploys, who started it, its plan."""

    id: str
    kind: str
    release: str | None
    commit: str | None
    created: float
    operator: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class JournalEvent:
    """An event as stored: its place in the one global order (``seq``) and its rollout."""

    seq: int
    rollout: str
    event: Event


class Journal(AccessStore, AssetStore, AgentStore, ABC):
    """What rollout needs of its state, whatever holds it: the events and leases below, and
    the access part it inherits (``AccessStore``: users, sessions, jobs, deliveries), and the
    hosts' asset records (``AssetStore``), and what agent plants need (``AgentStore``).

    The contract every backend keeps (and ``tests/state_contract.py``, ``tests/lease_contract.py``
    and ``tests/access_contract.py`` check):

    * Each write is one transaction, committed before the method returns; a failed write
      raises ``JournalError`` and leaves nothing of itself behind.
    * Events have one global order: ``seq`` is strictly increasing across every process
      and machine that writes, and an event once read never changes place.
    * What one process committed, every other process and connection reads at once.
    * A store that vanished, was replaced or cannot be written raises ``JournalError``;
      it is never replaced by a new, empty state behind the caller's back.
    * The store records its schema version; a backend refuses (``SchemaError``) a state
      whose schema is newer than ``known_schema``. An older one is upgraded in place by a
      store of one machine (SQLite, as it opens); a shared store (PostgreSQL) refuses it with
      a ``SchemaError`` that says to run ``rollout state migrate``, its only upgrade path.
    """

    known_schema: ClassVar[int]
    """The newest schema version this backend reads and writes."""

    def close(self) -> None:  # noqa: B027  (a backend with nothing to give back keeps this)
        """Give back what this journal holds (connections); it is unusable afterwards. Optional:
        whatever is left open is closed when the process ends."""

    @abstractmethod
    def schema(self) -> int:
        """The schema version the store is at (``known_schema`` once it is open)."""

    @abstractmethod
    def create(self, record: RolloutRecord) -> None:
        """Record a new rollout; its id must be new."""

    @abstractmethod
    def append(self, rollout: str, event: Event) -> int:
        """Record ``event`` of ``rollout`` and return its ``seq``, after every seq returned before."""

    def append_releasing(self, rollout: str, events: list[Event], plant: str, owner: str) -> list[int]:
        """Append ``events`` and release ``owner``'s lock of ``plant`` in one transaction: an
        outcome is never recorded with its lock still held, nor a lock released without it.
        On failure neither happened: no event of the list is stored and the lock is still held."""
        return self.append_groups(rollout, [(events, plant)], owner)[0]

    @abstractmethod
    def append_groups(self, rollout: str, groups: Sequence[EventGroup], owner: str) -> list[list[int]]:
        """Append every group's events, and release ``owner``'s lock of the plant each group names,
        in one transaction: all of it or none. Returns each group's seqs. A rollout's plants'
        threads write so together: one commit for what they had to write at once, not one each.
        Synchronous (on disk when it returns) if any group releases a lock or holds a DURABLE event."""

    @abstractmethod
    def adopt(self, records: list[RolloutRecord], events: list[JournalEvent]) -> list[str]:
        """Record the rollouts of ``records`` that are not here yet, each with its events of
        ``events`` (in that order, with new seqs), in one transaction, and return their ids.
        Rollouts already here are left as they are: adopting the same history twice adds nothing."""

    @abstractmethod
    def rollout(self, rollout: str) -> RolloutRecord | None:
        """The rollout of that id, or None."""

    @abstractmethod
    def rollouts(self, plant: str | None = None) -> list[RolloutRecord]:
        """Every rollout in order of creation; with ``plant``, those with an event of that plant."""

    @abstractmethod
    def events(
        self, rollout: str | None = None, plant: str | None = None, kinds: tuple[str, ...] = ()
    ) -> list[JournalEvent]:
        """Events in ``seq`` order, kept to ``rollout``, ``plant`` and ``kinds`` where given."""

    @abstractmethod
    def last_seq(self) -> int:
        """The seq of the latest event (0 when there is none): a cheap query, where a follower starts."""

    @abstractmethod
    def events_after(self, seq: int, rollout: str | None = None) -> list[JournalEvent]:
        """The events after ``seq`` (of ``rollout`` where given), in ``seq`` order. Appends commit in
        the order of their seqs, so a follower that passed ``seq`` never misses an earlier one."""

    @abstractmethod
    def wait(self, after_seq: int, timeout: float) -> bool:
        """Block until an event after ``after_seq`` may exist (True) or ``timeout`` seconds of the
        machine's monotonic clock passed without one (False); True at once if one exists already.
        For one thread at a time; a follower calls ``events_after`` when it returns True."""

    @abstractmethod
    def sync(self) -> None:
        """Put every event appended so far on disk, safe from a power cut."""

    @abstractmethod
    def acquire(self, plant: str, owner: str, purpose: str, ttl: float, operator: str = "") -> Lock:
        """Take the lease of ``plant`` for ``ttl`` seconds of the backend's clock and return it.

        Taken when the plant is free, when its lease expired, when its holder is a process of
        this machine that no longer exists, or (re-entrant) when this process already holds it
        for ``owner``; otherwise ``LockedError`` naming the holder, and the lease is unchanged."""

    @abstractmethod
    def holding(self, lock: Lock) -> bool:
        """Whether ``lock`` is still its plant's lease: not released, not taken over (same owner
        and fence) and not expired. A runner asks this before every step that changes a host."""

    @abstractmethod
    def renew(self, plants: list[str], owner: str, ttl: float) -> None:
        """Move the expiry of ``owner``'s leases of ``plants`` to ``ttl`` seconds from now; others' are untouched."""

    @abstractmethod
    def release(self, plant: str, owner: str) -> None:
        """Give up ``owner``'s lease of ``plant``; a lease of another owner stays."""

    @abstractmethod
    def locks(self) -> list[Lock]:
        """Every lease held, stale ones included, by plant."""


def _alive(pid: int) -> bool:
    """Whether the process runs: one that ended but was not reaped yet (a zombie, which an init
    may leave for seconds or for good) holds nothing any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b") ")[2][:1] != b"Z"
    except OSError:  # no /proc here, or it just went: kill's answer stands
        return True
