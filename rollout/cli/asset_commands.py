"""``rollout assets``: what every host is and runs, to the patch level, from the state; and
``rollout assets collect``, which asks the hosts now."""

from __future__ import annotations

from pathlib import Path

import click

from rollout.cli.commands import (
    EXIT_FAILED,
    EXIT_OK,
    _common,
    _console,
    _insecure_option,
    _options,
    _plants_option,
    _project,
    cli,
)
from rollout.cli.views import assets as view
from rollout.service import assets


@cli.group("assets", invoke_without_command=True)
@_common
@_plants_option
@click.option("--package", default=None, metavar="NAME", help="Only hosts with this package, with its version.")
@click.option(
    "--older-than", "older", default=None, metavar="VERSION", help="With --package: only hosts whose version is older."
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV: one line per host and package.")
@click.pass_context
def assets_(
    ctx: click.Context,
    directory: Path | None,
    as_json: bool,
    plants: tuple[str, ...],
    package: str | None,
    older: str | None,
    as_csv: bool,
) -> int:
    """What every host is and runs (OS, kernel, architecture, packages and versions, the
    solution's release per layer), as deploys, rollbacks and 'assets collect' last found it.

    Records older than assets.max_age (rollout.yaml, default 24h) are shown as stale.
    """
    if ctx.invoked_subcommand is not None:
        return EXIT_OK
    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    rows = assets.query(_project(directory), list(plants), package, older)
    view.show(_console(), rows, package, as_json, as_csv)
    return EXIT_OK


@assets_.command()
@_common
@_insecure_option
@_plants_option
def collect(directory: Path | None, as_json: bool, insecure: bool, plants: tuple[str, ...]) -> int:
    """Ask every host of the plants (all by default) now, and keep what they say in the state.

    Exits 1 when a host did not answer (the others' records are kept)."""
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    result = assets.collect(project, list(plants), options)
    view.collected(_console(), result, as_json)
    return EXIT_FAILED if result.unreachable else EXIT_OK
