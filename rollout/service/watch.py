"""Following the state as it grows: each new event of the rollouts under way (and of those that
start meanwhile) as it is committed, with its rollout's state folded so far. Nothing here
prints or exits.

An event appended now belongs to a rollout or rollback that something is running now, so a
follower shows every new event; a rollout that has ended gets none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rollout.config.project import Project
from rollout.core.projection import RolloutState, fold
from rollout.service.state import open_state
from rollout.state.journal import Journal, JournalEvent

TICK = 1.0
"""Longest single wait on the state: how soon a quiet follower looks again whether anything runs."""
_STOPPED = ("finished", "halted", "aborted", "paused")
"""A rollout's states after which its run lets go of its leases: time to look whether anything runs."""


@dataclass(frozen=True)
class Update:
    """One new event, and the state of its rollout with that event folded in.

    ``state`` is the follower's running fold of the rollout: the next update of the same
    rollout folds into it, so read it when the update comes."""

    event: JournalEvent
    state: RolloutState


def position(project: Project) -> int:
    """The seq of the state's latest event: a follow from it shows whatever is appended next."""
    return open_state(project).last_seq()


def follow(
    project: Project,
    after: int,
    duration: float | None = None,
    until_idle: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> Iterator[Update]:
    """The events appended after seq ``after``, in seq order, as they are committed.

    Ends after ``duration`` seconds when given (none: when the caller stops), or, with
    ``until_idle``, once nothing runs a rollout or rollback (at once if nothing does now). A
    PostgreSQL state is told of each append (LISTEN/NOTIFY); an SQLite one is polled."""
    journal = open_state(project)
    deadline = None if duration is None else monotonic() + duration
    folded: dict[str, RolloutState] = {}
    try:
        look = until_idle
        while not (look and idle(journal)):
            left = TICK if deadline is None else min(TICK, deadline - monotonic())
            if left <= 0:
                return
            if not journal.wait(after, left):
                look = until_idle  # quiet for a while: a run may have ended, or been killed
                continue
            look = False
            for item in journal.events_after(after):
                after = item.seq
                state = _fold_in(journal, folded, item)
                look = look or (until_idle and state.status in _STOPPED)
                yield Update(item, state)
    finally:
        journal.close()


def idle(journal: Journal) -> bool:
    """No live process holds a lease: nothing runs a rollout or a rollback now. A paused or an
    interrupted rollout waits for a person; it does not keep a follower waiting."""
    now = time.time()  # leases are timed by the state's clock, as ``Lock.stale`` reads them
    return all(lock.stale(now) for lock in journal.locks())


def _fold_in(journal: Journal, folded: dict[str, RolloutState], item: JournalEvent) -> RolloutState:
    """``item`` folded into its rollout's state; at a rollout's first new event, what it recorded
    before is folded first, so the state is the whole rollout's and not only what was watched."""
    state = folded.get(item.rollout)
    if state is None:
        state = fold(e.event for e in journal.events(rollout=item.rollout) if e.seq < item.seq)
        folded[item.rollout] = state
    state.apply(item.event)
    return state
