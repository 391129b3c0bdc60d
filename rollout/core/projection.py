"""One fold of a rollout's events into its state: the only reader of event kinds.

Status, history, JUnit, resume, the orchestrator's decisions and the live view read the
``RolloutState`` this builds; the fold is incremental (``apply`` one event at a time), so a
live view folds as events arrive and a resumed run folds what the journal holds. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rollout.core.events import PLANT_DONE, ROLLOUT, Event

Outcome = Literal["updated", "unchanged", "rolled_back", "preflight_failed", "attention", "skipped"]
FAILED: tuple[Outcome, ...] = ("rolled_back", "preflight_failed", "attention")
Status = Literal["finished", "halted", "aborted", "paused", "running", "interrupted"]
ENDED: tuple[Status, ...] = ("finished", "halted", "aborted")

_OUTCOME: dict[str, Outcome] = {
    "plant.rolled_back": "rolled_back",
    "plant.attention": "attention",
    "plant.preflight_failed": "preflight_failed",
    "plant.skipped": "skipped",
}


_REOPEN = ("plant.started", "plant.before", "rollback.started", "plant.bake_failed")
"""Events that begin new work on a plant whose part had ended (a deploy, a put-back)."""


@dataclass
class PlantState:
    """One plant's part in the rollout so far."""

    name: str
    wave: str | None = None
    locked: bool = False
    started: bool = False
    """The executor began on it (``plant.started``) since its last outcome."""
    started_at: float | None = None
    """When it was last started: a wave's cap on starts per minute counts these."""
    layer: str | None = None
    """The layer its last layer event was about."""
    step: str = ""
    """The kind of its last layer event (``layer.staging``, ``layer.checking``, ...)."""
    layers_done: list[str] = field(default_factory=list)
    """Layers it activated since it started."""
    layers_passed: list[str] = field(default_factory=list)
    """Layers whose checks passed since it started."""
    before: dict[str, Any] | None = None
    """What it ran when the rollout first reached it (``plant.before``), as stored."""
    rollback_started: bool = False
    """A rollback of it began and has not ended yet."""
    window_until: str | None = None
    """It waits for its maintenance window, until this time (ISO)."""
    outcome: Outcome | None = None
    ended: bool = False
    """Its last event is an outcome: its part in the rollout is over (until put back)."""
    blocked: str | None = None
    """Why this run found it locked by someone else."""
    bake_failed: str | None = None
    reason: str = ""
    failed_layers: dict[str, str] = field(default_factory=dict)

    @property
    def in_flight(self) -> bool:
        """Work on it began and did not end: a live run carries it on, a killed run left it."""
        return not self.ended and (self.started or self.rollback_started or self.locked)

    @property
    def phase(self) -> str:
        if self.ended:
            return self.outcome or "ended"
        if self.blocked:
            return "blocked"
        if self.rollback_started:
            return "rolling back"
        if self.started:
            return f"in flight ({self.layer})" if self.layer else "in flight"
        if self.locked:
            return "locked"
        if self.window_until:
            return f"waiting for window until {self.window_until}"
        return "pending"


@dataclass
class WaveState:
    name: str
    plants: list[str] = field(default_factory=list)
    started: bool = False
    approval_waiting: bool = False
    approval_granted: str | None = None
    """Who granted it."""
    approval_reason: str = ""
    """Why, as the approver said."""
    threshold: tuple[str, str] | None = None
    """(response, reason) once the failure threshold was crossed."""
    baking_since: float | None = None
    bake_until: float | None = None
    last_recheck: float | None = None
    finished: bool = False


@dataclass(frozen=True)
class AbortRequest:
    by: str
    reason: str
    time: float


