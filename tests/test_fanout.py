"""The one host fan-out and check retries: pure, no hosts, no sleeping."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from rollout.core.clock import ManualClock
from rollout.engine.checks import with_retries
from rollout.engine.fanout import StepFailed, fan_out
from rollout.transports.base import TransportError


def test_a_result_or_an_error_per_host_never_flattened() -> None:
    def action(host: str) -> str:
        if host in ("b", "d"):
            raise TransportError(host, f"{host} is down")
        return host.upper()

    results = fan_out(["a", "b", "c", "d"], action)
    assert results.succeeded == {"a": "A", "c": "C"}, results.items()
    assert sorted(results.failed) == ["b", "d"], results.items()
    assert [key for key, _ in results] == ["a", "b", "c", "d"], "the order asked is kept"
    assert results.reasons() == ["b: b is down", "d: d is down"], results.reasons()
    with pytest.raises(StepFailed) as failed:
        results.or_fail("edge")
    assert failed.value.reason == "b: b is down; d: d is down", failed.value.reason


def test_a_bug_is_raised_not_turned_into_a_host_failure() -> None:
    def action(host: str) -> int:
        if host == "b":
            raise KeyError("bug")
        raise TransportError(host, "down")

    with pytest.raises(KeyError):
        fan_out(["a", "b"], action).or_fail("edge")


def test_threads_are_bounded() -> None:
    busy, peak, guard = [0], [0], threading.Lock()

    def action(host: int) -> int:
        with guard:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.02)
        with guard:
            busy[0] -= 1
        return host

    results = fan_out(list(range(12)), action, limit=3)
    assert len(results.succeeded) == 12 and 1 < peak[0] <= 3, (peak[0], results.items())


def test_check_retries_wait_on_the_injected_clock() -> None:
    clock = ManualClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    answers = iter([("failed", "no"), ("inconclusive", "timeout"), ("succeeded", "yes")])
    seen: list[int] = []
    started = time.monotonic()
    result = with_retries("health", "h1", lambda: next(answers), 5, 30.0, lambda a: seen.append(a.number), clock)
    assert result.passed and seen == [1, 2, 3], (result, seen)
    waited = (clock.now() - dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).total_seconds()
    assert waited == 60.0, f"two waits of 30 s on the clock, saw {waited}"
    assert time.monotonic() - started < 5, "no real sleeping"
