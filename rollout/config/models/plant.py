"""``plants/<plant>.yaml``: what kind of plant it is, where, and when it may be disturbed."""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import time
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from rollout.config.models.common import Duration, Model, Name, RelPath

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def _local_time(value: object) -> time:
    if isinstance(value, str) and (match := _HHMM.match(value)):
        return time(int(match.group(1)), int(match.group(2)))
    raise ValueError("a local time written HH:MM, such as '02:30'")


LocalTime = Annotated[time, BeforeValidator(_local_time)]


def _day_ranges(days: list[Day]) -> str:
    """``[mon, tue, wed, fri]`` -> ``mon-wed,fri``."""
    indexes = sorted({DAYS.index(d) for d in days})
    if len(indexes) == 7:
        return "daily"
    runs: list[list[int]] = []
    for i in indexes:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(DAYS[r[0]] if len(r) == 1 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class Window(Model):
    """A weekly maintenance window in the plant's own time zone.

    ``end`` earlier than ``start`` means the window runs past midnight into the next day.
    """

    days: Annotated[list[Day], Field(min_length=1)]
    start: LocalTime
    end: LocalTime

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("a window whose end differs from its start")
        return self

    def describe(self) -> str:
        return _described(tuple(self.days), self.start, self.end)


@functools.lru_cache(maxsize=4096)
def _described(days: tuple[Day, ...], start: time, end: time) -> str:
    """A window as a plan shows it; plants share a few windows, and ten thousand are shown at once."""
    return f"{_day_ranges(list(days))} {start:%H:%M}-{end:%H:%M}"


class PlantConfig(Model):
    """Metadata of one plant; its hosts are in its Ansible inventory."""

    archetype: Name
    timezone: str
    windows: Literal["always"] | Annotated[list[Window], Field(min_length=1)]
    """When the plant may be deployed to; ``always`` for a plant that never objects."""
    tags: list[Name] = []
    inventory: RelPath | None = None
    """Its inventory file, relative to the project (default ``inventories/<plant>.yml``)."""
    description: Annotated[str, Field(max_length=500)] = ""
    execution: Literal["direct", "agent"] = "direct"
    """``direct``: the orchestrator reaches the hosts; ``agent``: the plant's agent does, inside the plant."""
    agent_timeout: Annotated[Duration, Field(gt=0)] = 600.0
    """An agent plant whose agent is silent this long needs attention (its outcome is unknown)."""

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError("an IANA time zone name such as 'Europe/Berlin'")
        return value

    def windows_text(self) -> str:
        if self.windows == "always":
            return "always"
        return "; ".join(w.describe() for w in self.windows)
