"""Spreading independent per-plant work of the pure core over the machine's cores.

Render and validate do the same work for each of thousands of plants. Forked processes
inherit the loaded project, the release and whatever the parent already computed, so only
results cross between processes; they come back in the order of the items, so the output
is exactly what one process would give.
"""

from __future__ import annotations

import copyreg
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from rollout.errors import ConfigError, Problem

X = TypeVar("X")
T = TypeVar("T")

MIN_PER_WORKER = 40
"""Items a worker must get before forking it pays for itself."""
CHUNKS_PER_WORKER = 4
"""Smaller chunks than one per worker, so a worker with slow plants does not hold up the rest."""


def _read_only(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


# Results keep read-only mappings (loaded plants' inventories); pickle has no way of its own to
# send one back from a worker, so it goes as its items and comes back read-only.
copyreg.pickle(MappingProxyType, lambda proxy: (_read_only, (dict(proxy),)))


@dataclass(frozen=True)
class Failed:
    """An item whose work raised a ConfigError: its problems (exceptions do not pickle whole)."""

    problems: list[Problem]


_job: tuple[Sequence[Any], Callable[[Any], Any]] | None = None
"""The items and work of the running fan-out; forked workers inherit it."""


def fan_out(items: Sequence[X], work: Callable[[X], T], workers: int | None = None) -> list[T | Failed]:
    """``work(item)`` for every item, in order: its result, or ``Failed`` with the problems it raised.

    ``workers`` defaults to the usable cores, fewer when there are too few items to share; the
    work runs here, one item after the other, when the process has other threads. Results must
    pickle when workers run.
    """
    count = _workers(len(items)) if workers is None else max(1, min(workers, len(items)))
    if count == 1:
        return [_attempt(work, item) for item in items]
    import multiprocessing  # here: a small project, and every verb's start-up, need no process pool
    from concurrent.futures import ProcessPoolExecutor

    # A fork copies one thread only: a lock held by another thread would stay held forever in the child.
    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [_attempt(work, item) for item in items]
    global _job
    _job = (items, work)
    try:
        with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork")) as pool:
            chunks = pool.map(_run_chunk, _bounds(len(items), count * CHUNKS_PER_WORKER))
            return [result for chunk in chunks for result in chunk]
    finally:
        _job = None


def _workers(items: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, items // MIN_PER_WORKER))


def _bounds(total: int, parts: int) -> list[tuple[int, int]]:
    size = -(-total // parts)
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _run_chunk(bounds: tuple[int, int]) -> list[Any]:
    assert _job is not None, "runs only in a worker forked by fan_out"
    items, work = _job
    return [_attempt(work, item) for item in items[bounds[0] : bounds[1]]]


def _attempt(work: Callable[[X], T], item: X) -> T | Failed:
    try:
        return work(item)
    except ConfigError as exc:
        return Failed(exc.problems)
