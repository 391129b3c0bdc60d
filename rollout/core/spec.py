"""A rollout's spec: what the journal keeps of its plan, so that resume follows the same one.

Frozen and typed; stored as JSON in the rollout's record. ``from_json`` reads the records
of older journals too (they stored the same keys as plain dicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from rollout.config.models.strategy import FailureResponse, WindowPolicy
from rollout.core.plan import Plan

_RESPONSES = ("continue", "halt", "rollback_all")
_POLICIES = ("wait", "skip")


class SpecError(ValueError):
    """A stored spec that cannot be read (a damaged or foreign record)."""


@dataclass(frozen=True)
class WaveSpec:
    """One wave as the rollout runs it."""

    name: str
    plants: tuple[str, ...]
    parallelism: int
    max_failures: int
    """Failed plants the wave tolerates; one more triggers ``on_failure``."""
    on_failure: FailureResponse = "halt"
    bake_s: float = 0.0
    approval: bool = False
    outside_window: WindowPolicy = "wait"
    max_starts_per_minute: int | None = None
    abort_failed_pct: float | None = None
    abort_min_finished: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plants": list(self.plants),
            "parallelism": self.parallelism,
            "max_failures": self.max_failures,
            "on_failure": self.on_failure,
            "bake_s": self.bake_s,
            "approval": self.approval,
            "outside_window": self.outside_window,
            "max_starts_per_minute": self.max_starts_per_minute,
            "abort_failed_pct": self.abort_failed_pct,
            "abort_min_finished": self.abort_min_finished,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> WaveSpec:
        try:
            on_failure = str(data.get("on_failure", "halt"))
            outside = str(data.get("outside_window", "wait"))
            if on_failure not in _RESPONSES or outside not in _POLICIES:
                raise SpecError(f"wave {data.get('name')!r}: on_failure {on_failure!r}, outside_window {outside!r}")
            return WaveSpec(
                name=str(data["name"]),
                plants=tuple(str(p) for p in data["plants"]),
                parallelism=max(1, int(data.get("parallelism", 1))),
                max_failures=int(data.get("max_failures", 0)),
                on_failure=cast(FailureResponse, on_failure),
                bake_s=float(data.get("bake_s", 0.0)),
                approval=bool(data.get("approval", False)),
                outside_window=cast(WindowPolicy, outside),
                max_starts_per_minute=_optional_int(data.get("max_starts_per_minute")),
                abort_failed_pct=None if data.get("abort_failed_pct") is None else float(data["abort_failed_pct"]),
                abort_min_finished=int(data.get("abort_min_finished", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"a wave of the stored spec cannot be read: {exc}") from None


@dataclass(frozen=True)
class RolloutSpec:
    """The waves of a rollout and the choices made when it started."""

    kind: str
    release: str | None
    commit: str | None
    waves: tuple[WaveSpec, ...]
    approve_through: str | None = None
    force_window: bool = False
    max_window_wait_s: float = 0.0

    @property
    def plants(self) -> list[str]:
        """Every plant of the rollout, in wave order."""
        return [p for w in self.waves for p in w.plants]

    def wave(self, name: str) -> WaveSpec:
        return next(w for w in self.waves if w.name == name)

    def wave_of(self, plant: str) -> WaveSpec | None:
        return next((w for w in self.waves if plant in w.plants), None)

    def pre_approved(self, wave: str) -> bool:
        """Whether ``--approve-through`` covers ``wave`` (it and every wave before it)."""
        names = [w.name for w in self.waves]
        if self.approve_through not in names or wave not in names:
            return False
        return names.index(self.approve_through) >= names.index(wave)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "release": self.release,
            "commit": self.commit,
            "max_window_wait_s": self.max_window_wait_s,
            "approve_through": self.approve_through,
            "force_window": self.force_window,
            "waves": [w.to_json() for w in self.waves],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> RolloutSpec:
        """The spec of a stored record; a record without waves (a plant IT rollback) has none."""
        try:
            through = data.get("approve_through")
            return RolloutSpec(
                kind=str(data.get("kind", "deploy")),
                release=_optional(data.get("release")),
                commit=_optional(data.get("commit")),
                waves=tuple(WaveSpec.from_json(w) for w in data.get("waves", ())),
                approve_through=None if through is None else str(through),
                force_window=bool(data.get("force_window", False)),
                max_window_wait_s=float(data.get("max_window_wait_s", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            raise SpecError(f"the stored spec cannot be read: {exc}") from None


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else max(1, int(str(value)))


def spec_of(plan: Plan, approve_through: str | None, force_window: bool, kind: str = "deploy") -> RolloutSpec:
    """The spec of a rollout that follows ``plan``."""
    waves = tuple(
        WaveSpec(
            w.name,
            tuple(p.name for p in w.plants),
            w.parallelism,
            w.max_failures,
            w.on_failure,
            w.bake_s,
            w.approval,
            w.outside_window,
            w.max_starts_per_minute,
            w.abort_failed_pct,
            w.abort_min_finished,
        )
        for w in plan.waves
    )
    return RolloutSpec(kind, plan.release, plan.commit, waves, approve_through, force_window, plan.max_window_wait_s)
