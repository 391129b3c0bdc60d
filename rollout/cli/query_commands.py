"""The verbs that only read: validate, plan, render, diff, history and status. None changes a host."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rollout import service
from rollout.cli.commands import (
    EXIT_ATTENTION,
    EXIT_FAILED,
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
from rollout.cli.views import preview, records
from rollout.config.models.common import parse_duration
from rollout.config.project import Project
from rollout.core.clock import SystemClock

if TYPE_CHECKING:
    from rich.console import Console


@cli.command()
@_common
@vault_option
@_release_option
def validate(directory: Path | None, as_json: bool, release: str | None) -> int:
    """Check the project, inventories, overlays, playbooks and templates; touches no host.

    Every plant is rendered in memory at the release, so an undefined value or a
    forbidden overlay is found here, not during a deploy.
    """
    result = service.validate(_project(directory), release)
    preview.validation(_console(), result, as_json)
    return EXIT_OK


@cli.command()
@_common
@_release_option
def plan(directory: Path | None, as_json: bool, release: str | None) -> int:
    """The waves, plants and order that a deploy would take."""
    preview.plan(_console(), service.plan(_project(directory, overlays=False), release), as_json)
    return EXIT_OK


@cli.command()
@_common
@vault_option
@_release_option
@_plants_option
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the bundles (default: .rollout/bundles in the project).",
)
@click.option("--explain", is_flag=True, help="Show every value of --plant and which layer set it; write nothing.")
def render(
    directory: Path | None, as_json: bool, release: str | None, plants: tuple[str, ...], out: Path | None, explain: bool
) -> int:
    """Render bundles: one folder per plant and layer, with a manifest of file hashes."""
    project = _project(directory)
    if explain:
        if len(plants) != 1:
            raise click.UsageError("--explain needs exactly one --plant")
        preview.explained(_console(), plants[0], service.explain(project, release, plants[0]), as_json)
        return EXIT_OK
    target = out if out is not None else project.root / ".rollout" / "bundles"
    results = service.render(project, release, list(plants), target)
    preview.rendered(_console(), results, str(target), as_json)
    return EXIT_OK


@cli.command()
@_common
@vault_option
@_release_option
@click.option("--plant", "-p", "plant", required=True, metavar="PLANT", help="The plant to compare.")
@click.option("--against", "-a", default=None, metavar="REF", help="The release to compare with.")
def diff(directory: Path | None, as_json: bool, release: str | None, plant: str, against: str | None) -> int:
    """What would change on a plant: a unified diff of its rendered files."""
    result = service.diff(_project(directory), plant, release, against)
    preview.diffed(_console(), _console(stderr=True), result, as_json)
    return EXIT_OK


@cli.command()
@_common
@_plants_option
def history(directory: Path | None, as_json: bool, plants: tuple[str, ...]) -> int:
    """Past rollouts and rollbacks: who, when, what, and how each plant came out."""
    project = _project(directory, overlays=False)
    plant = plants[0] if plants else None
    records.history(_console(), service.history(project, plant), as_json)
    return EXIT_OK


class _Duration(click.ParamType[float]):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(f"{value!r} is not {exc}", param, ctx)


@cli.command()
@_common
@_insecure_option
@_plants_option
@click.option("--live", is_flag=True, help="Ask every host what it runs (all plants at once, a few at a time).")
@click.option("--watch", is_flag=True, help="Then follow the state: a line per new event of rollouts under way.")
@click.option(
    "--watch-for", type=_Duration(), default=None, metavar="DURATION", help="With --watch: stop after this (30s, 5m)."
)
@click.option("--until-idle", is_flag=True, help="With --watch: stop once no rollout or rollback runs.")
@click.option("--verify", is_flag=True, help="Hash every host's current release against its manifest (drift: exit 1).")
def status(
    directory: Path | None,
    as_json: bool,
    insecure: bool,
    plants: tuple[str, ...],
    live: bool,
    watch: bool,
    watch_for: float | None,
    until_idle: bool,
    verify: bool,
) -> int:
    """What runs on every host of every layer, as the state records it, with when it was recorded.

    No host is asked: the answer is the state's account of deploys, rollbacks and restores, and
    each row says when it was last recorded or confirmed. With --live every host is asked
    instead (today's truth, as slow as the slowest host, and unreachable hosts show as such).

    With --watch it then shows rollouts progressing as they happen, until Ctrl-C (exit 0),
    --watch-for or --until-idle: one line per new event, or with --json the objects that
    deploy --json writes (with their rollout and seq).

    With --verify every file of each host's current release is hashed and compared with its
    manifest: files modified, missing and added, per host, recorded in the state for the
    console. Exit 1 when anything drifted, 3 when a host could not be checked.
    """
    if verify and watch:
        raise click.UsageError("--verify and --watch do not go together")
    if verify:
        return _verify(directory, as_json, insecure, plants)
    if (watch_for is not None or until_idle) and not watch:
        raise click.UsageError("--watch-for and --until-idle go with --watch")
    if insecure and not live:
        raise click.UsageError("--insecure-skip-host-key-check goes with --live or --verify (only they ask hosts)")
    project = _project(directory, overlays=live)  # the state's account renders nothing
    # Where the journal stands before the status is read: an event appended meanwhile is shown.
    start = service.position(project) if watch else 0
    console = _console()
    _show_status(console, project, list(plants), live, insecure, as_json)
    records.under_way(console, service.under_way(project), service.plant_locks(project), as_json)
    if watch:
        _watch(console, project, start, watch_for, until_idle, as_json)
    return EXIT_OK


def _show_status(
    console: Console, project: Project, plants: list[str], live: bool, insecure: bool, as_json: bool
) -> None:
    # Ages against the machine's clock, not ROLLOUT_NOW's: the state stamps its events with it.
    now = SystemClock().time()
    if live:
        chosen = plants or list(project.plants)
        direct = [p for p in chosen if project.plant(p).config.execution != "agent"]
        agents = [p for p in chosen if p not in direct]
        options = _options(project, insecure, _console(stderr=True))
        if direct:
            records.status(console, service.status(project, direct, options), now, as_json)
        if agents:  # the centre does not reach their hosts: what their agents last reported
            if not as_json:
                console.print(f"agent plants, as their agents last reported (not asked live): {', '.join(agents)}")
            records.recorded(console, service.recorded(project, agents), now, as_json)
    else:
        records.recorded(console, service.recorded(project, plants), now, as_json)


def _verify(directory: Path | None, as_json: bool, insecure: bool, plants: tuple[str, ...]) -> int:
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    from rollout.cli.views import drifted

    rows = service.verify_plants(project, list(plants), options, _clock())
    drifted.verified(_console(), rows, as_json)
    if any(r.drifted for r in rows):
        return EXIT_FAILED
    return EXIT_ATTENTION if any(r.verified is None for r in rows) else EXIT_OK


def _watch(
    console: Console, project: Project, start: int, duration: float | None, until_idle: bool, as_json: bool
) -> None:
    from rollout.cli.views import watching  # the live view's rendering: only when watching

    try:
        for item in service.follow(project, start, duration, until_idle):
            watching.update(console, item, as_json)
    except KeyboardInterrupt:  # Ctrl-C is how a person stops watching: a clean end, not an abort
        pass
