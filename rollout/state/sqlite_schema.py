"""The SQLite state's schema, version by version, and the upgrade of an older state in place.

A state records its version in ``schema_version``. States made before that table existed
are version 1 (some with, some without the ``operator`` column of ``locks``, which a
later release added on the fly); version 3 gave leases their fencing numbers; version 4
added what the console keeps (users, sessions, jobs, the notifications' outbox); version 5
each host's asset record; version 6 what agent plants need. Each
migration takes a state from one version to the next inside the caller's transaction, so
a state is at one version or the next, never half-way, and two processes opening an old
state at once upgrade it once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from rollout.state.agent_sql import agent_tables

_V1 = (
    """CREATE TABLE IF NOT EXISTS rollouts (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        release TEXT,
        commit_id TEXT,
        created REAL NOT NULL,
        operator TEXT NOT NULL,
        spec TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        rollout TEXT NOT NULL REFERENCES rollouts(id),
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        plant TEXT NOT NULL,
        layer TEXT,
        host TEXT,
        release TEXT,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_rollout ON events(rollout, seq)",
    "CREATE INDEX IF NOT EXISTS events_by_plant ON events(plant, seq)",
    """CREATE TABLE IF NOT EXISTS locks (
        plant TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        purpose TEXT NOT NULL,
        acquired REAL NOT NULL,
        expires REAL NOT NULL,
        hostname TEXT NOT NULL,
        pid INTEGER NOT NULL
    )""",
)


def _to_1(db: sqlite3.Connection) -> None:
    """An empty file: the tables of the first journal."""
    for statement in _V1:
        db.execute(statement)


def _to_2(db: sqlite3.Connection) -> None:
    """Locks name their operator (empty for locks taken before); the version is recorded."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(locks)")}
    if "operator" not in columns:  # version-1 journals of a later release already have it
        db.execute("ALTER TABLE locks ADD COLUMN operator TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")


def _to_3(db: sqlite3.Connection) -> None:
    """Leases carry a fencing number (0 for leases taken before); ``fences`` keeps each plant's
    last one, so the number keeps growing when a lease is released and taken again."""
    db.execute("ALTER TABLE locks ADD COLUMN fence INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE IF NOT EXISTS fences (plant TEXT PRIMARY KEY, fence INTEGER NOT NULL)")


_V4 = (
    # plants, params and body are JSON text, as events' details are.
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        plants TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created REAL NOT NULL,
        created_by TEXT NOT NULL,
        revoked REAL
    )""",
    # Every request looks its token up; an active token belongs to one user only.
    "CREATE UNIQUE INDEX IF NOT EXISTS users_by_token ON users(token_hash) WHERE revoked IS NULL",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name),
        created REAL NOT NULL,
        expires REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_name)",  # a revoke ends them all
    """CREATE TABLE IF NOT EXISTS jobs (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        params TEXT NOT NULL,
        user_name TEXT NOT NULL,
        reason TEXT NOT NULL,
        created REAL NOT NULL,
        state TEXT NOT NULL,
        rollout TEXT,
        message TEXT NOT NULL,
        updated REAL NOT NULL,
        runner TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs(created, key)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT PRIMARY KEY,
        hook TEXT NOT NULL,
        seq INTEGER NOT NULL,
        rollout TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt REAL NOT NULL,
        last_error TEXT NOT NULL,
        updated REAL NOT NULL,
        claimed_by TEXT NOT NULL,
        claimed_until REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_by_seq ON deliveries(seq, hook)",
    # The queue is the pending ones, few beside the delivered and failed that stay for the record.
    "CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(seq, hook) WHERE state = 'pending'",
)


def _to_4(db: sqlite3.Connection) -> None:
    """What the console keeps: users, sessions, jobs and the notifications' outbox."""
    for statement in _V4:
        db.execute(statement)


def _to_5(db: sqlite3.Connection) -> None:
    """Each host's latest asset record (what it is and runs), as JSON text."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS assets (plant TEXT NOT NULL, host TEXT NOT NULL, collected REAL NOT NULL, "
        "record TEXT NOT NULL, PRIMARY KEY (plant, host))"
    )


def _to_6(db: sqlite3.Connection) -> None:
    """What agent plants need: work orders, the agents' events and heartbeats, blobs by hash."""
    for statement in agent_tables("", "BLOB", "REAL"):
        db.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_to_1, _to_2, _to_3, _to_4, _to_5, _to_6)
"""``MIGRATIONS[n]`` takes a state at version ``n`` to ``n + 1``."""
LATEST = len(MIGRATIONS)


def stored_version(db: sqlite3.Connection) -> int:
    """The version of the state: 0 for an empty file, 1 for a journal from before versions."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" in tables:
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 1
    return 1 if "rollouts" in tables else 0


def upgrade(db: sqlite3.Connection, version: int) -> None:
    """Take the state from ``version`` to ``LATEST``; the caller holds the write transaction."""
    for migrate in MIGRATIONS[version:]:
        migrate(db)
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST,))
