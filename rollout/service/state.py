"""Where the state lives for a project, and opening it. Nothing here prints or exits.

Every verb opens the state through ``open_state``: ``state.url`` of ``rollout.yaml``
(default ``sqlite:///.rollout/state.db``), or ``ROLLOUT_STATE`` when it is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rollout.config.project import PROJECT_FILE, Project
from rollout.core.clock import Clock
from rollout.errors import ConfigError, Problem
from rollout.state.journal import Journal
from rollout.state.sqlite import SqliteJournal, sync_open
from rollout.state.url import SQLITE_FORMS, StateUrl, StateUrlError, parse_state_url
from rollout.state.url import open_url as _open_url

STATE_ENV = "ROLLOUT_STATE"
JOURNAL_FILE = ".rollout/state.db"
"""The default state file, relative to the project (``sqlite:///.rollout/state.db``)."""
REHEARSAL_DIR = ".rollout/rehearsal"


def state_url(project: Project, environ: Mapping[str, str] | None = None) -> StateUrl:
    """The project's state URL: ``ROLLOUT_STATE`` if set, else ``state.url`` of ``rollout.yaml``.

    A URL this build cannot use is a ConfigError naming where it came from (the variable,
    or the file and line), what was found (password masked) and what is expected.
    """
    env = os.environ if environ is None else environ
    if STATE_ENV in env:
        return _parsed(project, env[STATE_ENV], Problem("(environment)", STATE_ENV))
    place = ("state", "url")
    source = Problem(PROJECT_FILE, "state.url", project.doc.line_of(place) if _written(project) else None)
    return _parsed(project, project.config.state.url, source)


def _written(project: Project) -> bool:
    data = project.doc.data
    return isinstance(data, dict) and isinstance(data.get("state"), dict) and "url" in data["state"]


def _parsed(project: Project, url: str, source: Problem) -> StateUrl:
    try:
        parsed = parse_state_url(url, project.root)
    except StateUrlError as exc:
        raise ConfigError(
            [Problem(source.file, source.location, source.line, exc.expected, exc.found, exc.message)]
        ) from None
    if parsed.backend == "sqlite" and parsed.path.is_dir():
        raise ConfigError(
            [Problem(source.file, source.location, source.line, SQLITE_FORMS, repr(parsed.shown), "names a folder")]
        )
    return parsed


def open_state(project: Project, clock: Clock | None = None, environ: Mapping[str, str] | None = None) -> Journal:
    """The project's state, opened through the one factory every verb uses.

    An SQLite state that does not exist yet is created, also by the verbs that only read
    (``status``, ``history``): it is where the next deploy will write, and an empty state
    is the truth about a project that never deployed; an older schema is upgraded in place.
    A PostgreSQL state is shared, so only ``rollout state migrate`` creates or upgrades its
    schema; a missing or older one is refused here, saying so. A newer schema is refused
    on either (``SchemaError``, a ``JournalError``).
    """
    return _open_url(state_url(project, environ), clock)


def existing_state(project: Project, clock: Clock | None = None) -> Journal | None:
    """The project's state if it exists already, else None (nothing is created): a deploy that
    is then refused as bad input must leave no state behind."""
    url = state_url(project)
    return _open_url(url, clock) if url.exists() else None


def rehearsal_journal(project: Project) -> SqliteJournal:
    """The rehearsal's own SQLite state, apart from the project's: a rehearsal never writes the real one."""
    return SqliteJournal(project.root / REHEARSAL_DIR / "state.db")


def settle_states() -> list[str]:
    """Everything this process wrote to an embedded state on the disk, before it ends without
    closing them (a PostgreSQL state's commits are the server's); why a state could not be."""
    return sync_open()