@dataclass
class RolloutState:
    """What a rollout's events say of it."""

    plants: dict[str, PlantState] = field(default_factory=dict)
    waves: dict[str, WaveState] = field(default_factory=dict)
    created_by: str = ""
    reason: str = ""
    """Why it was started, as its ``rollout.created`` says (a plant-IT rollback's ``--reason``)."""
    paused: str | None = None
    """The wave it is paused before, while the pause is its latest event."""
    halted: str | None = None
    finished: bool = False
    aborted: bool = False
    abort: AbortRequest | None = None
    open_locks: int = 0
    went_back_to: str | None = None
    """For a rollback: the release its ``rollback.started`` took the plant to."""
    first_time: float | None = None
    last_time: float | None = None
    last_event: str = ""

    @property
    def status(self) -> Status:
        if self.finished:
            return "finished"
        if self.halted is not None:
            return "halted"
        if self.aborted:
            return "aborted"
        if self.paused is not None:
            return "paused"
        return "running" if self.open_locks > 0 else "interrupted"

    def plant(self, name: str) -> PlantState:
        if name not in self.plants:
            self.plants[name] = PlantState(name)
        return self.plants[name]

    def wave(self, name: str) -> WaveState:
        if name not in self.waves:
            self.waves[name] = WaveState(name)
        return self.waves[name]

    def outcomes(self) -> dict[str, str]:
        """Each plant's latest outcome, for plants that have one."""
        return {p.name: p.outcome for p in self.plants.values() if p.outcome is not None}

    def reasons(self) -> str:
        """Why it ran and ended as it did, as people said: its own reason, each approval
        (``approved rest by ann: <why>``) and an abort's reason, joined by ``; ``."""
        parts = [self.reason] if self.reason else []
        for wave in self.waves.values():
            if wave.approval_granted is not None:
                why = f": {wave.approval_reason}" if wave.approval_reason else ""
                parts.append(f"approved {wave.name} by {wave.approval_granted or 'someone'}{why}")
        if self.status == "aborted" and self.abort is not None and self.abort.reason:
            # Alone it is the abort's reason as given; beside approvals it says whose it is.
            parts.append(f"aborted by {self.abort.by}: {self.abort.reason}" if parts else self.abort.reason)
        return "; ".join(parts)

    def failures(self, plants: Iterable[str]) -> int:
        return sum(1 for p in plants if p in self.plants and self.plants[p].outcome in FAILED)

    def apply(self, event: Event) -> None:
        """Fold one more event in (journal order)."""
        self.first_time = event.time if self.first_time is None else self.first_time
        self.last_time = event.time
        self.last_event = event.kind
        if event.kind != "rollout.paused":
            self.paused = None
        if event.plant == ROLLOUT:
            self._rollout_event(event)
        else:
            self._plant_event(event)

    def _rollout_event(self, event: Event) -> None:
        detail, kind = event.detail, event.kind
        wave = self.wave(str(detail["wave"])) if "wave" in detail else None
        if kind == "rollout.created":
            self.created_by, self.reason = str(detail.get("by", "")), str(detail.get("reason") or "")
        elif kind == "rollout.resumed":
            for plant in self.plants.values():
                plant.blocked = None  # a new run tries the plants that were locked again
        elif kind == "rollout.paused":
            self.paused = wave.name if wave else ""
        elif kind == "rollout.halted":
            self.halted = str(detail.get("reason", ""))
        elif kind == "rollout.finished":
            self.finished = True
        elif kind == "rollout.aborted":
            self.aborted = True
        elif kind == "abort.requested":
            self.abort = AbortRequest(str(detail.get("by", "")), str(detail.get("reason", "")), event.time)
        elif wave is not None:
            _wave_event(wave, event, self)

    def _plant_event(self, event: Event) -> None:
        plant, kind, detail = self.plant(event.plant), event.kind, event.detail
        if kind == "plant.locked":
            plant.locked = True
            self.open_locks += 1
            return
        if kind == "plant.unlocked":
            plant.locked = False
            self.open_locks -= 1
            return
        if kind in _REOPEN:
            plant.ended = False  # new work on it; a bake's checks of an ended plant are not
        if kind == "plant.blocked":
            plant.blocked = str(detail.get("reason", ""))
        elif kind == "window.waiting":
            plant.window_until = None if detail.get("until") is None else str(detail["until"])
        elif kind == "plant.before":
            plant.before = detail.get("before")
        elif kind == "plant.started":
            plant.started, plant.layers_done, plant.layers_passed, plant.window_until = True, [], [], None
            plant.started_at = event.time
        elif kind == "layer.failed" and event.layer:
            plant.failed_layers[event.layer] = str(detail.get("reason", ""))
        elif kind == "layer.activated" and event.layer and event.layer not in plant.layers_done:
            plant.layers_done.append(event.layer)
        elif kind == "check.result" and event.layer and detail.get("outcome") == "succeeded":
            if event.layer not in plant.layers_passed:
                plant.layers_passed.append(event.layer)
        elif kind == "rollback.started":
            plant.rollback_started = True
            self.went_back_to = event.release or self.went_back_to
        elif kind == "plant.bake_failed":
            plant.bake_failed = str(detail.get("reason", ""))
        if event.layer:
            plant.layer, plant.step = event.layer, kind
        if kind in PLANT_DONE:
            _outcome(plant, event)


def _wave_event(wave: WaveState, event: Event, state: RolloutState) -> None:
    kind, detail = event.kind, event.detail
    if kind == "wave.started":
        wave.started = True
        wave.plants = [str(p) for p in detail.get("plants", [])]
        for name in wave.plants:
            state.plant(name).wave = wave.name
    elif kind == "approval.waiting":
        wave.approval_waiting = True
    elif kind == "approval.granted":
        wave.approval_granted, wave.approval_reason = str(detail.get("by", "")), str(detail.get("reason") or "")
    elif kind == "wave.threshold":
        wave.threshold = (str(detail.get("response", "halt")), str(detail.get("reason", "")))
    elif kind == "wave.baking":
        wave.baking_since = event.time
        until = detail.get("until")
        wave.bake_until = float(until) if until is not None else event.time + float(detail.get("seconds", 0))
    elif kind == "wave.rechecked":
        wave.last_recheck = float(detail.get("at", event.time))  # the loop's clock, not the machine's
    elif kind == "wave.finished":
        wave.finished = True


def _outcome(plant: PlantState, event: Event) -> None:
    if event.kind == "plant.done":
        plant.outcome = "updated" if event.detail.get("changed") else "unchanged"
    else:
        plant.outcome = _OUTCOME[event.kind]
    plant.ended, plant.started, plant.rollback_started = True, False, False
    plant.reason = str(event.detail.get("reason", ""))


def fold(events: Iterable[Event], state: RolloutState | None = None) -> RolloutState:
    """The state ``events`` (in journal order) leave a rollout in."""
    state = state or RolloutState()
    for event in events:
        state.apply(event)
    return state
