"""``rollout state migrate`` and ``rollout state import FILE``: the state's own verbs."""

from __future__ import annotations

from pathlib import Path

import click

from rollout import service
from rollout.cli.commands import EXIT_OK, _common, _console, _project, cli
from rollout.cli.views import output
from rollout.service import state_admin


@cli.group()
def state() -> None:
    """The state itself: create or upgrade its schema, copy an SQLite journal into it."""


@state.command("migrate")
@_common
def migrate(directory: Path | None, as_json: bool) -> int:
    """Create or upgrade the schema of the configured state (needed once per PostgreSQL release).

    Safe to run again, and from several machines at once: a state at the current schema is
    left as it is. A state of a newer rollout is refused and not touched.
    """
    url = service.state_url(_project(directory))
    done = state_admin.migrate(url)
    if as_json:
        output.emit_json(_console(), [{"type": "migration", "state": url.shown, **done._asdict()}])
    elif done.before == done.after:
        _console().print(f"the state at {url.shown} is at schema {done.after} already", highlight=False)
    else:
        _console().print(f"the state at {url.shown}: schema {done.before} -> {done.after}", highlight=False)
    return EXIT_OK


@state.command("import")
@_common
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def import_(directory: Path | None, as_json: bool, file: Path) -> int:
    """Copy the rollouts and events of the SQLite journal FILE into the configured state.

    Rollouts already there are skipped, so running it again adds nothing; FILE is not changed.
    """
    project = _project(directory)
    url = service.state_url(project)
    imported = state_admin.import_sqlite(file, service.open_state(project))
    if as_json:
        output.emit_json(_console(), [{"type": "import", "state": url.shown, "file": str(file), "imported": imported}])
    else:
        _console().print(f"{len(imported)} rollouts copied from {file} into {url.shown}", highlight=False)
    return EXIT_OK
