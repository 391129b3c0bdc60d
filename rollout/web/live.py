"""Server-sent events: the state's events as they are recorded, cut to the caller's reach.

A page listens and fetches its live part again when one arrives; ``Last-Event-ID`` (the
seq) lets the browser's reconnect go on where it stopped. A stream ends after a while so
that a revoked session cannot keep one open: the browser reconnects and is checked again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from rollout.service import console as queries
from rollout.web.auth import Reader
from rollout.web.context import Console, console

router = APIRouter(tags=["state"])
Ctx = Annotated[Console, Depends(console)]
STREAM_S = 300.0
"""How long one stream lasts before the browser reconnects (and is checked again)."""
POLL_S = 0.5
"""How often a stream looks for new events: one cheap query (the journal's ``wait`` is for one thread)."""
BATCH = 200


@router.get("/live", response_class=EventSourceResponse)
async def live(
    ctx: Ctx,
    who: Reader,
    after: Annotated[int, Query(ge=0)] = 0,
    rollout: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Each event in reach as it is recorded (``data``: the event as ``--json`` prints it; ``id``: its seq)."""
    seq = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    deadline = time.monotonic() + STREAM_S
    yield ServerSentEvent(comment="connected", retry=2000)
    while time.monotonic() < deadline:
        top = await run_in_threadpool(ctx.journal.last_seq)
        if top <= seq:
            await asyncio.sleep(POLL_S)
            continue
        found = await run_in_threadpool(queries.events_for, ctx.journal, who, seq, rollout, BATCH)
        for event in found:
            yield ServerSentEvent(data=event.as_dict(), id=str(event.seq), event="state")
        # Everything up to ``top`` was read, shown or out of reach; a full batch goes on from its last.
        last = int(found[-1].seq or seq) if found else seq
        seq = last if len(found) == BATCH else max(top, last)
