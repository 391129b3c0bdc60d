"""Typed events: every step the executor takes is announced before it is acted on."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict

EventKind = Literal[
    "rollout.created",
    "rollout.resumed",
    "rollout.paused",
    "rollout.halted",
    "rollout.finished",
    "rollout.aborted",
    "abort.requested",
    "wave.started",
    "wave.baking",
    "wave.rechecked",
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
    "host.verified",
    "agent.unreachable",
    "agent.reachable",
    "warning",
]


ROLLOUT = ""
"""The ``plant`` of events about the rollout as a whole rather than one plant."""

PLANT_DONE = ("plant.done", "plant.rolled_back", "plant.attention", "plant.preflight_failed", "plant.skipped")
"""Events that end a plant's part in a rollout."""

DURABLE = ("rollout.created", "plant.before", "layer.activating", "rollback.started", "rollback.layer", *PLANT_DONE)
"""Events the journal puts on disk (fsync) before the step they announce: the before-state
and every switch of a host survive even a power cut of the machine running rollout."""


class Payload(BaseModel):
    """What an event says beyond kind, plant, layer, host and release.

    Every field has a default and unknown keys are kept: events of older journals (and
    fields an emitter adds later) still load; the fields named here are the typed view."""

    model_config = ConfigDict(frozen=True, extra="allow")

    reason: str | None = None
    by: str | None = None
    wave: str | None = None


class WavePayload(Payload):
    wave: str | None = None
    plants: list[str] | None = None
    failures: int | None = None
    seconds: float | None = None
    until: float | None = None
    at: float | None = None


class ThresholdPayload(Payload):
    response: str = "halt"


class CreatedPayload(Payload):
    release: str | None = None


class FinishedPayload(Payload):
    plants: dict[str, str] | None = None


class LockPayload(Payload):
    owner: str | None = None
    left_by: str | None = None


class BeforePayload(Payload):
    before: Any = None


class WindowPayload(Payload):
    until: str | None = None
    windows: str | None = None
    next_opening: str | None = None


class DonePayload(Payload):
    changed: bool | None = None


class CheckPayload(Payload):
    check: str | None = None
    outcome: str | None = None
    attempts: int | None = None


PAYLOADS: dict[str, type[Payload]] = {
    "rollout.created": CreatedPayload,
    "rollout.finished": FinishedPayload,
    "wave.started": WavePayload,
    "wave.baking": WavePayload,
    "wave.rechecked": WavePayload,
    "wave.finished": WavePayload,
    "wave.threshold": ThresholdPayload,
    "plant.locked": LockPayload,
    "plant.unlocked": LockPayload,
    "plant.before": BeforePayload,
    "window.waiting": WindowPayload,
    "window.forced": WindowPayload,
    "plant.skipped": WindowPayload,
    "plant.done": DonePayload,
    "check.result": CheckPayload,
    "check.attempt": CheckPayload,
}
"""The payload model of each kind; kinds not named here carry a plain ``Payload``."""

KINDS: frozenset[str] = frozenset(get_args(EventKind))


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

    @property
    def payload(self) -> Payload:
        """The detail, validated into its kind's payload model (unknown keys kept)."""
        return PAYLOADS.get(self.kind, Payload).model_validate(self.detail)

    @staticmethod
    def from_dict(record: Mapping[str, Any]) -> Event:
        """The event ``as_dict`` made (or a journal row as a dict); raises ValueError on a foreign record."""
        kind = record.get("kind")
        if kind not in KINDS:
            raise ValueError(f"not an event kind: {kind!r}")
        detail = dict(record.get("detail") or {})
        PAYLOADS.get(str(kind), Payload).model_validate(detail)  # a detail of the wrong shape is refused here
        seq, rollout = record.get("seq"), record.get("rollout")
        return Event(
            cast(EventKind, kind),
            str(record.get("plant", ROLLOUT)),
            layer=_text(record.get("layer")),
            host=_text(record.get("host")),
            release=_text(record.get("release")),
            detail=detail,
            time=float(record.get("time", 0.0)),
            seq=None if seq is None else int(seq),
            rollout=_text(rollout),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


EventSink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink that keeps nothing."""
