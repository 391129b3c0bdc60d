"""Field types shared by every user-written file."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints


class Model(BaseModel):
    """Base of every model a user writes: frozen, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""Plant, layer, wave, check, archetype and tag names: lower case, digits, '-' and '_'."""


def _relative_path(value: str) -> str:
    if not value or "\x00" in value or "\\" in value:
        raise ValueError("a non-empty relative path with '/' separators")
    path = PurePosixPath(value)
    if path.is_absolute():
        raise ValueError("a relative path, not an absolute one")
    if any(part == ".." for part in path.parts):
        raise ValueError("a path that stays inside its folder (no '..')")
    return path.as_posix()


RelPath = Annotated[str, AfterValidator(_relative_path)]
"""A path relative to a folder that cannot leave it (no '..', not absolute)."""


def _absolute_path(value: str) -> str:
    path = PurePosixPath(value)
    if not path.is_absolute() or "\x00" in value or any(p == ".." for p in path.parts):
        raise ValueError("an absolute POSIX path without '..'")
    if path == PurePosixPath("/"):
        raise ValueError("a folder below '/', not '/' itself")
    return path.as_posix()


AbsPath = Annotated[str, AfterValidator(_absolute_path)]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")
MAX_DURATION_S = 7 * 24 * 3600.0


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration such as 250ms, 30s, 5m, 1h30m or a number of seconds")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value and (match := _DURATION.match(value.strip())):
        hours, minutes, secs, millis = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0) + int(millis or 0) / 1000
    else:
        raise ValueError("a duration such as 250ms, 30s, 5m, 1h30m or a number of seconds")
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError("a duration between 0s and 7 days")
    return seconds


def parse_duration(value: object) -> float:
    """Seconds of a duration as the configuration writes it (``250ms``, ``30s``, ``1h30m``);
    ValueError saying what is expected otherwise."""
    return _duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written as a number or as ``30s``, ``5m``, ``1h30m``."""

_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)%$")


def _threshold(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _PERCENT.match(value.strip())):
        if float(match.group(1)) <= 100:
            return value.strip()
    raise ValueError("a count of plants (0 or more) or a percentage such as '20%'")


Threshold = Annotated[int | str, BeforeValidator(_threshold)]
"""A failure threshold: a whole count of plants, or a percentage of the wave."""


def percent_of(threshold: int | str, total: int) -> int:
    """The number of failures a threshold allows among ``total`` plants (rounded down)."""
    if isinstance(threshold, int):
        return threshold
    return int(float(threshold.rstrip("%")) * total // 100)
