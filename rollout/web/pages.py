"""The console's pages: network, plant, rollout, history and job, readable without JavaScript.

Each page puts its live part in a template of its own (``*_live.html``): with ``?partial=1``
only that part is rendered, which the page's script fetches again when the state moves."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from rollout.service import console as queries
from rollout.service.console_detail import history_page, plant_page, rollout_page
from rollout.web.auth import Forbidden, Who, require
from rollout.web.context import Console, console
from rollout.web.templating import templates

router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
Ctx = Annotated[Console, Depends(console)]


def page(request: Request, name: str, who: Any, partial: bool, **context: Any) -> Response:
    """The page ``name`` (or only its live part), with what every page needs."""
    context |= {"who": who, "csrf": getattr(request.state, "csrf", ""), "project": request.app.state.console.project}
    template = f"{name}_live.html" if partial else f"{name}.html"
    response = templates.TemplateResponse(request, template, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/")
def network_page(
    request: Request,
    ctx: Ctx,
    who: Who,
    archetype: str = "",
    tag: str = "",
    wave: str = "",
    state: str = "",
    partial: bool = False,
) -> Response:
    require(who, "read")
    filters = queries.Filters(archetype, tag, wave, state)
    view = queries.network(ctx.project, ctx.journal, who, filters)
    return page(request, "network", who, partial, net=view, filters=filters, seq=ctx.journal.last_seq())


@router.get("/plants/{plant}")
def plant_view(request: Request, ctx: Ctx, who: Who, plant: str, partial: bool = False) -> Response:
    require(who, "read", plant)  # before looking it up: another plant's name is not even confirmed
    if plant not in ctx.project.plants:
        raise Forbidden("no such plant in your reach") if who.scoped else _not_found(f"no plant {plant!r}")
    view = plant_page(ctx.project, ctx.journal, who, plant)
    return page(request, "plant", who, partial, p=view, seq=ctx.journal.last_seq(), key=_new_key())


@router.get("/rollouts/{rid}")
def rollout_view(request: Request, ctx: Ctx, who: Who, rid: str, partial: bool = False) -> Response:
    require(who, "read")
    view = rollout_page(ctx.project, ctx.journal, who, rid)
    if view is None:
        raise _not_found(f"no rollout {rid!r} in your reach")
    return page(request, "rollout", who, partial, r=view, seq=ctx.journal.last_seq(), key=_new_key())


@router.get("/history")
def history_view(
    request: Request,
    ctx: Ctx,
    who: Who,
    plant: Annotated[str, Query(max_length=200)] = "",
    kind: str = "",
    state: str = "",
    partial: bool = False,
) -> Response:
    require(who, "read")
    if plant and not who.sees(plant):
        raise Forbidden()
    entries = history_page(ctx.project, ctx.journal, who, plant, kind, state)
    plants = who.visible(sorted(ctx.project.plants))
    filters = {"plant": plant, "kind": kind, "state": state}
    return page(
        request, "history", who, partial, entries=entries, plants=plants, filters=filters, seq=ctx.journal.last_seq()
    )


@router.get("/jobs/{key}")
def job_view(request: Request, ctx: Ctx, who: Who, key: str, partial: bool = False) -> Response:
    require(who, "read")
    job = ctx.journal.job(key)
    if job is None or (job.user != who.name and not _job_in_reach(job.params, who)):
        raise _not_found("no such job in your reach")
    return page(request, "job", who, partial, job=job, seq=ctx.journal.last_seq())


def _job_in_reach(params: dict[str, Any], who: Any) -> bool:
    plant = params.get("plant")
    return not who.scoped or (plant is not None and who.sees(str(plant)))


def _new_key() -> str:
    """A fresh idempotency key for the forms of a page: a second submit of the same form is the same job."""
    return secrets.token_urlsafe(16)


def _not_found(message: str) -> Exception:
    return HTTPException(404, message)
