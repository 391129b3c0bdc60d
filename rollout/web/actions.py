"""The console's actions, from a form or the API: checked for role, plant and CSRF, claimed
once by idempotency key, then run in the background by this instance."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from rollout.core.access import Principal
from rollout.errors import ConfigError
from rollout.service import jobs
from rollout.state.access import Job
from rollout.web.auth import Forbidden, Who, check_csrf, require
from rollout.web.context import Console, console

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["actions"])
Ctx = Annotated[Console, Depends(console)]
RolloutAction = Literal["approve", "resume", "abort"]


class RollbackBody(BaseModel):
    key: Annotated[str, Field(min_length=8, max_length=100, description="Idempotency key: the same key is one job.")]
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    to: Annotated[str | None, Field(max_length=200)] = None
    layer: Annotated[str | None, Field(max_length=100)] = None


class RestoreBody(BaseModel):
    key: Annotated[str, Field(min_length=8, max_length=100, description="Idempotency key: the same key is one job.")]
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    host: Annotated[str | None, Field(max_length=200, description="Only this host (default: every host).")] = None
    current_overlays: bool = Field(
        False, description="Render with the plant's overlays as they are now, though they changed or were not recorded."
    )


class VerifyBody(BaseModel):
    key: Annotated[str, Field(min_length=8, max_length=100, description="Idempotency key: the same key is one job.")]
    reason: Annotated[str, Field(min_length=1, max_length=500)] = "drift check"


class ActionBody(BaseModel):
    key: Annotated[str, Field(min_length=8, max_length=100)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class JobOut(BaseModel):
    key: str
    kind: str
    state: str
    user: str
    reason: str
    rollout: str | None
    message: str
    created: float
    updated: float
    new: bool = Field(description="False when the key had been claimed already (a double click, another instance).")

    @staticmethod
    def of(job: Job, new: bool) -> JobOut:
        return JobOut(
            key=job.key,
            kind=job.kind,
            state=job.state,
            user=job.user,
            reason=job.reason,
            rollout=job.rollout,
            message=job.message,
            created=job.created,
            updated=job.updated,
            new=new,
        )


def _start(ctx: Console, who: Principal, request: jobs.Request) -> tuple[Job, bool]:
    if request.plant is not None and not who.sees(request.plant):
        raise Forbidden()
    if request.plant is not None and request.plant not in ctx.project.plants:
        raise (
            Forbidden("no such plant in your reach")
            if who.scoped
            else HTTPException(404, f"no plant {request.plant!r}")
        )
    job, new = jobs.claim(ctx.project, ctx.journal, who, request)
    if new:
        ctx.runner.start(job)
    return job, new


def _rollback(ctx: Console, who: Principal, plant: str, body: RollbackBody) -> tuple[Job, bool]:
    require(who, "rollback", plant)
    to, layer = body.to or None, body.layer or None
    return _start(ctx, who, jobs.Request("rollback", body.key, body.reason, plant=plant, to=to, layer=layer))


def _restore(ctx: Console, who: Principal, plant: str, body: RestoreBody) -> tuple[Job, bool]:
    require(who, "restore", plant)
    request = jobs.Request(
        "restore", body.key, body.reason, plant=plant, host=body.host or None, current_overlays=body.current_overlays
    )
    return _start(ctx, who, request)


def _verify(ctx: Console, who: Principal, plant: str, body: VerifyBody) -> tuple[Job, bool]:
    require(who, "verify", plant)
    return _start(ctx, who, jobs.Request("verify", body.key, body.reason, plant=plant))


def _confirmed(plant: str, confirm: str, what: str) -> None:
    """A form that changes a plant's hosts needs the plant's name typed, as the rollback does."""
    if confirm != plant:
        raise ConfigError.one(
            "confirm", f"the {what} of {plant} was not confirmed", expected=f"the plant's name typed: {plant}"
        )


def _on_rollout(ctx: Console, who: Principal, rid: str, action: RolloutAction, body: ActionBody) -> tuple[Job, bool]:
    require(who, action)
    return _start(ctx, who, jobs.Request(action, body.key, body.reason, rollout=rid))


@router.post("/plants/{plant}/rollback")
def rollback_form(
    request: Request,
    ctx: Ctx,
    who: Who,
    plant: str,
    key: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    to: Annotated[str, Form()] = "",
    layer: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    require(who, "rollback", plant)
    _confirmed(plant, confirm, "rollback")
    job, _ = _rollback(ctx, who, plant, RollbackBody(key=key, reason=reason, to=to or None, layer=layer or None))
    return RedirectResponse(f"/jobs/{job.key}", status_code=303)


@router.post("/plants/{plant}/restore")
def restore_form(
    request: Request,
    ctx: Ctx,
    who: Who,
    plant: str,
    key: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    host: Annotated[str, Form()] = "",
    current_overlays: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    require(who, "restore", plant)
    _confirmed(plant, confirm, "restore")
    body = RestoreBody(key=key, reason=reason, host=host or None, current_overlays=current_overlays == "yes")
    job, _ = _restore(ctx, who, plant, body)
    return RedirectResponse(f"/jobs/{job.key}", status_code=303)


@router.post("/plants/{plant}/verify")
def verify_form(
    request: Request,
    ctx: Ctx,
    who: Who,
    plant: str,
    key: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    require(who, "verify", plant)
    job, _ = _verify(ctx, who, plant, VerifyBody(key=key, reason=reason or "drift check"))
    return RedirectResponse(f"/jobs/{job.key}", status_code=303)


@router.post("/rollouts/{rid}/{action}")
def rollout_form(
    request: Request,
    ctx: Ctx,
    who: Who,
    rid: str,
    action: RolloutAction,
    key: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    job, _ = _on_rollout(ctx, who, rid, action, ActionBody(key=key, reason=reason))
    return RedirectResponse(f"/jobs/{job.key}", status_code=303)


@api.post("/plants/{plant}/rollback", status_code=202)
def rollback_api(request: Request, ctx: Ctx, who: Who, plant: str, body: RollbackBody) -> JobOut:
    """Roll a plant back now (plant IT of that plant, release engineers, admins): a background job."""
    check_csrf(request, request.headers.get("x-csrf-token"))
    return JobOut.of(*_rollback(ctx, who, plant, body))


@api.post("/plants/{plant}/restore", status_code=202)
def restore_api(request: Request, ctx: Ctx, who: Who, plant: str, body: RestoreBody) -> JobOut:
    """Bring a wiped or replaced host (or the whole plant) back to the release the state says it
    ran (plant IT of that plant, release engineers, admins): a background job."""
    check_csrf(request, request.headers.get("x-csrf-token"))
    return JobOut.of(*_restore(ctx, who, plant, body))


@api.post("/plants/{plant}/verify", status_code=202)
def verify_api(request: Request, ctx: Ctx, who: Who, plant: str, body: VerifyBody) -> JobOut:
    """Check every host's files against its release's manifest (``status --verify``; plant IT of
    that plant, release engineers, admins): a background job; the plant shows what drifted."""
    check_csrf(request, request.headers.get("x-csrf-token"))
    return JobOut.of(*_verify(ctx, who, plant, body))


@api.post("/rollouts/{rid}/{action}", status_code=202)
def rollout_api(request: Request, ctx: Ctx, who: Who, rid: str, action: RolloutAction, body: ActionBody) -> JobOut:
    """Approve (then resume), resume or abort a rollout (release engineers, admins): a background job."""
    check_csrf(request, request.headers.get("x-csrf-token"))
    return JobOut.of(*_on_rollout(ctx, who, rid, action, body))


@api.get("/jobs/{key}")
def job_api(ctx: Ctx, who: Who, key: str) -> JobOut:
    """A job's state; its rollout's events are its progress (``/api/v1/events?rollout=``)."""
    require(who, "read")
    job = ctx.journal.job(key)
    plant = job.params.get("plant") if job else None
    if job is None or (job.user != who.name and who.scoped and not (plant and who.sees(str(plant)))):
        raise HTTPException(404, "no such job in your reach")
    return JobOut.of(job, False)
