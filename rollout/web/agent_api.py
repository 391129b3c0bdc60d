"""What agents ask of the centre, ``/api/v1/agent``: their plant's work orders (long-polled), the
blobs those orders need, and the events, results and heartbeats they send back.

Only a token of role ``agent`` comes in, and only for its own plant: an order, blob or event of
another plant is refused (403) exactly as one that does not exist would be for it.

Plain Starlette routes, not FastAPI's: ten thousand agents make hundreds of these requests a
second, most of them a long poll or a beat that does almost nothing, and FastAPI's dependency
solving, its wrapping of every step and a thread hop a dependency cost several times the work
itself. Each request here is its checks on the event loop and at most one hop to a worker thread
for the state. The checks are the console's own (``auth.who``, ``agent``); failures raise the
same exceptions, answered by ``errors`` as every other API error. Not in the OpenAPI document:
this API is ``rollout agent``'s, not a user's."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from rollout.core.access import Principal
from rollout.core.events import Event
from rollout.state.agents import AgentOrder, Heartbeat
from rollout.web.auth import Forbidden, require, who
from rollout.web.context import Console, console

PREFIX = "/api/v1/agent"
LONG_POLL_S = 30.0
"""The longest one poll for work waits before it answers "nothing yet" (204)."""
DEFAULT_POLL_S = 20.0
MAX_EVENTS = 1000
"""Events in one post; an agent's outbox sends more in several."""
M = TypeVar("M", bound=BaseModel)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: Annotated[int, Field(ge=1)]
    event: dict[str, Any]


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[EventIn], Field(max_length=MAX_EVENTS)]


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    last_seq: Annotated[int, Field(ge=0)]
    result: dict[str, Any]


class BeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detail: dict[str, Any] = {}


class BadEvent(Exception):
    """An event the agent sent that is not one (422)."""


class Incomplete(Exception):
    """A result sent before the events it follows (409)."""


# -- the checks every request passes ----------------------------------------------------------


async def _agent(request: Request) -> tuple[Console, Principal]:
    """The console and the request's principal: an agent token of exactly one plant, or refused."""
    ctx = await console(request)
    principal = await who(request, ctx)
    require(principal, "agent")
    if len(principal.plants) != 1:
        raise Forbidden("an agent token must be scoped to exactly one plant")
    return ctx, principal


def _plant(principal: Principal) -> str:
    return principal.plants[0]


async def _body(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _wait(request: Request) -> float:
    raw = request.query_params.get("wait")
    try:
        wait = DEFAULT_POLL_S if raw is None else float(raw)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= LONG_POLL_S:
        problem = {"loc": ("query", "wait"), "msg": f"seconds from 0 to {LONG_POLL_S:g}", "type": "value_error"}
        raise RequestValidationError([problem])
    return wait


def _own(ctx: Console, principal: Principal, order_id: str) -> AgentOrder:
    found = ctx.journal.order(order_id)
    if found is None or found.plant != _plant(principal):
        raise Forbidden("no such order for your plant")
    return found


def _order(found: AgentOrder) -> dict[str, Any]:
    return {"id": found.id, "state": found.state, "assignment": json.loads(found.body)}


# -- the routes ------------------------------------------------------------------------------


async def me(request: Request) -> Response:
    _, principal = await _agent(request)
    return JSONResponse({"name": principal.name, "plant": _plant(principal)})


async def next_order(request: Request) -> Response:
    """The plant's oldest open order, waiting up to ``wait`` seconds for one (204 when none came).
    The waiting is the instance's one ``OrderWatch``: no query of each waiting agent."""
    ctx, principal = await _agent(request)
    plant = _plant(principal)
    deadline = time.monotonic() + _wait(request)
    while True:
        left = deadline - time.monotonic()
        if left > 0 and not await ctx.orders.wait(plant, left):
            return Response(status_code=204)  # no look found an open order in time: no read to say so again
        found = await run_in_threadpool(ctx.journal.next_order, plant)
        if found is not None:
            return JSONResponse(_order(found))
        if time.monotonic() >= deadline:
            return Response(status_code=204)


async def take(request: Request) -> Response:
    ctx, principal = await _agent(request)
    return JSONResponse(await run_in_threadpool(_take, ctx, principal, request.path_params["order_id"]))


def _take(ctx: Console, principal: Principal, order_id: str) -> dict[str, Any]:
    _own(ctx, principal, order_id)
    taken = ctx.journal.take_order(order_id, principal.name)
    return {"id": order_id, "state": "closed"} if taken is None else _order(taken)


async def _posted(request: Request, model: type[M], work: Callable[[Console, Principal, str, M], Any]) -> Response:
    """An agent's post about one of its orders: checked, its body read, ``work`` done on a worker thread."""
    ctx, principal = await _agent(request)
    body = await _body(request, model)
    return JSONResponse(await run_in_threadpool(work, ctx, principal, request.path_params["order_id"], body))


async def events(request: Request) -> Response:
    """Keep the agent's events (a replayed seq is kept once); says up to where all are kept."""
    return await _posted(request, EventsIn, _events)


def _events(ctx: Console, principal: Principal, order_id: str, body: EventsIn) -> dict[str, Any]:
    found = _own(ctx, principal, order_id)
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


async def result(request: Request) -> Response:
    """The order's result, accepted once every event before it is kept (else 409: send those first)."""
    return await _posted(request, ResultIn, _result)


def _result(ctx: Console, principal: Principal, order_id: str, body: ResultIn) -> dict[str, Any]:
    found = _own(ctx, principal, order_id)
    kept = ctx.journal.add_order_events(order_id, [])
    if kept < body.last_seq:
        raise Incomplete(f"events up to {body.last_seq} are not all in (kept through {kept})")
    closed = ctx.journal.finish_order(order_id, "done", json.dumps(body.result))
    return {"id": order_id, "state": "done" if closed else found.state}


async def blob(request: Request) -> Response:
    """A blob an order of the agent's plant needs; any other is refused as if it did not exist."""
    ctx, principal = await _agent(request)
    data = await run_in_threadpool(_blob, ctx, _plant(principal), request.path_params["digest"])
    return Response(data, media_type="application/octet-stream")


def _blob(ctx: Console, plant: str, digest: str) -> bytes:
    data = ctx.journal.blob(digest) if ctx.journal.order_needs(plant, digest) else None
    if data is None:
        raise Forbidden("no order of your plant needs that blob")
    return data


async def heartbeat(request: Request) -> Response:
    """Kept with the other agents' beats and written with them within ``BEAT_WRITE_S``: a beat
    only says the agent is alive, and ten thousand agents' beats are one write, not thousands."""
    ctx, principal = await _agent(request)
    body = await _body(request, BeatIn)
    detail = json.dumps(body.detail, separators=(",", ":"))[:4000]
    ctx.beats.add(Heartbeat(_plant(principal), principal.name, time.time(), detail))
    return Response(status_code=204)


router = Router(
    [
        Route("/me", me, methods=["GET"]),
        Route("/orders/next", next_order, methods=["GET"]),
        Route("/orders/{order_id:path}/take", take, methods=["POST"]),
        Route("/orders/{order_id:path}/events", events, methods=["POST"]),
        Route("/orders/{order_id:path}/result", result, methods=["POST"]),
        Route("/blobs/{digest}", blob, methods=["GET"]),
        Route("/heartbeat", heartbeat, methods=["POST"]),
    ]
)
"""Mounted at ``PREFIX`` by the application."""
