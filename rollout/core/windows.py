"""Maintenance windows in each plant's own time zone. Pure: the time is always given."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from rollout.config.models.plant import DAYS, PlantConfig, Window

SEARCH_DAYS = 8


def is_open(plant: PlantConfig, now: dt.datetime) -> bool:
    """Whether ``now`` (aware) falls inside one of the plant's windows."""
    if plant.windows == "always":
        return True
    return any(start <= now < end for start, end in _spans(plant, now))


def next_opening(plant: PlantConfig, now: dt.datetime) -> dt.datetime | None:
    """When the next window opens after ``now`` (None: always open, or no window at all)."""
    if plant.windows == "always":
        return None
    starts = [start for start, _ in _spans(plant, now) if start > now]
    return min(starts) if starts else None


def _spans(plant: PlantConfig, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Every window occurrence from yesterday to a week ahead, as aware datetimes."""
    assert plant.windows != "always"
    zone = ZoneInfo(plant.timezone)
    today = now.astimezone(zone).date()
    spans = []
    for offset in range(-1, SEARCH_DAYS):
        day = today + dt.timedelta(days=offset)
        for window in plant.windows:
            if DAYS[day.weekday()] in window.days:
                spans.append(_span(window, day, zone))
    return spans


def _span(window: Window, day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, window.start, tzinfo=zone)
    end_day = day if window.end > window.start else day + dt.timedelta(days=1)
    end = dt.datetime.combine(end_day, window.end, tzinfo=zone)
    return start, end
