"""How a failed request is answered: JSON with a 4xx for the API, a page for a person; never a
stack trace. The one place the HTTP layer turns errors into statuses."""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from rollout.errors import ConfigError
from rollout.masking import mask
from rollout.state.journal import JournalError, LockedError
from rollout.web.agent_api import BadEvent, Incomplete
from rollout.web.auth import BadCsrf, Forbidden, NotSignedIn
from rollout.web.templating import templates

log = logging.getLogger("rollout.web")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def answer(
    request: Request, status: int, kind: str, message: str, problems: list[dict[str, object]] | None = None
) -> Response:
    if _is_api(request):
        error: dict[str, object] = {"kind": kind, "message": message}
        if problems:
            error["problems"] = problems
        return JSONResponse({"error": error}, status_code=status)
    context = {"status": status, "kind": kind, "message": message, "who": None}
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _is_api(request) or request.url.path == "/live":
            return answer(request, 401, "unauthorized", "sign in first: a session cookie or 'Authorization: Bearer'")
        return RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return answer(request, 403, "forbidden", str(exc))

    @app.exception_handler(BadCsrf)
    async def bad_csrf(request: Request, exc: BadCsrf) -> Response:
        return answer(request, 403, "csrf", "the form's CSRF token is missing or wrong; reload the page")

    @app.exception_handler(ConfigError)
    async def bad_input(request: Request, exc: ConfigError) -> Response:
        shown = [p.render() for p in exc.problems]
        return answer(request, 400, "bad_input", "; ".join(shown), [p.as_dict() for p in exc.problems])

    @app.exception_handler(BadEvent)
    async def bad_event(request: Request, exc: BadEvent) -> Response:
        return answer(request, 422, "bad_input", str(exc))

    @app.exception_handler(Incomplete)
    async def incomplete(request: Request, exc: Incomplete) -> Response:
        return answer(request, 409, "incomplete", str(exc))

    @app.exception_handler(LockedError)
    async def locked(request: Request, exc: LockedError) -> Response:
        return answer(request, 409, "locked", str(exc))

    @app.exception_handler(JournalError)
    async def journal(request: Request, exc: JournalError) -> Response:
        return answer(request, 503, "state", f"the state cannot be read or written: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return answer(request, 422, "bad_input", where)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> Response:
        return answer(request, exc.status_code, "http", str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        trace = mask("".join(traceback.format_exception(exc)))  # a decrypted secret is never logged
        log.error("internal error on %s %s\n%s", request.method, request.url.path, trace)
        return answer(request, 500, "internal", f"internal error: {type(exc).__name__} (logged by the server)")
