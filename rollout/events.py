"""Typed events: every step the executor takes is announced before it is acted on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal[
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


@dataclass(frozen=True)
class Event:
    kind: EventKind
    plant: str
    layer: str | None = None
    host: str | None = None
    release: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"type": "event", "kind": self.kind, "plant": self.plant, "time": round(self.time, 3)}
        for key in ("layer", "host", "release"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.detail:
            record["detail"] = self.detail
        return record


EventSink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink that keeps nothing."""
