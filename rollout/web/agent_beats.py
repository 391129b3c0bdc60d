"""The agents' heartbeats on one server instance, gathered and written together.

A beat says only that the agent is alive and what it is doing; ten thousand agents beating are
hundreds of requests a second, each of which was a write of its own. The instance keeps each
plant's latest beat and writes all it holds once a ``BEAT_WRITE_S``, in one transaction. A
write that fails keeps its beats for the next (unless a newer one of the plant came meanwhile);
the agents' next beats say the same anyway."""

from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from rollout.state.agents import Heartbeat
from rollout.state.journal import Journal

log = logging.getLogger("rollout.web")
BEAT_WRITE_S = 0.5
"""How long a beat waits in the instance at most before it is written (the centre calls an
agent unreachable after 15 s of silence)."""


class BeatWriter:
    """Used from the event loop only."""

    def __init__(self, journal: Journal, every: float = BEAT_WRITE_S) -> None:
        self.journal = journal
        self.every = every
        self._pending: dict[str, Heartbeat] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, beat: Heartbeat) -> None:
        self._pending[beat.plant] = beat
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self.every)
            await self.flush()

    async def flush(self) -> None:
        """Write every beat held now (the server's shutdown calls it last)."""
        beats, self._pending = self._pending, {}
        if not beats:
            return
        try:
            await run_in_threadpool(self.journal.beat, *beats.values())
        except Exception as exc:  # the state is away: keep them, unless a newer beat came meanwhile
            log.warning("agents' heartbeats not written yet: %s", type(exc).__name__)
            for plant, beat in beats.items():
                self._pending.setdefault(plant, beat)
