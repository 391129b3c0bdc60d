"""The shared state: PostgreSQL through psycopg 3 and a connection pool, for teams.

Every write is one transaction. An event commits synchronously (on the server's disk when
the call returns) when it is of a kind rollout syncs after (``DURABLE``: the before-state,
switches, outcomes); any other event commits asynchronously: committed and seen by every
reader at once, but put on disk by the server's WAL writer within a fraction of a second, or
by the next synchronous commit, whichever comes first. A crash of the database server
(not of rollout) can lose those last few, as a power cut can the embedded journal's
unsynced events; a flush per event would cost every event a disk write (see
docs/benchmarks.md). Lease times are the database's clock (``clock_timestamp()``)
unless a clock is injected (tests), so machines whose clocks disagree still agree on who
holds a plant. Errors of the driver never leave this module: they become ``JournalError``
(``SchemaError`` for a schema to migrate or a newer one), with the URL's password masked.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple
from typing import Any

import psycopg
from psycopg import Connection

from rollout.core.clock import Clock
from rollout.core.events import DURABLE, Event
from rollout.state import postgres_schema
from rollout.state.agent_sql import Run, SqlAgents
from rollout.state.journal import (
    EventGroup,
    Journal,
    JournalError,
    JournalEvent,
    Lock,
    LockedError,
    RolloutRecord,
    SchemaError,
)
from rollout.state.postgres_access import PostgresAccess
from rollout.state.postgres_assets import PostgresAssets
from rollout.state.postgres_listen import CHANNEL, Listener, announce
from rollout.state.postgres_pool import POOLS, lend, reason, with_defaults
from rollout.state.rows import EVENT_COLUMNS, event_filter, event_row, rollout_row, to_events, to_record

_APPEND_KEY = 0x6576656E7473  # "events": appends commit in the order of their seqs (see _appending)

LOCK_COLUMNS = "plant, owner, purpose, acquired, expires, hostname, pid, operator, fence"
ROLLOUT_COLUMNS = "id, kind, release, commit_id, created, operator, spec"
_APPEND_EVENT = (
    # One statement, so one round trip and (autocommit) one transaction: the CTE takes the
    # append lock before the row's seq is drawn, and says how this transaction commits.
    # Listeners are told the new seq at the commit (NOTIFY carries only ids).
    "WITH turn AS MATERIALIZED (SELECT pg_advisory_xact_lock(%s), set_config('synchronous_commit', %s, true)), "
    "added AS (INSERT INTO rollout.events (rollout, time, kind, plant, layer, host, release, detail) "
    "SELECT %s, %s, %s, %s, %s, %s, %s, %s FROM turn RETURNING seq) "
    f"SELECT seq, pg_notify('{CHANNEL}', seq::text) FROM added"
)
_FLUSH = (
    # A write that leaves nothing behind (a row of a key no plant has, inserted and deleted in
    # one transaction): its synchronous commit flushes the WAL of every commit before it.
    "INSERT INTO rollout.fences (plant, fence) VALUES (%s, 0) ON CONFLICT (plant) DO NOTHING",
    "DELETE FROM rollout.fences WHERE plant = %s",
)
_INSERT_EVENT = (
    "INSERT INTO rollout.events (rollout, time, kind, plant, layer, host, release, detail) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq"
)
_INSERT_ROLLOUT = f"INSERT INTO rollout.rollouts ({ROLLOUT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
_INSERT_NEW_ROLLOUT = f"{_INSERT_ROLLOUT} ON CONFLICT (id) DO NOTHING RETURNING id"
_NOW = "coalesce(%(now)s::float8, extract(epoch FROM clock_timestamp())::float8)"
"""The injected clock's time if there is one, else the database's."""


class PostgresJournal(PostgresAccess, PostgresAssets, SqlAgents, Journal):
    """The state in a PostgreSQL database at ``conninfo`` (a libpq URL), shown as ``shown``.

    Users, sessions, jobs and deliveries are ``PostgresAccess``'s, on the same pool."""

    known_schema = postgres_schema.LATEST

    def __init__(self, conninfo: str, shown: str, clock: Clock | None = None) -> None:
        self.shown = shown
        self.clock = clock
        self._conninfo = with_defaults(conninfo)
        self._pool = POOLS.take(self._conninfo)
        self._listener = Listener(self._conninfo, self.last_seq)
        self._closed = False
        self._flushing = threading.Lock()
        self._async_done = 0
        """Asynchronous commits this journal made; ``_flushed`` of them are known to be on disk."""
        self._flushed = 0
        try:
            self._check_schema()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Give up this journal's share of its pool (closed with the last journal of its URL in
        this process, or at exit); the journal is unusable afterwards."""
        if not self._closed:
            self._closed = True
            self._listener.close()
            POOLS.give_back(self._conninfo)

    def _check_schema(self) -> None:
        with self._connection("open") as db:
            version = postgres_schema.stored_version(db)
        if version > postgres_schema.LATEST:
            raise SchemaError(
                f"the state at {self.shown} has schema {version}, this rollout knows up to "
                f"{postgres_schema.LATEST}: upgrade rollout"
            )
        if version < postgres_schema.LATEST:
            found = "has no rollout schema yet" if version == 0 else f"has schema {version}"
            raise SchemaError(
                f"the state at {self.shown} {found}, this rollout needs schema {postgres_schema.LATEST}: "
                "run 'rollout state migrate' first"
            )

    @contextmanager
    def _connection(self, action: str) -> Iterator[Connection[Any]]:
        """A pooled connection; any driver error in the block becomes a JournalError saying ``action``."""
        with lend(self._pool, self._conninfo, f"{action} the state at {self.shown}") as db:
            yield db

    @contextmanager
    def _tx(self, action: str) -> Iterator[Connection[Any]]:
        with self._connection(action) as db, db.transaction():
            yield db

    @contextmanager
    def _appending(self, action: str) -> Iterator[Connection[Any]]:
        """A transaction that appends events, in a pipeline (one round trip, not one per statement).

        Seqs come from a sequence at insert time, but transactions commit in any order: a
        reader following ``seq`` could pass an event still uncommitted and never see it. The
        advisory lock, held to the commit, makes appends commit in the order of their seqs."""
        with self._connection(action) as db, db.pipeline(), db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_KEY,))
            yield db

    def _rows(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        with self._connection("read") as db:
            return db.execute(sql, args).fetchall()

    _agent_mark, _agent_schema = "%s", "rollout."

    @contextmanager
    def _agent_write(self) -> Iterator[Run]:
        # pipelined: an agent's events post is its inserts and one read, not a round trip each
        with self._connection("write") as db, db.pipeline(), db.transaction():
            yield lambda sql, args: db.execute(sql, args).fetchall() if _returns(sql) else _none(db.execute(sql, args))

    def _agent_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._rows(sql, args)

    def _any(self, column: str, values: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        return f"{column} = ANY(%s::text[])", (list(values),)

    def _pairs(self, pairs: Sequence[tuple[str, int]]) -> tuple[str, tuple[Any, ...]]:
        return "SELECT * FROM unnest(%s::text[], %s::bigint[])", ([o for o, _ in pairs], [s for _, s in pairs])

    def schema(self) -> int:
        with self._connection("read") as db:
            return postgres_schema.stored_version(db)

    def create(self, record: RolloutRecord) -> None:
        with self._tx("write") as db:
            db.execute(_INSERT_ROLLOUT, rollout_row(record))

    def append(self, rollout: str, event: Event) -> int:
        durable = event.kind in DURABLE
        row = (_APPEND_KEY, "on" if durable else "off", *event_row(rollout, event))
        with self._flushing:
            before = self._async_done
        with self._connection("write") as db:
            found = db.execute(_APPEND_EVENT, row).fetchone()
        self._committed(durable, before)
        return int(found[0]) if found else 0

    def _committed(self, durable: bool, before: int) -> None:
        """Count an asynchronous commit, or note that a synchronous one, begun when ``before``
        asynchronous commits had returned, put them all on disk (the WAL is flushed in order)."""
        with self._flushing:
            if durable:
                self._flushed = max(self._flushed, before)
            else:
                self._async_done += 1

    def append_groups(self, rollout: str, groups: Sequence[EventGroup], owner: str) -> list[list[int]]:
        if len(groups) == 1 and groups[0][1] is None and len(groups[0][0]) == 1:
            return [[self.append(rollout, groups[0][0][0])]]  # one statement, one round trip
        rows = [[event_row(rollout, e) for e in events] for events, _ in groups]  # a bad detail fails first
        durable = any(plant is not None or any(e.kind in DURABLE for e in events) for events, plant in groups)
        with self._flushing:
            before = self._async_done
        with self._appending("write") as db:
            if not durable:
                db.execute("SELECT set_config('synchronous_commit', 'off', true)")
            seqs = [int(seq) for seq in _batch(db, _INSERT_EVENT, [row for group in rows for row in group])]
            for plant in sorted({plant for _, plant in groups if plant is not None}):
                db.execute("DELETE FROM rollout.locks WHERE plant = %s AND owner = %s", (plant, owner))
            announce(db, seqs)
        self._committed(durable, before)
        return _split(seqs, [len(group) for group in rows])

    def adopt(self, records: list[RolloutRecord], events: list[JournalEvent]) -> list[str]:
        with self._appending("import into") as db:
            added = set(_batch(db, _INSERT_NEW_ROLLOUT, [rollout_row(r) for r in records]))
            seqs = _batch(db, _INSERT_EVENT, [event_row(e.rollout, e.event) for e in events if e.rollout in added])
            announce(db, [int(seq) for seq in seqs])
        return [r.id for r in records if r.id in added]

    def rollout(self, rollout: str) -> RolloutRecord | None:
        rows = self._rows(f"SELECT {ROLLOUT_COLUMNS} FROM rollout.rollouts WHERE id = %s", (rollout,))
        return to_record(rows[0]) if rows else None

    def rollouts(self, plant: str | None = None) -> list[RolloutRecord]:
        if plant is None:
            rows = self._rows(f"SELECT {ROLLOUT_COLUMNS} FROM rollout.rollouts ORDER BY created, id")
        else:
            rows = self._rows(
                f"SELECT {ROLLOUT_COLUMNS} FROM rollout.rollouts WHERE id IN "
                "(SELECT rollout FROM rollout.events WHERE plant = %s) ORDER BY created, id",
                (plant,),
            )
        return [to_record(row) for row in rows]

    def events(
        self, rollout: str | None = None, plant: str | None = None, kinds: tuple[str, ...] = ()
    ) -> list[JournalEvent]:
        return self._events(rollout, plant, kinds)

    def events_after(self, seq: int, rollout: str | None = None) -> list[JournalEvent]:
        return self._events(rollout, None, (), seq)

    def _events(
        self, rollout: str | None, plant: str | None, kinds: tuple[str, ...], after: int | None = None
    ) -> list[JournalEvent]:
        clause, args = event_filter(rollout, plant, kinds, after, "%s", array=True)
        return to_events(self._rows(f"SELECT {EVENT_COLUMNS} FROM rollout.events {clause} ORDER BY seq", args))

    def last_seq(self) -> int:
        rows = self._rows("SELECT coalesce(max(seq), 0) FROM rollout.events")
        return int(rows[0][0])

    def wait(self, after_seq: int, timeout: float) -> bool:
        return self._listener.wait(after_seq, timeout)

    def sync(self) -> None:
        # rollout syncs right after a DURABLE event, whose synchronous commit flushed every
        # commit before it: then one round trip says the store is still there. Otherwise a
        # write of nothing, committed synchronously, flushes what this journal committed.
        with self._flushing:
            pending = self._async_done
            flushed = self._flushed
        if pending <= flushed:
            self._rows("SELECT 1 FROM rollout.schema_version")
            return
        with self._tx("sync") as db:
            db.execute("SET LOCAL synchronous_commit TO on")
            key = f"rollout/sync/{socket.gethostname()}/{os.getpid()}/{threading.get_ident()}"
            for statement in _FLUSH:
                db.execute(statement, (key,))
        self._committed(True, pending)

    def acquire(self, plant: str, owner: str, purpose: str, ttl: float, operator: str = "") -> Lock:
        with self._tx("write") as db:
            # The plant's fences row, locked to the commit, lets one acquire of a plant run at a time,
            # across every process and machine; the lease row is locked against renewals meanwhile.
            last = db.execute(
                "INSERT INTO rollout.fences (plant, fence) VALUES (%s, 0) ON CONFLICT (plant) "
                "DO UPDATE SET fence = rollout.fences.fence RETURNING fence",
                (plant,),
            ).fetchone()
            row = db.execute(f"SELECT {LOCK_COLUMNS} FROM rollout.locks WHERE plant = %s FOR UPDATE", (plant,))
            held = _lock(row.fetchone())
            now = self._now(db)
            if held is not None and not held.stale(now) and not held.mine(owner):
                raise LockedError(plant, held)
            again = held is not None and held.mine(owner)
            fence = held.fence if held is not None and again else int(last[0] if last else 0) + 1
            lock = Lock(plant, owner, purpose, now, now + ttl, socket.gethostname(), os.getpid(), operator, fence)
            db.execute("UPDATE rollout.fences SET fence = %s WHERE plant = %s", (fence, plant))
            db.execute(
                f"INSERT INTO rollout.locks ({LOCK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (plant) DO UPDATE SET (owner, purpose, acquired, expires, hostname, pid, operator, fence)"
                " = (EXCLUDED.owner, EXCLUDED.purpose, EXCLUDED.acquired, EXCLUDED.expires, EXCLUDED.hostname,"
                " EXCLUDED.pid, EXCLUDED.operator, EXCLUDED.fence)",
                astuple(lock),
            )
        return lock

    def _now(self, db: Connection[Any]) -> float:
        if self.clock is not None:
            return self.clock.time()
        row = db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        return float(row[0]) if row else 0.0

    def holding(self, lock: Lock) -> bool:
        rows = self._rows(
            "SELECT 1 FROM rollout.locks WHERE plant = %(plant)s AND owner = %(owner)s AND fence = %(fence)s "
            f"AND hostname = %(hostname)s AND pid = %(pid)s AND expires >= {_NOW}",
            {**_lock_args(lock), "now": self._injected()},
        )
        return bool(rows)

    def renew(self, plants: list[str], owner: str, ttl: float) -> None:
        with self._tx("write") as db:
            db.execute(
                f"UPDATE rollout.locks SET expires = {_NOW} + %(ttl)s "
                "WHERE plant = ANY(%(plants)s) AND owner = %(owner)s",
                {"now": self._injected(), "ttl": ttl, "plants": plants, "owner": owner},
            )

    def release(self, plant: str, owner: str) -> None:
        with self._tx("write") as db:
            db.execute("DELETE FROM rollout.locks WHERE plant = %s AND owner = %s", (plant, owner))

    def locks(self) -> list[Lock]:
        rows = self._rows(f"SELECT {LOCK_COLUMNS} FROM rollout.locks ORDER BY plant")
        return [Lock(*row) for row in rows]

    def _injected(self) -> float | None:
        return self.clock.time() if self.clock is not None else None


def migrate(conninfo: str, shown: str) -> tuple[int, int]:
    """Create or upgrade the schema of the database at ``conninfo``: (version before, after).

    A newer schema is refused (``SchemaError``) and left as it is."""
    try:
        with psycopg.connect(with_defaults(conninfo), autocommit=True) as db:
            before, after = postgres_schema.upgrade(db)
    except psycopg.Error as exc:
        raise JournalError(f"cannot migrate the state at {shown}: {reason(exc)}") from None
    if after > postgres_schema.LATEST:
        raise SchemaError(
            f"the state at {shown} has schema {after}, this rollout knows up to {postgres_schema.LATEST}: "
            "upgrade rollout"
        )
    return before, after


def _batch(db: Connection[Any], sql: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``sql`` for each of ``rows`` in one batch (the pipeline sends them together) and return
    the first column of what each returned, in order."""
    if not rows:
        return []
    cursor = db.cursor()
    cursor.executemany(sql, rows, returning=True)
    found: list[Any] = []
    while True:
        found.extend(row[0] for row in cursor.fetchall())
        if not cursor.nextset():
            return found


def _split(items: list[int], sizes: list[int]) -> list[list[int]]:
    out, at = [], 0
    for size in sizes:
        out.append(items[at : at + size])
        at += size
    return out


def _lock(row: tuple[Any, ...] | None) -> Lock | None:
    return Lock(*row) if row is not None else None


def _lock_args(lock: Lock) -> dict[str, Any]:
    return {"plant": lock.plant, "owner": lock.owner, "fence": lock.fence, "hostname": lock.hostname, "pid": lock.pid}


def _returns(sql: str) -> bool:
    """Whether a statement gives rows (psycopg refuses ``fetchall`` on one that does not)."""
    return sql.lstrip().upper().startswith("SELECT") or " RETURNING " in sql.upper()


def _none(_: object) -> list[tuple[Any, ...]]:
    return []
