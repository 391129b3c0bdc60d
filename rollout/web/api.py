"""The JSON API, ``/api/v1``: the same data as the CLI's ``--json``, cut to the caller's reach.

OpenAPI at ``/api/v1/openapi.json``. Errors are JSON with a 4xx status (``errors.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.exceptions import HTTPException

from rollout.service import console as queries
from rollout.service.console import PlantRow
from rollout.service.console_detail import history_page, plant_page, rollout_page
from rollout.state.journal import Lock
from rollout.web.auth import Forbidden, Who, require
from rollout.web.context import Console, console

router = APIRouter(prefix="/api/v1", tags=["state"])
Ctx = Annotated[Console, Depends(console)]


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds")


def plant_record(row: PlantRow) -> dict[str, Any]:
    return {
        "plant": row.name,
        "archetype": row.archetype,
        "tags": list(row.tags),
        "wave": row.wave,
        "timezone": row.timezone,
        "state": row.condition,
        "release": row.view.release,
        "reason": row.view.reason,
        "locked_by": row.lock.describe() if row.lock else None,
        "agent_unreachable_since": _iso(row.view.agent_silent_since) if row.note else None,
        "layers": [
            {
                "layer": lay.name,
                "release": lay.release,
                "state": lay.condition,
                "since": _iso(lay.since),
                "state_since": _iso(lay.changed),
                "rollout": lay.rollout,
                "drift": dict(lay.drift),
            }
            for lay in row.view.layers.values()
        ],
    }


def _lock(lock: Lock) -> dict[str, Any]:
    return {
        "plant": lock.plant,
        "owner": lock.owner,
        "purpose": lock.purpose,
        "operator": lock.operator,
        "expires": _iso(lock.expires),
        "held_by": lock.describe(),
    }


@router.get("/me")
def me(who: Who) -> dict[str, Any]:
    """Who the token or session is: name, role and the plants it reaches (all, when unscoped)."""
    return {"name": who.name, "role": who.role, "plants": list(who.plants) if who.scoped else None}


@router.get("/plants")
def plants(ctx: Ctx, who: Who, archetype: str = "", tag: str = "", wave: str = "", state: str = "") -> dict[str, Any]:
    """Every plant in reach with each layer's release and state, and how many plants run each release."""
    require(who, "read")
    net = queries.network(ctx.project, ctx.journal, who, queries.Filters(archetype, tag, wave, state))
    return {
        "plants": [plant_record(r) for r in net.rows],
        "total": net.total,
        "releases": [{"release": r, "plants": n} for r, n in net.releases],
        "under_way": [e.as_dict() for e in net.under_way],
    }


@router.get("/plants/{plant}")
def plant(ctx: Ctx, who: Who, plant: str) -> dict[str, Any]:
    """One plant: its hosts, layers, history, locks and assets (every package of every host)."""
    require(who, "read", plant)
    if plant not in ctx.project.plants:
        raise Forbidden("no such plant in your reach") if who.scoped else HTTPException(404, f"no plant {plant!r}")
    page = plant_page(ctx.project, ctx.journal, who, plant)
    record = plant_record(page.row)
    record["hosts"] = [{"layer": h.layer, "host": h.host, "address": h.address} for h in page.hosts]
    record["history"] = [e.as_dict() for e in page.history]
    record["locks"] = [_lock(lock) for lock in page.locks]
    record["releases"] = page.releases
    record["assets"] = [row.as_dict() for row in page.assets]
    view = page.row.view
    drifted = [{"host": h, "layer": layer, "drift": what} for h, layer, what in view.drifted]
    record["drift"] = {"verified": _iso(view.verified), "drifted_hosts": drifted}
    record["agent"] = page.agent or None
    return record


@router.get("/rollouts")
def rollouts(ctx: Ctx, who: Who) -> dict[str, Any]:
    """The rollouts and rollbacks under way."""
    require(who, "read")
    net = queries.network(ctx.project, ctx.journal, who, queries.Filters())
    return {"rollouts": [e.as_dict() for e in net.under_way]}


@router.get("/rollouts/{rid}")
def rollout(ctx: Ctx, who: Who, rid: str) -> dict[str, Any]:
    """One rollout: its waves, each plant's progress, failed checks, and the actions open to the caller."""
    require(who, "read")
    page = rollout_page(ctx.project, ctx.journal, who, rid)
    if page is None:
        raise HTTPException(404, f"no rollout {rid!r} in your reach")
    record = page.entry.as_dict()
    record["waves"] = [
        {
            "wave": w.name,
            "waiting_for_approval": w.state.approval_waiting and w.state.approval_granted is None,
            "approved_by": w.state.approval_granted,
            "baking_until": _iso(w.state.bake_until),
            "finished": w.state.finished,
            "plants": [
                {
                    "plant": p.name,
                    "phase": p.phase,
                    "layers_done": p.layers_done,
                    "layers_passed": p.layers_passed,
                    "outcome": p.outcome,
                    "reason": p.reason,
                }
                for p in w.plants
            ],
        }
        for w in page.waves
    ]
    record["failed_checks"] = [vars(f) for f in page.failed]
    record["actions"] = page.actions
    record["last_seq"] = page.last_seq
    return record


@router.get("/events")
def events(
    ctx: Ctx,
    who: Who,
    after: Annotated[int, Query(ge=0)] = 0,
    rollout: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """Events after a sequence number, in order (at most ``limit``; ask again from the last ``seq``)."""
    require(who, "read")
    found = queries.events_for(ctx.journal, who, after, rollout, limit)
    return {"events": [e.as_dict() for e in found], "last_seq": found[-1].seq if found else after}


@router.get("/history")
def history(ctx: Ctx, who: Who, plant: str = "", kind: str = "", state: str = "") -> dict[str, Any]:
    """Every rollout and rollback in reach, newest first."""
    require(who, "read")
    if plant and not who.sees(plant):
        raise Forbidden()
    return {"history": [e.as_dict() for e in history_page(ctx.project, ctx.journal, who, plant, kind, state)]}
