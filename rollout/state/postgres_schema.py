"""The PostgreSQL state's schema, version by version, created or upgraded only on request.

Everything lives in the database schema ``rollout`` (the team's database may hold other
things). Unlike the SQLite file, which one machine upgrades as it opens it, a shared
database is upgraded by ``rollout state migrate`` alone: several rollout versions may meet
it at once, and an older one must not find tables changed under it. Every other verb
refuses a missing or older schema (``SchemaError``) and says to migrate. Version 1 holds
rollouts, events and leases; version 2 adds what the console keeps (users, sessions, jobs,
the notifications' outbox); version 3 each host's asset record; version 4 what agent plants need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import Connection

from rollout.state.agent_sql import agent_tables

NAMESPACE = "rollout"
_MIGRATE_KEY = 0x726F6C6C6F7574  # "rollout": the advisory lock that makes concurrent migrations one after another

_V1 = (
    "CREATE SCHEMA IF NOT EXISTS rollout",
    # Payloads stay JSON text, not jsonb: jsonb refuses NUL characters and NaN, which a check's
    # output can hold, and a refused event would stop a rollout.
    """CREATE TABLE rollout.rollouts (
        id text PRIMARY KEY,
        kind text NOT NULL,
        release text,
        commit_id text,
        created double precision NOT NULL,
        operator text NOT NULL,
        spec text NOT NULL
    )""",
    """CREATE TABLE rollout.events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        rollout text NOT NULL REFERENCES rollout.rollouts(id),
        time double precision NOT NULL,
        kind text NOT NULL,
        plant text NOT NULL,
        layer text,
        host text,
        release text,
        detail text NOT NULL
    )""",
    "CREATE INDEX events_by_rollout ON rollout.events (rollout, seq)",
    "CREATE INDEX events_by_plant ON rollout.events (plant, seq)",
    """CREATE TABLE rollout.locks (
        plant text PRIMARY KEY,
        owner text NOT NULL,
        purpose text NOT NULL,
        acquired double precision NOT NULL,
        expires double precision NOT NULL,
        hostname text NOT NULL,
        pid integer NOT NULL,
        operator text NOT NULL,
        fence bigint NOT NULL
    )""",
    # Each plant's last fencing number, kept when its lease is released: it only ever grows.
    "CREATE TABLE rollout.fences (plant text PRIMARY KEY, fence bigint NOT NULL)",
    "CREATE TABLE rollout.schema_version (version integer NOT NULL)",
)


def _to_1(db: Connection[Any]) -> None:
    """An empty database: the tables of the first PostgreSQL state."""
    for statement in _V1:
        db.execute(statement)


_V2 = (
    # As in version 1, payloads (plants, params, body) are JSON text.
    """CREATE TABLE rollout.users (
        name text PRIMARY KEY,
        role text NOT NULL,
        plants text NOT NULL,
        token_hash text NOT NULL,
        created double precision NOT NULL,
        created_by text NOT NULL,
        revoked double precision
    )""",
    # Every request looks its token up; an active token belongs to one user only.
    "CREATE UNIQUE INDEX users_by_token ON rollout.users (token_hash) WHERE revoked IS NULL",
    """CREATE TABLE rollout.sessions (
        token_hash text PRIMARY KEY,
        user_name text NOT NULL REFERENCES rollout.users(name),
        created double precision NOT NULL,
        expires double precision NOT NULL
    )""",
    "CREATE INDEX sessions_by_user ON rollout.sessions (user_name)",  # a revoke ends them all
    """CREATE TABLE rollout.jobs (
        key text PRIMARY KEY,
        kind text NOT NULL,
        params text NOT NULL,
        user_name text NOT NULL,
        reason text NOT NULL,
        created double precision NOT NULL,
        state text NOT NULL,
        rollout text,
        message text NOT NULL,
        updated double precision NOT NULL,
        runner text NOT NULL
    )""",
    "CREATE INDEX jobs_by_created ON rollout.jobs (created, key)",
    """CREATE TABLE rollout.deliveries (
        id text PRIMARY KEY,
        hook text NOT NULL,
        seq bigint NOT NULL,
        rollout text NOT NULL,
        kind text NOT NULL,
        body text NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL,
        next_attempt double precision NOT NULL,
        last_error text NOT NULL,
        updated double precision NOT NULL,
        claimed_by text NOT NULL,
        claimed_until double precision NOT NULL
    )""",
    "CREATE INDEX deliveries_by_seq ON rollout.deliveries (seq, hook)",
    # The queue is the pending ones, few beside the delivered and failed that stay for the record.
    "CREATE INDEX deliveries_pending ON rollout.deliveries (seq, hook) WHERE state = 'pending'",
)


def _to_2(db: Connection[Any]) -> None:
    """What the console keeps: users, sessions, jobs and the notifications' outbox."""
    for statement in _V2:
        db.execute(statement)


def _to_3(db: Connection[Any]) -> None:
    """Each host's latest asset record (what it is and runs), as JSON text."""
    db.execute(
        "CREATE TABLE rollout.assets (plant text NOT NULL, host text NOT NULL, collected double precision NOT NULL, "
        "record text NOT NULL, PRIMARY KEY (plant, host))"
    )


def _to_4(db: Connection[Any]) -> None:
    """What agent plants need: work orders, the agents' events and heartbeats, blobs by hash."""
    for statement in agent_tables("rollout.", "bytea", "double precision"):
        db.execute(statement)


MIGRATIONS: tuple[Callable[[Connection[Any]], None], ...] = (_to_1, _to_2, _to_3, _to_4)
"""``MIGRATIONS[n]`` takes a state at version ``n`` to ``n + 1``."""
LATEST = len(MIGRATIONS)


def stored_version(db: Connection[Any]) -> int:
    """The version of the state: 0 for a database without rollout's schema."""
    row = db.execute("SELECT to_regclass('rollout.schema_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = db.execute("SELECT max(version) FROM rollout.schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def upgrade(db: Connection[Any]) -> tuple[int, int]:
    """Take the state to ``LATEST`` in one transaction and return (version before, after).

    Concurrent calls wait for each other (an advisory lock) and the later ones find nothing
    to do. A state newer than ``LATEST`` is left as it is: (its version, its version)."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_KEY,))
        before = stored_version(db)
        if before >= LATEST:
            return before, before
        for migrate in MIGRATIONS[before:]:
            migrate(db)
        db.execute("DELETE FROM rollout.schema_version")
        db.execute("INSERT INTO rollout.schema_version (version) VALUES (%s)", (LATEST,))
    return before, LATEST
