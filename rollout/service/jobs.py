"""The console's actions as background jobs: claimed once by idempotency key, run by the
instance that claimed them, their progress the events of the rollout they act on.

Nothing here prints or exits; the HTTP layer chooses statuses and messages.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from rollout.config.project import Project
from rollout.core.access import Principal
from rollout.core.clock import Clock
from rollout.core.events import Event
from rollout.engine.executor import Options, PlantResult
from rollout.errors import ConfigError, RolloutError
from rollout.masking import mask
from rollout.service import restore
from rollout.service.drift import drift_summary, verify_plants
from rollout.service.recorder import is_run_lease
from rollout.service.rollbacks import locked_rollback
from rollout.service.rollouts import abort, approve, resume_rollout
from rollout.state.access import Job
from rollout.state.journal import Journal, LockedError

KINDS = ("rollback", "restore", "verify", "approve", "resume", "abort")
ON_PLANT = ("rollback", "restore", "verify")
"""Actions on one plant; the others act on a rollout."""
log = logging.getLogger("rollout.jobs")


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Request:
    """An action as a person asked for it: what, on what, why, under which idempotency key."""

    kind: str
    key: str
    reason: str
    plant: str | None = None
    rollout: str | None = None
    to: str | None = None
    layer: str | None = None
    host: str | None = None
    current_overlays: bool | None = None
    """A restore's: render with the plant's overlays as they are now (None for other actions)."""


def claim(project: Project, journal: Journal, who: Principal, request: Request) -> tuple[Job, bool]:
    """The job of ``request``'s key: a new one (True) or the one a double click or another
    instance claimed first (False). A rollback of a plant someone holds is refused, naming them;
    a key already claimed is answered first, since its own job may be what holds the plant now."""
    params = {k: v for k, v in vars(request).items() if k not in ("kind", "key", "reason") and v is not None}
    known = journal.job(request.key)
    if known is not None:
        if (known.kind, known.params, known.user) != (request.kind, params, who.name):
            raise ConfigError.one(
                "key", "this idempotency key was used for another action", expected="a new key for a new action"
            )
        return known, False
    _check(project, journal, request)
    job = Job(request.key, request.kind, params, who.name, request.reason, time.time(), runner=runner_id())
    return journal.claim_job(job)


def _check(project: Project, journal: Journal, request: Request) -> None:
    if request.kind not in KINDS:
        raise ConfigError.one("kind", f"no action {request.kind!r}", expected="one of: " + ", ".join(KINDS))
    if not request.reason.strip():
        raise ConfigError.one("reason", "a reason is required", expected="why, in a few words")
    if not 8 <= len(request.key) <= 100:
        raise ConfigError.one("key", "not an idempotency key", expected="8 to 100 characters")
    if request.kind not in ON_PLANT:
        if journal.rollout(request.rollout or "") is None:
            raise ConfigError.one("rollout", f"no rollout {request.rollout!r}", expected="an id from the history")
        return
    plant = project.plant(request.plant or "")
    if request.kind == "rollback":
        if request.layer is not None and request.layer not in [lay.name for lay in project.config.layers]:
            raise ConfigError.one("layer", f"no layer named {request.layer!r}", expected="a layer of rollout.yaml")
        if request.to is not None:
            project.release(request.to, "to")  # a release that does not exist is refused now, not in the job
    elif request.kind == "restore":
        # what the state cannot restore, or overlays that changed, are refused now, not in the job
        restore.restore_plan(project, journal, plant, request.host, bool(request.current_overlays))
    now = time.time()
    for lock in journal.locks():
        if lock.plant == plant.name and not is_run_lease(lock) and not lock.stale(now):
            raise LockedError(plant.name, lock)


class JobRunner:
    """Runs the jobs this instance claimed, each in a thread of its own."""

    def __init__(self, project: Project, journal: Journal, options: Callable[[str], Options], clock: Clock) -> None:
        self.project, self.journal, self.options, self.clock = project, journal, options, clock
        self._threads: list[threading.Thread] = []

    def start(self, job: Job) -> None:
        thread = threading.Thread(target=self._run, args=(job,), name=f"job {job.key}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds in all) for the jobs under way: for tests and shutdown."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, job: Job) -> None:
        self.journal.update_job(job.key, "running", time.time())
        try:
            message = self._dispatch(job)
        except RolloutError as exc:  # refused, locked, or the state went away: the person reads why
            self.journal.update_job(job.key, "failed", time.time(), mask(str(exc)))
        except Exception as exc:  # never let a job's thread die silently
            trace = mask("".join(traceback.format_exception(exc)))  # a decrypted secret is never logged
            log.error("job %s (%s) failed\n%s", job.key, job.kind, trace)
            message = mask(f"internal error: {type(exc).__name__}: {exc}")
            self.journal.update_job(job.key, "failed", time.time(), message)
        else:
            self.journal.update_job(job.key, "done", time.time(), message)

    def _dispatch(self, job: Job) -> str:
        p, options = job.params, self.options(job.user)
        if job.kind in ("rollback", "restore"):
            result = self._on_plant(job, options)
            return f"{result.plant}: {result.outcome.replace('_', ' ')}" + (
                f" ({result.reason})" if result.reason else ""
            )
        if job.kind == "verify":
            return self._verify(job, options)
        rid = str(p["rollout"])
        self.journal.update_job(job.key, "running", time.time(), rollout=rid)
        if job.kind == "abort":
            return f"rollout {rid}: {abort(self.project, rid, job.user, job.reason, journal=self.journal)}"
        if job.kind == "approve":
            wave = approve(self.project, rid, job.user, reason=job.reason, journal=self.journal)
            self.journal.update_job(job.key, "running", time.time(), f"wave {wave} approved; resuming", rid)
        run = resume_rollout(self.project, rid, options, lambda _: None, self.clock, journal=self.journal)
        return f"rollout {rid}: {run.state}"

    def _on_plant(self, job: Job, options: Options) -> PlantResult:
        """A rollback or a restore, journaled under the plant's lock like the CLI's."""
        p, sink = job.params, self._noting(job)
        plant, reason = str(p["plant"]), job.reason
        if job.kind == "restore":
            host, current = p.get("host"), bool(p.get("current_overlays"))
            return restore.locked_restore(
                self.project, plant, host, current, options, sink, self.clock, reason, self.journal
            )
        to, layer = p.get("to"), p.get("layer")
        return locked_rollback(self.project, plant, to, layer, options, sink, self.clock, reason, self.journal)

    def _verify(self, job: Job, options: Options) -> str:
        """``status --verify`` of the plant: recorded as a verify record, which the plant page shows."""
        plant = str(job.params["plant"])

        def noted(rid: str) -> None:
            self.journal.update_job(job.key, "running", time.time(), rollout=rid)

        rows = verify_plants(self.project, [plant], options, self.clock, self.journal, noted)
        return drift_summary(plant, rows)

    def _noting(self, job: Job) -> Callable[[Event], None]:
        """A sink that records, once, which rollback the job started: its page follows those events."""
        seen: list[str] = []

        def sink(event: Event) -> None:
            if event.rollout and not seen:
                seen.append(event.rollout)
                self.journal.update_job(job.key, "running", time.time(), rollout=event.rollout)

        return sink
