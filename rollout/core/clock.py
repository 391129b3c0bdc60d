"""The one clock: what time it is and how long to wait, injected wherever time matters.

Bake, maintenance windows, lock expiry and check intervals all ask a ``Clock``, so the
decision tests and the orchestrator's tests run on a ``ManualClock`` without sleeping,
and ``ROLLOUT_NOW`` starts a run at a chosen time that then goes on as time does.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from abc import ABC, abstractmethod


def local_time(stamp: float) -> str:
    """A time as people read it here, with its offset from UTC so it means the same anywhere."""
    return dt.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


class Clock(ABC):
    """Aware UTC times and waits."""

    @abstractmethod
    def now(self) -> dt.datetime:
        """The time now, aware, in UTC."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (at once when zero or less)."""

    def time(self) -> float:
        """The time now in seconds since the epoch (for stored times such as lock expiry)."""
        return self.now().timestamp()


class SystemClock(Clock):
    """The machine's clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ShiftedClock(Clock):
    """Starts at a chosen time (``ROLLOUT_NOW``) and goes on as the machine's clock does: a
    rehearsal or a test of windows at any time of day, whose bakes and waits still end."""

    def __init__(self, start: dt.datetime) -> None:
        self._start = start.astimezone(dt.UTC)
        self._origin = time.monotonic()

    def now(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=time.monotonic() - self._origin)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """A clock for tests: time moves only when told to, and a sleep moves it at once."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = start.astimezone(dt.UTC)
        self._guard = threading.Lock()

    def now(self) -> dt.datetime:
        with self._guard:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        with self._guard:
            self._now += dt.timedelta(seconds=seconds)
