"""The embedded state: one SQLite file in WAL mode, one short transaction per write."""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any

from rollout.core.clock import Clock, SystemClock
from rollout.core.events import Event
from rollout.state import sqlite_schema
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
from rollout.state.rows import EVENT_COLUMNS, event_filter, event_row, rollout_row, to_events, to_record
from rollout.state.sqlite_access import SqliteAccess
from rollout.state.sqlite_assets import SqliteAssets

LOCK_COLUMNS = "plant, owner, purpose, acquired, expires, hostname, pid, operator, fence"
ROLLOUT_COLUMNS = "id, kind, release, commit_id, created, operator, spec"
_NEXT_FENCE = (
    "INSERT INTO fences (plant, fence) VALUES (?, 1) ON CONFLICT (plant) DO UPDATE SET fence = fence + 1 "
    "RETURNING fence"
)
POLL_INTERVAL = 0.1
"""Seconds between two looks for new events while a follower waits."""
_OPEN: weakref.WeakSet[SqliteJournal] = weakref.WeakSet()
"""Every journal this process opened and still holds (``sync_open``)."""
_INSERT_EVENT = (
    "INSERT INTO events (rollout, time, kind, plant, layer, host, release, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteJournal(SqliteAccess, SqliteAssets, SqlAgents, Journal):
    """The embedded state: one SQLite file in WAL mode, one short transaction per write.

    Commits reach the operating system at once (a killed rollout loses nothing) and the
    disk when ``sync`` is called: an fsync per event would serialise every plant behind
    the disk (5 ms a commit here), so only the steps that matter after a power cut wait for it.
    Lock times come from ``clock``; each thread has its own connection. Users, sessions, jobs
    and deliveries are ``SqliteAccess``'s, on the same connections and transactions.
    """

    known_schema = sqlite_schema.LATEST

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self.path = path
        self.clock = clock or SystemClock()
        self._local = threading.local()
        self._writer = threading.Lock()
        """This process's writers take turns here: on the file alone, a writer that finds it
        busy sleeps in SQLite's busy handler (1, 2, 5, 10 ms and longer), not woken when it is free."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _taking_turns(path):
                self._open_schema(self._db())
            self._identity = _identity(path)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from None
        _OPEN.add(self)

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @property
    def url(self) -> str:
        """The state URL of this file (``sqlite:////abs/path`` for an absolute path)."""
        return f"sqlite:///{self.path}"

    def _open_schema(self, db: sqlite3.Connection) -> None:
        """Refuse a newer schema; upgrade an older one in place, once, under the write lock."""
        if self._checked_version(db) == sqlite_schema.LATEST:
            return
        with self._tx() as tx:
            version = self._checked_version(tx)  # another process may have upgraded it meanwhile
            if version < sqlite_schema.LATEST:
                sqlite_schema.upgrade(tx, version)

    def _checked_version(self, db: sqlite3.Connection) -> int:
        version = sqlite_schema.stored_version(db)
        if version > sqlite_schema.LATEST:
            raise SchemaError(
                f"the state at {self.url} has schema {version}, this rollout knows up to "
                f"{sqlite_schema.LATEST}: upgrade rollout"
            )
        return version

    def schema(self) -> int:
        rows = self._read("SELECT max(version) FROM schema_version")
        return int(rows[0][0])

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            if hasattr(self, "_identity"):
                self._same_file()
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _same_file(self) -> None:
        """The file this journal opened is still there: SQLite would go on writing to a
        removed file (history lost) or open a new, empty one in its place."""
        try:
            same = _identity(self.path) == self._identity
        except OSError:
            same = False
        if not same:
            raise JournalError(f"the journal {self.path} was removed or replaced; stopping rather than act unrecorded")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._writer:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the file this journal opened; SQLite errors become JournalError."""
        self._same_file()
        try:
            with self._tx() as db:
                yield db
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._writing() as db:
            return int(db.execute(sql, args).lastrowid or 0)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self._same_file()  # an open connection would go on reading a removed file's old history
        try:
            return list(self._db().execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc}") from None

    @contextmanager
    def _agent_write(self) -> Iterator[Run]:
        with self._writing() as db:
            yield lambda sql, args: list(db.execute(sql, args).fetchall())

    def _agent_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._read(sql, args)

    def create(self, record: RolloutRecord) -> None:
        self._write(f"INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rollout_row(record))

    def append(self, rollout: str, event: Event) -> int:
        return self._write(_INSERT_EVENT, event_row(rollout, event))

    def append_groups(self, rollout: str, groups: Sequence[EventGroup], owner: str) -> list[list[int]]:
        rows = [[event_row(rollout, e) for e in events] for events, _ in groups]  # a bad detail fails first
        with self._writing() as db:
            seqs = [[int(db.execute(_INSERT_EVENT, row).lastrowid or 0) for row in group] for group in rows]
            for plant in sorted({plant for _, plant in groups if plant is not None}):
                db.execute("DELETE FROM locks WHERE plant = ? AND owner = ?", (plant, owner))
            return seqs

    def adopt(self, records: list[RolloutRecord], events: list[JournalEvent]) -> list[str]:
        rows = [(e.rollout, event_row(e.rollout, e.event)) for e in events]
        insert = f"INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        with self._writing() as db:
            added = {r.id for r in records if db.execute(insert, rollout_row(r)).rowcount == 1}
            db.executemany(_INSERT_EVENT, [row for rollout, row in rows if rollout in added])
        return [r.id for r in records if r.id in added]

    def rollout(self, rollout: str) -> RolloutRecord | None:
        rows = self._read(f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?", (rollout,))
        return to_record(rows[0]) if rows else None

    def rollouts(self, plant: str | None = None) -> list[RolloutRecord]:
        if plant is None:
            rows = self._read(f"SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY created")
        else:
            rows = self._read(
                f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id IN "
                "(SELECT DISTINCT rollout FROM events WHERE plant = ?) ORDER BY created",
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
        clause, args = event_filter(rollout, plant, kinds, after, "?", array=False)
        return to_events(self._read(f"SELECT {EVENT_COLUMNS} FROM events {clause} ORDER BY seq", tuple(args)))

    def last_seq(self) -> int:
        return int(self._read("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def wait(self, after_seq: int, timeout: float) -> bool:
        # A file has no way to announce a commit to other processes: poll the newest seq, which
        # the primary key answers without reading the table.
        deadline = time.monotonic() + max(0.0, timeout)
        while self.last_seq() <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_INTERVAL, left))
        return True

    def sync(self) -> None:
        self._same_file()
        self._sync_wal()

    def _sync_wal(self) -> None:
        # A commit is in the WAL file (or, after a checkpoint, in the database, which
        # SQLite syncs itself): an fsync of the WAL file makes it durable.
        wal = Path(f"{self.path}-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(f"cannot sync the journal {self.path}: {exc.strerror}") from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise JournalError(f"cannot sync the journal {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def acquire(self, plant: str, owner: str, purpose: str, ttl: float, operator: str = "") -> Lock:
        now = self.clock.time()
        with self._writing() as db:
            row = db.execute(f"SELECT {LOCK_COLUMNS} FROM locks WHERE plant = ?", (plant,)).fetchone()
            held = Lock(*row) if row is not None else None
            if held is not None and not held.stale(now) and not held.mine(owner):
                raise LockedError(plant, held)
            # Re-entrant: the same holder keeps its fence; any other holder gets the next one.
            again = held is not None and held.mine(owner)
            fence = held.fence if held is not None and again else int(db.execute(_NEXT_FENCE, (plant,)).fetchone()[0])
            lock = Lock(plant, owner, purpose, now, now + ttl, socket.gethostname(), os.getpid(), operator, fence)
            db.execute(f"INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) VALUES ({', '.join('?' * 9)})", astuple(lock))
        return lock

    def holding(self, lock: Lock) -> bool:
        rows = self._read(
            "SELECT 1 FROM locks WHERE plant = ? AND owner = ? AND fence = ? AND hostname = ? AND pid = ? "
            "AND expires >= ?",
            (lock.plant, lock.owner, lock.fence, lock.hostname, lock.pid, self.clock.time()),
        )
        return bool(rows)

    def renew(self, plants: list[str], owner: str, ttl: float) -> None:
        expires = self.clock.time() + ttl
        with self._writing() as db:
            for plant in plants:
                db.execute("UPDATE locks SET expires = ? WHERE plant = ? AND owner = ?", (expires, plant, owner))

    def release(self, plant: str, owner: str) -> None:
        self._write("DELETE FROM locks WHERE plant = ? AND owner = ?", (plant, owner))

    def locks(self) -> list[Lock]:
        rows = self._read(f"SELECT {LOCK_COLUMNS} FROM locks ORDER BY plant")
        return [Lock(*row) for row in rows]


def sync_open() -> list[str]:
    """Put what every open journal of this process committed on the disk (``sync``), as a
    close's checkpoint would, for a process about to end without closing them; why each
    journal that could not be synced was not (a failed disk). A journal whose file was
    removed or replaced is skipped: whoever used it met that already."""
    problems: list[str] = []
    for journal in list(_OPEN):
        try:
            journal._same_file()
        except JournalError:
            continue  # removed or replaced: the verb that used it has said so, and nothing is left to sync
        try:
            journal._sync_wal()
        except JournalError as exc:
            problems.append(str(exc))
    return problems


def sqlite_version(path: Path) -> int:
    """The schema version of the SQLite state at ``path`` as it is, changing nothing (0 if there is none)."""
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return sqlite_schema.stored_version(db)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {path}: {exc}") from None


def read_history(path: Path) -> tuple[list[RolloutRecord], list[JournalEvent]]:
    """Every rollout and event of the SQLite state at ``path``, read from a consistent copy:
    the file itself is not changed (an older schema is upgraded in the copy only)."""
    if not path.is_file():
        raise JournalError(f"no SQLite journal at {path}")
    with tempfile.TemporaryDirectory(prefix="rollout-import-") as folder:
        copy = Path(folder) / "state.db"
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as src:
                with closing(sqlite3.connect(copy)) as dst:
                    src.backup(dst)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {path}: {exc}") from None
        journal = SqliteJournal(copy)
        history = journal.rollouts(), journal.events()
        journal.close()
        return history


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


@contextmanager
def _taking_turns(path: Path) -> Iterator[None]:
    """Processes opening one state at once take turns (a lock on a file beside it): the switch
    to WAL wants the file to itself and, unlike a transaction, does not wait for a busy file;
    an upgrade of an older schema is then done by the first and seen by the others."""
    try:
        fd = os.open(f"{path}-open.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a folder this process cannot write: it cannot switch or upgrade the file either
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few statements; released when fd is closed
        yield
    finally:
        os.close(fd)
