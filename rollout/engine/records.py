"""The record each host keeps of what its layer runs, with a history of what it ran before."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from rollout.core.clock import Clock
from rollout.core.steps import Target
from rollout.engine.layout import Running

HISTORY = 10
"""Earlier releases a host's record remembers."""
_SUMMARY = ("release", "release_dir", "commit", "bundle_hash")


class Records:
    """Makes each host's record; remembers what it wrote, which is newer than what the hosts said at the start."""

    def __init__(self, operator: str, clock: Clock) -> None:
        self.operator, self.clock = operator, clock
        self._written: dict[tuple[str, str, str], dict[str, object]] = {}
        self._guard = threading.Lock()

    def make(
        self, plant: str, layer: str, host: str, target: Target, running: Running | None, action: str
    ) -> dict[str, object]:
        """The host's record for ``target``; kept to give the next switch of that host its history."""
        key = (plant, layer, host)
        with self._guard:
            current = self._written.get(key) or (running.record if running and running.release_dir else None)
        history = _history(current, target)
        record: dict[str, object] = {
            "plant": plant,
            "layer": layer,
            "host": host,
            "release": target.release,
            "commit": target.commit,
            "bundle_hash": target.bundle_hash,
            "release_dir": target.release_dir,
            "action": action,
            "at": self.clock.now().isoformat(timespec="seconds"),
            "by": self.operator,
            "previous": history[0] if history else None,
            "history": history,
        }
        with self._guard:
            self._written[key] = record
        return record

    def written(self, plant: str, layer: str, host: str) -> dict[str, object] | None:
        """The last record this executor wrote for that host's layer."""
        with self._guard:
            return self._written.get((plant, layer, host))


def _history(current: Mapping[str, object] | None, target: Target) -> list[dict[str, object]]:
    """What the host ran before ``target``, latest first. A switch pushes the release it leaves;
    going back to the latest of them pops it, so a host rolled back still knows what came before
    (plant IT can go back again)."""
    if current is None or not current.get("release_dir"):
        return []
    past = current.get("history")
    if not isinstance(past, list):  # records written before histories: their one 'previous'
        previous = current.get("previous")
        past = [previous] if isinstance(previous, dict) else []
    if current.get("release_dir") == target.release_dir:
        return list(past)
    if past and isinstance(past[0], dict) and past[0].get("release_dir") == target.release_dir:
        return list(past[1:])
    return [{k: current.get(k) for k in _SUMMARY}, *past][:HISTORY]
