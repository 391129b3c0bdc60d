"""Who a request comes from (a session cookie or a bearer token) and whether it may do what it
asks: every route depends on these, so scope is checked on the server for every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from rollout.core.access import Action, Principal
from rollout.service import users
from rollout.state.access import User
from rollout.web.context import Console, console

COOKIE = "rollout_session"
PRE_COOKIE = "rollout_signin"
"""The sign-in form's own cookie: its CSRF token is derived from it, before any session exists."""


class NotSignedIn(Exception):
    """No valid session or token: pages send the person to sign in, the API answers 401."""


class Forbidden(Exception):
    """Signed in, but this is out of the user's role or plants (403)."""

    def __init__(self, message: str = "not allowed for your role or plants") -> None:
        super().__init__(message)


class BadCsrf(Exception):
    """A form or cookie-borne API call without its session's CSRF token (403)."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def who(request: Request, ctx: Annotated[Console, Depends(console)]) -> Principal:
    """The signed-in principal of the request; raises ``NotSignedIn``. Async, with the state's
    lookup on a worker thread: an agent's request whose token was just seen costs no thread hop."""
    token = _bearer(request)
    if token is not None:
        user = await _by_token(ctx, token)
        if user is None:
            raise NotSignedIn()
        request.state.via = "bearer"
    else:
        cookie = request.cookies.get(COOKIE)
        user = await run_in_threadpool(users.by_session, ctx.journal, cookie) if cookie else None
        if user is None:
            raise NotSignedIn()
        request.state.via = "cookie"
        request.state.csrf = users.csrf_token(cookie or "")
    return users.principal(user)


async def _by_token(ctx: Console, token: str) -> User | None:
    digest = users.token_digest(token)
    if digest is None:
        return None
    user = ctx.agent_tokens.get(digest)
    if user is None:
        user = await run_in_threadpool(ctx.journal.user_by_token, digest)
        if user is not None:
            ctx.agent_tokens.keep(digest, user)
    return user


Who = Annotated[Principal, Depends(who)]


async def reader(principal: Who) -> Principal:
    """The principal of a request that reads the console's data (every role but ``agent``)."""
    require(principal, "read")
    return principal


Reader = Annotated[Principal, Depends(reader)]


def require(principal: Principal, action: Action, plant: str | None = None) -> None:
    """Refuse (403) unless ``principal`` may take ``action`` on ``plant``."""
    if not principal.may(action, plant):
        raise Forbidden()


def check_csrf(request: Request, sent: str | None) -> None:
    """A state-changing request borne by the cookie must carry its session's CSRF token; a bearer
    token is not sent by browsers on their own, so it needs none."""
    if getattr(request.state, "via", "") == "bearer":
        return
    cookie = request.cookies.get(COOKIE, "")
    if not cookie or not sent or not users.csrf_ok(cookie, sent):
        raise BadCsrf()
