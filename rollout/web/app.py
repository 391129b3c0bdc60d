"""The console's application: FastAPI with its routers, static files and error answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rollout.config.project import Project
from rollout.core.clock import Clock, SystemClock
from rollout.engine.executor import Options
from rollout.service.jobs import JobRunner
from rollout.service.notify import Notifier
from rollout.service.options import project_options
from rollout.state.journal import Journal
from rollout.web import actions, agent_api, api, errors, live, pages, signin, users_api
from rollout.web.context import Console
from rollout.web.headers import SecurityHeaders
from rollout.web.templating import HERE

log = logging.getLogger("rollout.web")
JOB_GRACE_S = 30.0
"""How long a stopping server waits for the jobs it runs (a rollback ends whole, or resumes later)."""
NOTIFY_GRACE_S = 3.0


def create_app(
    project: Project,
    journal: Journal,
    secure: bool = False,
    clock: Clock | None = None,
    options: Callable[[str], Options] | None = None,
    notify: bool = True,
) -> FastAPI:
    """The console on ``journal``; ``options`` gives the host options of an action's user;
    ``notify``: this instance also delivers the project's notifications while it runs."""
    runner = JobRunner(project, journal, options or (lambda who: project_options(project, who)), clock or SystemClock())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = _notifier(project, journal) if notify else None
        yield
        await app.state.console.beats.flush()
        runner.join(JOB_GRACE_S)
        if notifier is not None:
            for problem in notifier.stop(NOTIFY_GRACE_S):
                log.warning("notifications: %s", problem)

    app = FastAPI(
        title="rollout",
        summary="Staged rollouts to plants: the console's JSON API",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the interactive docs load scripts from a CDN; plants have no internet
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.console = Console(project, journal, runner, secure)
    errors.install(app)
    app.mount(agent_api.PREFIX, agent_api.router)  # first: the agents make most requests
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    routers = (signin.router, pages.router, actions.router, actions.api, api.router, users_api.router, live.router)
    for router in routers:
        app.include_router(router)

    app.add_middleware(SecurityHeaders)
    return app


def _notifier(project: Project, journal: Journal) -> Notifier | None:
    """The webhooks told of what any process records while this server runs. It starts where the
    last queued notification was (what was recorded while no notifier ran is told late, not
    never); on a state that never notified, from now. Several instances queue each event once."""
    if not project.config.notify:
        return None
    latest = journal.deliveries(1)
    notifier = Notifier(journal, project)
    notifier.start(latest[0].seq if latest else journal.last_seq())
    return notifier
