"""One look at the state for every agent long-polling this instance for work.

Ten thousand agents each waiting up to 20 s for an order used to mean a query of each every
quarter of a second. The watch asks once a ``LOOK_S`` which of the waiting agents' plants have
an open order, and wakes only those; each then reads its order as before (a poll whose plant has none costs no
read of its own). A look that fails
wakes every waiter, whose own read then fails as it would have."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi.concurrency import run_in_threadpool

from rollout.state.journal import Journal

LOOK_S = 0.25


class OrderWatch:
    """Agents waiting for their plant's next order on this instance, looked for together."""

    def __init__(self, journal: Journal, look_s: float = LOOK_S) -> None:
        self.journal = journal
        self.look_s = look_s
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, plant: str, timeout: float) -> bool:
        """Until a look finds an open order of ``plant`` (True), or ``timeout`` seconds (False)."""
        woken = asyncio.Event()
        self._waiting.setdefault(plant, set()).add(woken)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout)
            return woken.is_set()
        finally:
            waiters = self._waiting.get(plant, set())
            waiters.discard(woken)
            if not waiters:
                self._waiting.pop(plant, None)

    async def _run(self) -> None:
        while self._waiting:
            plants = list(self._waiting)
            try:
                found = await run_in_threadpool(self.journal.open_plants, plants)
            except Exception:  # every waiter reads for itself and meets the failure there
                found = set(plants)
            for plant in found:
                for woken in self._waiting.get(plant, ()):
                    woken.set()
            await asyncio.sleep(self.look_s)
