"""The one host fan-out: run an action on many hosts at once, a result or an error per host.

Like Fabric's ``GroupResult``: nothing is flattened and no failure hides another host's
success or failure. The threads are bounded and belong to one call; nothing is kept
between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from rollout.errors import RolloutError
from rollout.transports.base import TransportError

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
MAX_THREADS = 16
"""Hosts asked at once by one fan-out: enough for a plant, bounded for a thousand hosts."""


class StepFailed(RolloutError):
    """A step of one layer failed on one or more hosts; ``reason`` names every one."""

    def __init__(self, layer: str, reason: str) -> None:
        self.layer = layer
        self.reason = reason
        super().__init__(f"{layer}: {reason}")


class HostResults(Generic[K, R]):
    """Per key (a host, or a layer and host), the action's result or the exception it raised; in the order asked."""

    def __init__(self, outcomes: Sequence[tuple[K, R | Exception]]) -> None:
        self._outcomes = list(outcomes)

    def __iter__(self) -> Iterator[tuple[K, R | Exception]]:
        return iter(self._outcomes)

    def __len__(self) -> int:
        return len(self._outcomes)

    def items(self) -> list[tuple[K, R | Exception]]:
        return list(self._outcomes)

    @property
    def succeeded(self) -> dict[K, R]:
        """The keys whose action returned, with what it returned."""
        return {key: value for key, value in self._outcomes if not isinstance(value, Exception)}

    @property
    def failed(self) -> dict[K, Exception]:
        """The keys whose action raised, with what it raised."""
        return {key: value for key, value in self._outcomes if isinstance(value, Exception)}

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_bugs(self) -> None:
        """Re-raise an error that is no host's fault (a bug): only reaching or running on a host may fail."""
        for error in self.failed.values():
            if not isinstance(error, (TransportError, StepFailed)):
                raise error

    def or_fail(self, layer: str) -> dict[K, R]:
        """The results when every key succeeded; else StepFailed for ``layer`` naming every failed host."""
        self.raise_bugs()
        if self.failed:
            raise StepFailed(layer, "; ".join(self.reasons()))
        return self.succeeded

    def reasons(self) -> list[str]:
        """Every failed key's own reason, in order ('host: reason' for a host that could not be reached)."""
        return [reason_of(error) for error in self.failed.values()]


def fan_out(keys: Sequence[K], action: Callable[[K], R], limit: int = MAX_THREADS) -> HostResults[K, R]:
    """Run ``action`` on every key at once (at most ``limit`` threads); never raises for one key's error."""

    def capture(key: K) -> tuple[K, R | Exception]:
        try:
            return key, action(key)
        except Exception as exc:  # handed back as the key's result; the caller decides
            return key, exc

    if len(keys) <= 1:
        return HostResults([capture(key) for key in keys])
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(keys)))) as pool:
        return HostResults(list(pool.map(capture, keys)))


def reason_of(exc: BaseException) -> str:
    """Why, for people: a transport error names its host; a failed step its reason."""
    if isinstance(exc, TransportError):
        return str(exc)
    if isinstance(exc, StepFailed):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"
