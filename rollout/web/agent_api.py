"""What agents ask of the centre, ``/api/v1/agent``: their plant's work orders (long-polled), the
blobs those orders need, and the events, results and heartbeats they send back.

Only a token of role ``agent`` comes in, and only for its own plant: an order, blob or event of
another plant is refused (403) exactly as one that does not exist would be for it."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from rollout.core.access import Principal
from rollout.core.events import Event
from rollout.state.agents import AgentOrder, Heartbeat
from rollout.web.auth import Forbidden, Who, require
from rollout.web.context import Console, console

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])
Ctx = Annotated[Console, Depends(console)]
LONG_POLL_S = 30.0
"""The longest one poll for work waits before it answers "nothing yet" (204)."""
MAX_EVENTS = 1000
"""Events in one post; an agent's outbox sends more in several."""


async def agent(principal: Who) -> Principal:
    """An agent token of exactly one plant; every other role is refused here."""
    require(principal, "agent")
    if len(principal.plants) != 1:
        raise Forbidden("an agent token must be scoped to exactly one plant")
    return principal


Agent = Annotated[Principal, Depends(agent)]


def _plant(who: Principal) -> str:
    return who.plants[0]


def _own(ctx: Console, who: Principal, order_id: str) -> AgentOrder:
    found = ctx.journal.order(order_id)
    if found is None or found.plant != _plant(who):
        raise Forbidden("no such order for your plant")
    return found


def _order(found: AgentOrder) -> dict[str, Any]:
    return {"id": found.id, "state": found.state, "assignment": json.loads(found.body)}


@router.get("/me")
def me(who: Agent) -> dict[str, str]:
    return {"name": who.name, "plant": _plant(who)}


@router.get("/orders/next", response_model=None)
async def next_order(ctx: Ctx, who: Agent, wait: Annotated[float, Query(ge=0, le=LONG_POLL_S)] = 20.0) -> Any:
    """The plant's oldest open order, waiting up to ``wait`` seconds for one (204 when none came).
    The waiting is the instance's one ``OrderWatch``: no query of each waiting agent."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left > 0 and not await ctx.orders.wait(_plant(who), left):
            return Response(status_code=204)  # no look found an open order in time: no read to say so again
        found = await run_in_threadpool(ctx.journal.next_order, _plant(who))
        if found is not None:
            return _order(found)
        if time.monotonic() >= deadline:
            return Response(status_code=204)


@router.post("/orders/{order_id:path}/take")
def take(ctx: Ctx, who: Agent, order_id: str) -> dict[str, Any]:
    _own(ctx, who, order_id)
    taken = ctx.journal.take_order(order_id, who.name)
    if taken is None:
        return {"id": order_id, "state": "closed"}
    return _order(taken)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: Annotated[int, Field(ge=1)]
    event: dict[str, Any]


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[EventIn], Field(max_length=MAX_EVENTS)]


@router.post("/orders/{order_id:path}/events")
def events(ctx: Ctx, who: Agent, order_id: str, body: EventsIn) -> dict[str, Any]:
    """Keep the agent's events (a replayed seq is kept once); says up to where all are kept."""
    found = _own(ctx, who, order_id)
    rows: list[tuple[int, str]] = []
    for item in body.events:
        try:
            event = Event.from_dict(item.event)
        except ValueError as exc:
            raise BadEvent(f"event {item.seq}: {exc}") from None
        if event.plant != found.plant:
            raise Forbidden(f"event {item.seq} is about another plant")
        rows.append((item.seq, json.dumps(item.event, separators=(",", ":"))))
    through = ctx.journal.add_order_events(order_id, rows)
    return {"id": order_id, "stored_through": through, "state": found.state}


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    last_seq: Annotated[int, Field(ge=0)]
    result: dict[str, Any]


@router.post("/orders/{order_id:path}/result")
def result(ctx: Ctx, who: Agent, order_id: str, body: ResultIn) -> dict[str, Any]:
    """The order's result, accepted once every event before it is kept (else 409: send those first)."""
    found = _own(ctx, who, order_id)
    kept = ctx.journal.add_order_events(order_id, [])
    if kept < body.last_seq:
        raise Incomplete(f"events up to {body.last_seq} are not all in (kept through {kept})")
    closed = ctx.journal.finish_order(order_id, "done", json.dumps(body.result))
    return {"id": order_id, "state": "done" if closed else found.state}


@router.get("/blobs/{digest}")
def blob(ctx: Ctx, who: Agent, digest: str) -> Response:
    """A blob an order of the agent's plant needs; any other is refused as if it did not exist."""
    if not ctx.journal.order_needs(_plant(who), digest):
        raise Forbidden("no order of your plant needs that blob")
    data = ctx.journal.blob(digest)
    if data is None:
        raise Forbidden("no order of your plant needs that blob")
    return Response(data, media_type="application/octet-stream")


class BeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detail: dict[str, Any] = {}


@router.post("/heartbeat", status_code=204)
async def heartbeat(ctx: Ctx, who: Agent, body: BeatIn) -> Response:
    """Kept with the other agents' beats and written with them within ``BEAT_WRITE_S``: a beat
    only says the agent is alive, and ten thousand agents' beats are one write, not thousands."""
    detail = json.dumps(body.detail, separators=(",", ":"))[:4000]
    ctx.beats.add(Heartbeat(_plant(who), who.name, time.time(), detail))
    return Response(status_code=204)


class BadEvent(Exception):
    """An event the agent sent that is not one (422)."""


class Incomplete(Exception):
    """A result sent before the events it follows (409)."""
