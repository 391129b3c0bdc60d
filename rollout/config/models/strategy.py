"""The staged-rollout strategy: waves, thresholds, failure response, windows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from rollout.config.models.common import Duration, Model, Name, Threshold

FailureResponse = Literal["continue", "halt", "rollback_all"]
"""What the rollout does once a wave has more failed plants than its threshold allows.

Every failed plant is rolled back on its own whatever the response; ``continue`` goes on
with the next plants, ``halt`` stops the rollout (plants not started stay as they are),
``rollback_all`` also rolls back every plant this rollout already updated.
"""
WindowPolicy = Literal["wait", "skip"]

PlantPattern = Annotated[str, Field(pattern=r"^[a-z0-9*?\[\]!_-]{1,63}$")]


class Selector(Model):
    """Which plants a wave takes. Every criterion given must hold; inside one, any entry."""

    plants: list[PlantPattern] = []
    """Plant names or shell-style patterns (``mx-*``)."""
    archetypes: list[Name] = []
    tags: list[Name] = []
    exclude: list[PlantPattern] = []
    """Plant names or patterns this wave leaves out (a canary taken by an earlier wave)."""
    remaining: bool = False
    """Every plant that no other wave selects."""

    @model_validator(mode="after")
    def _meaningful(self) -> Selector:
        criteria = bool(self.plants or self.archetypes or self.tags)
        if self.remaining and criteria:
            raise ValueError("'remaining: true' alone, without plants, archetypes or tags")
        if not (self.remaining or criteria):
            raise ValueError("at least one of plants, archetypes, tags, or 'remaining: true'")
        return self


class AbortCriteria(Model):
    """Stop the wave (and the rollout) once too large a share of the plants that finished failed,
    counted only after ``min_finished`` have: for a large network a ratio tells early what a
    count of the whole wave would tell too late. Failed: rolled back, preflight failed, needs attention."""

    failed_above: Annotated[float, Field(ge=0, le=100)] | str
    """A percentage of the finished plants, ``10%`` (or the number 10)."""
    min_finished: Annotated[int, Field(ge=1, le=1_000_000)] = 10

    @field_validator("failed_above")
    @classmethod
    def _percent(cls, value: float | str) -> float:
        text = str(value).strip().removesuffix("%")
        try:
            number = float(text)
        except ValueError:
            raise ValueError("a percentage such as '10%'") from None
        if not 0 <= number <= 100:
            raise ValueError("a percentage between 0% and 100%")
        return number


class WaveConfig(Model):
    """One stage of the rollout. Unset fields take the strategy's defaults."""

    name: Name
    select: Selector
    parallelism: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_failures: Threshold | None = None
    on_failure: FailureResponse | None = None
    bake: Duration | None = None
    approval: bool = False
    """Pause before this wave until someone approves it."""
    outside_window: WindowPolicy | None = None
    max_starts_per_minute: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """At most this many plants of the wave started in any minute (default: the strategy's, else no cap)."""
    abort_when: AbortCriteria | None = None


class StrategyConfig(Model):
    parallelism: Annotated[int, Field(ge=1, le=1000)] = 1
    max_failures: Threshold = 0
    on_failure: FailureResponse = "halt"
    bake: Duration = 0.0
    outside_window: WindowPolicy = "wait"
    """A plant whose window is closed is waited for (up to ``max_window_wait``) or skipped."""
    max_window_wait: Duration = 4 * 3600.0
    max_starts_per_minute: Annotated[int, Field(ge=1, le=100_000)] | None = None
    abort_when: AbortCriteria | None = None
    waves: Annotated[list[WaveConfig], Field(min_length=1, max_length=100)]

    @field_validator("waves")
    @classmethod
    def _waves_ok(cls, waves: list[WaveConfig]) -> list[WaveConfig]:
        names = [wave.name for wave in waves]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"wave names to be unique; {duplicates[0]!r} appears twice")
        if sum(1 for w in waves if w.select.remaining) > 1:
            raise ValueError("at most one wave with 'remaining: true'")
        return waves
