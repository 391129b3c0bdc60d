"""The verbs that change plants or a rollout: deploy, resume, approve, abort and rollback, with
how a rollout is shown while it runs and the exit code its result gives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rollout import service
from rollout.cli.commands import (
    EXIT_ATTENTION,
    EXIT_BLOCKED,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    _clock,
    _common,
    _console,
    _insecure_option,
    _options,
    _plants_option,
    _project,
    _release_option,
    cli,
    vault_option,
)
from rollout.cli.views import output, progress
from rollout.config.project import Project
from rollout.core.events import EventSink
from rollout.engine.executor import default_operator
from rollout.service.junit import junit_report
from rollout.service.notify import notifying
from rollout.service.orchestrator import RolloutResult

if TYPE_CHECKING:
    from rich.console import Console


def _sink(console: Console, as_json: bool) -> EventSink:
    if as_json:
        return lambda event: output.emit_json(console, [event.as_dict()])
    return lambda event: progress.event_line(console, event)


_reason_option = click.option(
    "--reason", default="", metavar="TEXT", help="Why (recorded with who asked, shown by rollout history)."
)
_yes_option = click.option("--yes", "-y", is_flag=True, help="Non-interactive: plain lines, no live view.")
_junit_option = click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)


def _rollout_exit(result: RolloutResult) -> int:
    if result.attention:
        return EXIT_ATTENTION
    if result.state in ("paused", "blocked", "aborted"):
        return EXIT_BLOCKED
    if result.failed or result.state == "halted":
        return EXIT_FAILED
    if "skipped" in result.plants.values():  # a plant's window stayed closed: the rollout is not complete
        return EXIT_BLOCKED
    return EXIT_OK


def _finish(project: Project, result: RolloutResult, as_json: bool, junit: Path | None, rehearsal: bool = False) -> int:
    console = _console()
    if junit is not None:
        junit_report(project, result.id, junit, rehearsal)
    progress.rollout_result(console, result, as_json)
    if result.message and not as_json:
        _console(stderr=True).print(result.message, highlight=False)
    return _rollout_exit(result)


@cli.command()
@_common
@vault_option
@_release_option
@_insecure_option
@_plants_option
@click.option("--wave", "waves", multiple=True, metavar="WAVE", help="Only this wave (repeatable).")
@click.option("--yes", "-y", is_flag=True, help="Non-interactive: no live view, plain lines (for pipelines).")
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)
@click.option("--approve-through", default=None, metavar="WAVE", help="Waves up to this one count as approved.")
@click.option("--force-window", is_flag=True, help="Deploy outside maintenance windows (recorded in the journal).")
@click.option("--rehearse", is_flag=True, help="Run it all on simulated copies of every plant; touch no real host.")
def deploy(
    directory: Path | None,
    as_json: bool,
    release: str | None,
    insecure: bool,
    plants: tuple[str, ...],
    waves: tuple[str, ...],
    yes: bool,
    junit: Path | None,
    approve_through: str | None,
    force_window: bool,
    rehearse: bool,
) -> int:
    """A staged rollout: waves in order, plants in parallel inside a wave, checks after every layer.

    A plant whose check fails is rolled back automatically to the release it had; a wave
    that fails more plants than its threshold halts the rollout or rolls it all back, as
    the strategy says. Every step is journaled first, so 'rollout resume' can go on.
    """
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    if rehearse:  # simulated plants: nobody is told
        with _display(project, as_json, yes) as display:
            result = service.rehearse(project, release, list(waves), list(plants), options, display, _clock())
        return _finish(project, result, as_json, junit, rehearse)
    with _told(project), _display(project, as_json, yes) as display:
        result = service.start_rollout(
            project, release, list(waves), list(plants), options, display, _clock(), approve_through, force_window
        )
    return _finish(project, result, as_json, junit)


@cli.command()
@_common
@vault_option
@_insecure_option
@click.argument("rollout_id", required=False, metavar="[ROLLOUT]")
@click.option("--yes", "-y", is_flag=True, help="Non-interactive: no live view, plain lines (for pipelines).")
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)
def resume(
    directory: Path | None, as_json: bool, insecure: bool, rollout_id: str | None, yes: bool, junit: Path | None
) -> int:
    """Go on with a rollout that was interrupted or paused (default: the latest one)."""
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    with _told(project), _display(project, as_json, yes) as display:
        result = service.resume_rollout(project, rollout_id, options, display, _clock())
    return _finish(project, result, as_json, junit)


@cli.command()
@_common
@click.argument("rollout_id", metavar="ROLLOUT")
@_reason_option
def approve(directory: Path | None, as_json: bool, rollout_id: str, reason: str) -> int:
    """Let a paused rollout go on to its next wave (then: rollout resume ROLLOUT)."""
    project = _project(directory)
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    wave = service.approve(project, rollout_id, operator, reason)
    if as_json:
        record = {"type": "approval", "rollout": rollout_id, "wave": wave, "by": operator, "reason": reason}
        output.emit_json(_console(), [record])
    else:
        _console().print(
            f"wave {wave} of rollout {rollout_id} approved by {operator}; now: rollout resume {rollout_id}",
            highlight=False,
        )
    return EXIT_OK


@cli.command()
@_common
@click.argument("rollout_id", metavar="ROLLOUT")
@_reason_option
def abort(directory: Path | None, as_json: bool, rollout_id: str, reason: str) -> int:
    """Stop a rollout at its next safe point: no new plant starts, plants in flight end whole."""
    project = _project(directory)
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    with _told(project):  # a paused rollout ends here: its abort is told from here
        state = service.abort(project, rollout_id, operator, reason)
    if as_json:
        output.emit_json(_console(), [{"type": "abort", "rollout": rollout_id, "state": state, "by": operator}])
    elif state == "aborted":
        _console().print(f"rollout {rollout_id} aborted by {operator}", highlight=False)
    else:
        _console().print(
            f"abort of rollout {rollout_id} requested by {operator}: it stops at its next safe point", highlight=False
        )
    return EXIT_OK


@cli.command()
@_common
@vault_option
@_insecure_option
@click.option("--plant", "-p", "plant", required=True, metavar="PLANT", help="The plant to roll back.")
@click.option(
    "--to", "to", default=None, metavar="REF", help="The release to go to (default: what each host ran before)."
)
@click.option("--layer", "layer", default=None, metavar="LAYER", help="Only this layer and the layers above it.")
@_reason_option
def rollback(
    directory: Path | None, as_json: bool, insecure: bool, plant: str, to: str | None, layer: str | None, reason: str
) -> int:
    """Roll a plant (or one layer and those above it) back now, with the same checks."""
    project = _project(directory)
    console = _console()
    options = _options(project, insecure, _console(stderr=True))
    with _told(project):
        result = service.locked_rollback(project, plant, to, layer, options, _sink(console, as_json), _clock(), reason)
    progress.plant_results(console, [result], as_json)
    return _ROLLBACK_EXIT.get(result.outcome, EXIT_INTERNAL)


_ROLLBACK_EXIT = {"rolled_back": EXIT_OK, "preflight_failed": EXIT_FAILED, "attention": EXIT_ATTENTION}
"""A host that did not answer changed nothing (1); a rollback that failed half way needs a person (3)."""


@contextmanager
def _told(project: Project) -> Iterator[None]:
    """The project's webhooks told of what happens while the verb runs (its end waits at most
    the notifier's grace for them); what went wrong with that is said, never fatal."""
    problems: list[str] = []
    try:
        with notifying(project) as problems:
            yield
    finally:  # said also when the verb failed: after notifying ended, when the list is complete
        for problem in problems:
            _console(stderr=True).print(f"notifications: {problem}", highlight=False, soft_wrap=True)


@contextmanager
def _display(project: Project, as_json: bool, yes: bool) -> Iterator[EventSink]:
    """Events as JSON lines, as plain lines, or as a live table on a terminal."""
    console = _console()
    if as_json or yes or not console.is_terminal:
        yield _sink(console, as_json)
        return
    with progress.LiveView(console, project) as live:
        yield live.update
