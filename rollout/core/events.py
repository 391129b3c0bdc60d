"""Typed events: every step the executor takes is announced before it is acted on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal[
    "rollout.created",
    "rollout.resumed",
    "rollout.paused",
    "rollout.halted",
    "rollout.finished",
    "wave.started",
    "wave.baking",
    "wave.threshold",
    "wave.finished",
    "approval.waiting",
    "approval.granted",
    "window.waiting",
    "window.forced",
    "plant.skipped",
    "plant.blocked",
    "plant.locked",
    "plant.unlocked",
    "plant.before",
    "plant.bake_failed",
    "plant.started",
    "plant.preflight",
    "plant.preflight_failed",
    "layer.staging",
    "layer.staged",
    "layer.activating",
    "layer.activated",
    "layer.restarting",
    "layer.checking",
    "check.attempt",
    "check.result",
    "layer.failed",
    "rollback.started",
    "rollback.layer",
    "plant.done",
    "plant.rolled_back",
    "plant.attention",
    "warning",
]


ROLLOUT = ""
"""The ``plant`` of events about the rollout as a whole rather than one plant."""

PLANT_DONE = ("plant.done", "plant.rolled_back", "plant.attention", "plant.preflight_failed", "plant.skipped")
"""Events that end a plant's part in a rollout."""

DURABLE = ("rollout.created", "plant.before", "layer.activating", "rollback.started", "rollback.layer", *PLANT_DONE)
"""Events the journal puts on disk (fsync) before the step they announce: the before-state
and every switch of a host survive even a power cut of the machine running rollout."""


@dataclass(frozen=True)
class Event:
    kind: EventKind
    plant: str
    layer: str | None = None
    host: str | None = None
    release: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    seq: int | None = None
    """Position in the journal, once journaled."""
    rollout: str | None = None
    """The rollout (or rollback) it belongs to, once journaled: a killed pipeline knows what to resume."""

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": "event", "kind": self.kind, "plant": self.plant, "time": round(self.time, 3)}
        for key in ("layer", "host", "release"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.detail:
            record["detail"] = self.detail
        if self.seq is not None:
            record["seq"] = self.seq
        if self.rollout is not None:
            record["rollout"] = self.rollout
        return record


EventSink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink that keeps nothing."""
