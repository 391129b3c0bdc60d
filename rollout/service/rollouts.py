"""Staged rollouts: start, resume, approve. Nothing here prints or exits."""

from __future__ import annotations

import time
from dataclasses import replace

from rollout.config.project import Project
from rollout.core.clock import Clock
from rollout.core.events import ROLLOUT, Event, EventSink
from rollout.core.plan import Plan, WavePlan, make_plan
from rollout.core.projection import ENDED, fold
from rollout.engine.executor import Options
from rollout.errors import ConfigError
from rollout.service.history_queries import rollout_state
from rollout.service.orchestrator import Orchestrator, RolloutResult, new_rollout_id, plan_spec
from rollout.service.recorder import LOCK_TTL, run_key
from rollout.service.runners import runner_for
from rollout.service.state import existing_state, open_state
from rollout.service.workorders import known_commits, render_work
from rollout.state.journal import Journal, LockedError, RolloutRecord


def _select(plan: Plan, waves: list[str], plants: list[str], project: Project) -> Plan:
    """The plan cut down to the chosen waves and plants (all when none are chosen)."""
    names = [w.name for w in plan.waves]
    for wanted in waves:
        if wanted not in names:
            raise ConfigError.one("--wave", f"no wave named {wanted!r}", expected="one of: " + ", ".join(names))
    chosen = {project.plant(p).name for p in plants}
    kept: list[WavePlan] = []
    for wave in plan.waves:
        if waves and wave.name not in waves:
            continue
        members = tuple(p for p in wave.plants if not chosen or p.name in chosen)
        if members:
            kept.append(replace(wave, plants=members, parallelism=min(wave.parallelism, len(members))))
    if not kept:
        raise ConfigError.one("--plant", "no plant left to deploy", expected="plants of the chosen waves")
    return replace(plan, waves=tuple(kept))


def start_rollout(
    project: Project,
    ref: str | None,
    waves: list[str],
    plants: list[str],
    options: Options,
    display: EventSink,
    clock: Clock,
    approve_through: str | None = None,
    force_window: bool = False,
    journal: Journal | None = None,
) -> RolloutResult:
    """A staged rollout of ``ref``: rendered and checked first, then run wave by wave."""
    release = project.release(ref)
    full = make_plan(project, release.id, release.commit)
    plan = _select(full, waves, plants, project)
    names = [w.name for w in full.waves]
    if approve_through is not None and approve_through not in names:
        raise ConfigError.one("--approve-through", f"no wave named {approve_through!r}", expected=", ".join(names))
    members = [p.name for w in plan.waves for p in w.plants]
    # Everything is rendered before the state is created: a refused deploy leaves nothing behind.
    peek = journal or existing_state(project)
    works = render_work(project, release, members, known_commits(peek, members) if peek else None)
    journal = peek or open_state(project)
    spec = plan_spec(plan, approve_through, force_window)
    record = RolloutRecord(
        new_rollout_id(clock.now()), "deploy", release.id, release.commit, time.time(), options.operator, spec
    )
    runner = runner_for(project, journal, record.id, options, clock)
    orchestrator = Orchestrator(project, journal, runner, works.__getitem__, display, clock)
    insecure = options.known_hosts is None
    warnings = ["SSH host keys are NOT verified (--insecure-skip-host-key-check)"] if insecure else []
    return orchestrator.start(record, members, warnings)


def resume_rollout(
    project: Project,
    rollout_id: str | None,
    options: Options,
    display: EventSink,
    clock: Clock,
    journal: Journal | None = None,
) -> RolloutResult:
    """Go on with a rollout that was interrupted or paused (default: the latest unfinished one)."""
    journal = journal or open_state(project)
    record = _unfinished(journal, rollout_id)
    if rollout_state(journal.events(rollout=record.id)) == "aborted":
        raise ConfigError.one(
            "ROLLOUT",
            f"rollout {record.id} was aborted and cannot be resumed",
            expected="a paused or interrupted rollout",
        )
    release = project.release(record.commit or record.release, "--release")
    members = [p for w in record.spec["waves"] for p in w["plants"]]
    works = render_work(
        project, replace(release, id=record.release or release.id), members, known_commits(journal, members)
    )
    resumed = replace(record, operator=options.operator)
    runner = runner_for(project, journal, record.id, options, clock)
    orchestrator = Orchestrator(project, journal, runner, works.__getitem__, display, clock)
    return orchestrator.resume(resumed)


def _unfinished(journal: Journal, rollout_id: str | None) -> RolloutRecord:
    if rollout_id is not None:
        record = journal.rollout(rollout_id)
        if record is None:
            raise ConfigError.one(
                "ROLLOUT", f"no rollout {rollout_id!r} in the journal", expected="an id from rollout history"
            )
        return record
    for record in reversed(journal.rollouts()):
        if record.kind == "deploy" and rollout_state(journal.events(rollout=record.id)) in (
            "running",
            "paused",
            "interrupted",
        ):
            return record
    raise ConfigError.one("ROLLOUT", "no unfinished rollout to resume", expected="a paused or interrupted rollout")


def approve(project: Project, rollout_id: str, operator: str, reason: str = "", journal: Journal | None = None) -> str:
    """Let a paused rollout go on to the wave it waits for; returns that wave's name. ``reason``
    is recorded with who approved it, and ``rollout history`` shows both."""
    journal = journal or open_state(project)
    record = _unfinished(journal, rollout_id)
    state = fold(e.event for e in journal.events(rollout=record.id))
    pending = [w.name for w in state.waves.values() if w.approval_waiting and w.approval_granted is None]
    if not pending:
        raise ConfigError.one(
            "ROLLOUT", f"rollout {record.id} is not waiting for an approval", expected="a paused rollout"
        )
    wave = str(pending[-1])
    detail = {"wave": wave, "by": operator, "reason": reason}
    journal.append(record.id, Event("approval.granted", ROLLOUT, detail=detail))
    return wave


def abort(project: Project, rollout_id: str, operator: str, reason: str, journal: Journal | None = None) -> str:
    """Ask a rollout to stop at its next safe point; returns its state after the request.

    A running rollout sees the request between plants, starts no new one, lets those in
    flight end whole and ends ``aborted``. One that nothing runs (paused, or interrupted with
    no plant left half way) ends at once; one a killed run left half way ends when resumed."""
    journal = open_state(project)
    record = journal.rollout(rollout_id)
    if record is None:
        raise ConfigError.one(
            "ROLLOUT", f"no rollout {rollout_id!r} in the state", expected="an id from rollout history"
        )
    state = fold(e.event for e in journal.events(rollout=record.id))
    if state.status in ENDED:
        raise ConfigError.one(
            "ROLLOUT", f"rollout {record.id} has already ended ({state.status})", expected="a running or paused rollout"
        )
    detail = {"by": operator, "reason": reason}
    journal.append(record.id, Event("abort.requested", ROLLOUT, detail=detail))
    # Taking the rollout's own lease tells, atomically, that no live process runs it (a killed
    # run's lease is taken over); then it ends here unless a killed run left a plant half way.
    try:
        journal.acquire(run_key(record.id), record.id, f"aborting it for {operator}", LOCK_TTL, operator)
    except LockedError:
        return "aborting"
    try:
        state = fold(e.event for e in journal.events(rollout=record.id))
        if state.status in ENDED or any(p.in_flight for p in state.plants.values()):
            return "aborting" if state.status not in ENDED else str(state.status)
        journal.append(record.id, Event("rollout.aborted", ROLLOUT, detail=detail))
        return "aborted"
    finally:
        journal.release(run_key(record.id), record.id)
