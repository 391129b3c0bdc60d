"""``rollout restore``: a replaced or wiped host (or a rebuilt plant) back to the release the state says it ran."""

from __future__ import annotations

from pathlib import Path

import click

from rollout.cli.commands import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    _clock,
    _common,
    _console,
    _insecure_option,
    _options,
    _project,
    cli,
)
from rollout.cli.rollout_commands import _reason_option, _sink, _told
from rollout.cli.views import progress
from rollout.service.restore import locked_restore

_EXIT = {"updated": EXIT_OK, "preflight_failed": EXIT_FAILED, "attention": EXIT_ATTENTION}
"""A host that did not answer changed nothing (1); a restore that failed half way needs a person (3)."""


@cli.command()
@_common
@_insecure_option
@click.option("--plant", "-p", "plant", required=True, metavar="PLANT", help="The plant to restore.")
@click.option("--host", "host", default=None, metavar="HOST", help="Only this host (default: every host of the plant).")
@click.option(
    "--current-overlays",
    is_flag=True,
    help="Restore with the plant's overlays as they are now, though they changed since the release was deployed.",
)
@_reason_option
def restore(
    directory: Path | None,
    as_json: bool,
    insecure: bool,
    plant: str,
    host: str | None,
    current_overlays: bool,
    reason: str,
) -> int:
    """Bring a replaced or wiped host (or a rebuilt plant) back to the release the state says it ran.

    Rendered again from the recorded commit with the plant's overlays, staged, switched,
    restarted and checked. If the overlays changed since, it stops and says so, unless
    --current-overlays is given (and recorded).
    """
    project = _project(directory)
    console = _console()
    options = _options(project, insecure, _console(stderr=True))
    with _told(project):
        display = _sink(console, as_json)
        result = locked_restore(project, plant, host, current_overlays, options, display, _clock(), reason)
    progress.plant_results(console, [result], as_json)
    return _EXIT.get(result.outcome, EXIT_INTERNAL)
