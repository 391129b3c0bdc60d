"""Past and unfinished rollouts and rollbacks, read from the state. Nothing here prints or exits."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.config.project import Project
from rollout.service.orchestrator import _outcomes
from rollout.service.state import open_state
from rollout.state.journal import JournalEvent, RolloutRecord


def under_way(project: Project) -> list[HistoryEntry]:
    """Rollouts that have not ended: running, paused for approval, or interrupted."""
    return [e for e in history(project, None) if e.state not in ("finished", "halted")]


def rollout_state(events: list[JournalEvent]) -> str:
    """finished, halted, paused, running or interrupted: read from the rollout's events alone."""
    kinds = [e.event.kind for e in events]
    if "rollout.finished" in kinds:
        return "finished"
    if "rollout.halted" in kinds:
        return "halted"
    if kinds and kinds[-1] in ("rollout.paused",):
        return "paused"
    locks_open = kinds.count("plant.locked") > kinds.count("plant.unlocked")
    return "running" if locks_open else "interrupted"


@dataclass(frozen=True)
class HistoryEntry:
    record: RolloutRecord
    state: str
    outcomes: dict[str, str]
    ended: float | None
    release: str | None
    """The release deployed; for a rollback, what the plant went back to (as its hosts recorded)."""


def history(project: Project, plant: str | None) -> list[HistoryEntry]:
    journal = open_state(project)
    if plant is not None:
        project.plant(plant)
    entries = []
    for record in journal.rollouts(plant):
        events = journal.events(rollout=record.id)
        outcomes = _outcomes(events)
        if plant is not None:
            outcomes = {plant: outcomes.get(plant, "not reached")}
        ended = events[-1].event.time if events else None
        release = record.release or _went_back_to(events)
        entries.append(HistoryEntry(record, rollout_state(events), outcomes, ended, release))
    return entries


def _went_back_to(events: list[JournalEvent]) -> str | None:
    """The releases a rollback took its plant to, from its ``rollback.started`` event."""
    found = [e.event.release for e in events if e.event.kind == "rollback.started" and e.event.release]
    return found[-1] if found else None
