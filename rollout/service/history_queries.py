"""Past and unfinished rollouts and rollbacks, read from the state. Nothing here prints or exits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rollout.config.project import Project
from rollout.core.events import ROLLOUT
from rollout.core.projection import ENDED, fold
from rollout.service.recorder import is_run_lease
from rollout.service.state import open_state
from rollout.state.journal import Journal, JournalEvent, Lock, RolloutRecord

_ENDING = ("rollout.finished", "rollout.halted", "rollout.aborted")
"""Rollout events after which its state is ended for good (``RolloutState.status``)."""


def under_way(project: Project, journal: Journal | None = None) -> list[HistoryEntry]:
    """Rollouts that have not ended: running, paused for approval, or interrupted."""
    journal = journal or open_state(project)
    # One cheap read finds the rollouts that ended; only the others' events are read and folded.
    ended = {e.rollout for e in journal.events(kinds=_ENDING) if e.event.plant == ROLLOUT}
    return [e for e in history(project, None, journal, ended) if e.state not in ENDED]


def plant_locks(project: Project, journal: Journal | None = None) -> list[Lock]:
    """The leases held on plants (stale ones included); a rollout's own lease is not a plant's."""
    return [lock for lock in (journal or open_state(project)).locks() if not is_run_lease(lock)]


def rollout_state(events: list[JournalEvent]) -> str:
    """finished, halted, aborted, paused, running or interrupted: read from the rollout's events alone."""
    return fold(e.event for e in events).status


def _live_status(status: str, rollout: str, live: set[str]) -> str:
    """A rollout that has not ended and is not paused runs while a live process holds its lease;
    otherwise a run of it was interrupted (killed, or its machine lost)."""
    if status in ("running", "interrupted"):
        return "running" if rollout in live else "interrupted"
    return status


@dataclass(frozen=True)
class HistoryEntry:
    record: RolloutRecord
    state: str
    outcomes: dict[str, str]
    ended: float | None
    release: str | None
    """The release deployed; for a rollback, what the plant went back to (as its hosts recorded)."""
    note: str = ""
    """Why it ended as it did, when someone chose it (an abort: who and why)."""
    reason: str = ""
    """Why, as people said: a rollback's reason; a deploy's approvals (``approved rest by ann:
    <why>``) and its abort's reason, joined by ``; ``."""

    def as_dict(self) -> dict[str, Any]:
        """The entry as ``history --json`` prints it and the API sends it (times in UTC)."""
        return {
            "type": "rollout",
            "id": self.record.id,
            "kind": self.record.kind,
            "release": self.release,
            "commit": self.record.commit,
            "by": self.record.operator,
            "started": utc(self.record.created),
            "ended": utc(self.ended) if self.ended else None,
            "state": self.state,
            "note": self.note,
            "reason": self.reason,
            "plants": self.outcomes,
        }


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def history(
    project: Project, plant: str | None, journal: Journal | None = None, skip: set[str] | None = None
) -> list[HistoryEntry]:
    """Every rollout and rollback (of ``plant`` where given), oldest first; ``journal``: the
    state already open (the console's), else the project's is opened; ``skip``: rollouts left out."""
    journal = journal or open_state(project)
    if plant is not None:
        project.plant(plant)
    now = time.time()
    live = {lock.owner for lock in journal.locks() if is_run_lease(lock) and not lock.stale(now)}
    entries = []
    for record in journal.rollouts(plant):
        if skip and record.id in skip:
            continue
        events = journal.events(rollout=record.id)
        state = fold(e.event for e in events)
        outcomes = state.outcomes()
        if plant is not None:
            outcomes = {plant: outcomes.get(plant, "not reached")}
        ended = events[-1].event.time if events else None
        release = record.release or state.went_back_to
        abort = state.abort
        why = f"aborted by {abort.by}: {abort.reason}" if abort and state.status == "aborted" else ""
        status = _live_status(state.status, record.id, live) if record.kind == "deploy" else state.status
        entries.append(HistoryEntry(record, status, outcomes, ended, release, why, state.reasons()))
    return entries
