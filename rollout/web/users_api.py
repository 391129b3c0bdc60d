"""Users over the API, for admins: list, add (the token is in the answer, once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from rollout.service import users
from rollout.state.access import User
from rollout.web.auth import Who, check_csrf, require
from rollout.web.context import Console, console

router = APIRouter(prefix="/api/v1/users", tags=["users"])
Ctx = Annotated[Console, Depends(console)]


class NewUser(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: str
    plants: Annotated[list[str], Field(max_length=1000)] = []


def _shown(user: User) -> dict[str, Any]:
    """A user as the API shows it: never its token's hash."""
    return {"name": user.name, "role": user.role, "plants": list(user.plants), "active": user.active}


@router.get("")
def list_users(ctx: Ctx, who: Who) -> dict[str, Any]:
    """Every user (admins only)."""
    require(who, "users")
    return {"users": [_shown(u) for u in ctx.journal.users()]}


@router.post("", status_code=201)
def add_user(request: Request, ctx: Ctx, who: Who, body: NewUser) -> dict[str, Any]:
    """Allow a user in (admins only); the answer holds its token, which is not kept anywhere."""
    require(who, "users")
    check_csrf(request, request.headers.get("x-csrf-token"))
    user, token = users.add_user(ctx.project, ctx.journal, body.name, body.role, body.plants, who.name)
    return {**_shown(user), "token": token}


@router.delete("/{name}")
def revoke_user(request: Request, ctx: Ctx, who: Who, name: str) -> dict[str, Any]:
    """End a user's token and sessions at once (admins only)."""
    require(who, "users")
    check_csrf(request, request.headers.get("x-csrf-token"))
    users.revoke_user(ctx.journal, name)
    return {"name": name, "active": False}
