"""The state's administration: its schema created or upgraded, an SQLite journal copied in.

``migrate`` is the only way a PostgreSQL state gets or changes its schema (every other verb
refuses one that is missing or old); on SQLite it does what opening the file does anyway.
Nothing here prints or exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from rollout.errors import ConfigError
from rollout.state.journal import Journal, JournalError, SchemaError
from rollout.state.sqlite import read_history
from rollout.state.url import StateUrl, migrate_url


class Migration(NamedTuple):
    """The schema version of a state before and after ``migrate`` (equal: nothing to do)."""

    before: int
    after: int


def migrate(url: StateUrl) -> Migration:
    """Create or upgrade the schema of the state at ``url``; a newer one is refused (``SchemaError``)."""
    before, after = migrate_url(url)
    return Migration(before, after)


def import_sqlite(file: Path, journal: Journal) -> list[str]:
    """Copy the rollouts and events of the SQLite journal ``file`` into ``journal`` and return
    the ids of the rollouts copied, in order of creation.

    Idempotent: a rollout already in ``journal`` is skipped whole, so importing twice adds
    nothing. Events keep their order, times and payloads and get new seqs after those in
    ``journal``. Leases are not copied: they belong to the runs of the old store. ``file`` is
    read from a copy and never changed; one that is not there or not a journal is bad input."""
    try:
        records, events = read_history(file)
    except SchemaError:
        raise
    except JournalError as exc:
        raise ConfigError.one(str(file), str(exc), expected="an SQLite journal of rollout") from None
    return journal.adopt(records, events)
