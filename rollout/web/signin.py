"""Signing in with a token (then a session cookie), and out. Failed sign-ins are slowed down."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rollout.service import users
from rollout.web.auth import COOKIE, PRE_COOKIE, BadCsrf
from rollout.web.context import Console, console
from rollout.web.templating import templates

router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
Ctx = Annotated[Console, Depends(console)]


def _safe_next(target: str) -> str:
    """Only a path of this site: a sign-in link must not send anyone elsewhere."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _form(request: Request, ctx: Console, next_path: str, message: str = "", status: int = 200) -> Response:
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    context = {"who": None, "csrf": users.csrf_token(pre), "next": _safe_next(next_path), "message": message}
    response = templates.TemplateResponse(request, "signin.html", context, status_code=status)
    response.set_cookie(PRE_COOKIE, pre, max_age=3600, httponly=True, secure=ctx.secure, samesite="strict")
    return response


@router.get("/signin")
def signin_page(request: Request, ctx: Ctx, next: str = "/") -> Response:
    return _form(request, ctx, next)


@router.post("/signin")
async def signin(
    request: Request,
    ctx: Ctx,
    token: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not users.csrf_ok(pre, csrf):
        raise BadCsrf()
    address = request.client.host if request.client else "?"
    if ctx.throttle.blocked(address):
        return _form(request, ctx, next, "Too many failed sign-ins from this address; try again later.", 429)
    found = await run_in_threadpool(users.sign_in, ctx.journal, token.strip())
    if found is None:
        await asyncio.sleep(ctx.throttle.delay(address))  # each failure answered later than the last
        ctx.throttle.failed(address)
        return _form(request, ctx, next, "That token is not valid (wrong, revoked, or an agent's).", 401)
    ctx.throttle.succeeded(address)
    _, cookie = found
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, cookie, max_age=int(users.SESSION_TTL), httponly=True, secure=ctx.secure, samesite="strict"
    )
    response.delete_cookie(PRE_COOKIE)
    return response


@router.post("/signout")
def signout(request: Request, ctx: Ctx, csrf: Annotated[str, Form()] = "") -> Response:
    cookie = request.cookies.get(COOKIE, "")
    if cookie and users.csrf_ok(cookie, csrf):
        ctx.journal.end_session(users.hash_token(cookie))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE)
    return response
