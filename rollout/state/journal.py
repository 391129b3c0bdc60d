"""The event journal and plant locks: the one record of what rollout did and is doing.

Every event is committed before the step it announces is taken, so a run killed at any
point leaves a journal that says how far it got. Status, history and resume read it;
nothing keeps a second truth. SQLite (WAL) is the embedded default; the interface is
small so that a PostgreSQL implementation can take its place.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.core.events import Event
from rollout.errors import RolloutError

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    release TEXT,
    commit_id TEXT,
    created REAL NOT NULL,
    operator TEXT NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout TEXT NOT NULL REFERENCES rollouts(id),
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    plant TEXT NOT NULL,
    layer TEXT,
    host TEXT,
    release TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_rollout ON events(rollout, seq);
CREATE INDEX IF NOT EXISTS events_by_plant ON events(plant, seq);
CREATE TABLE IF NOT EXISTS locks (
    plant TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    acquired REAL NOT NULL,
    expires REAL NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    operator TEXT NOT NULL DEFAULT ''
);
"""
LOCK_COLUMNS = "plant, owner, purpose, acquired, expires, hostname, pid, operator"


class JournalError(RolloutError):
    """The journal cannot be written or read; rollout stops rather than act unrecorded."""


class LockedError(RolloutError):
    """A plant is locked by someone else."""

    def __init__(self, plant: str, lock: Lock) -> None:
        self.plant = plant
        self.lock = lock
        super().__init__(f"plant {plant} is locked by {lock.describe()}")


@dataclass(frozen=True)
class Lock:
    plant: str
    owner: str
    purpose: str
    acquired: float
    expires: float
    hostname: str
    pid: int
    operator: str = ""

    def describe(self) -> str:
        """Who holds it, from where, for what and until when: all a person needs to find the holder."""
        who = self.operator or "an unknown operator"
        return (
            f"rollout {self.owner} ({self.purpose}) of {who} on machine {self.hostname} (pid {self.pid}), "
            f"since {local_time(self.acquired)}, until {local_time(self.expires)} unless renewed"
        )

    def mine(self, owner: str) -> bool:
        """Held by this very process for this owner (re-entrant), not by another run of it."""
        return self.owner == owner and self.pid == os.getpid() and self.hostname == socket.gethostname()

    def stale(self, now: float) -> bool:
        """Expired, or held by a process of this machine that no longer exists."""
        if self.expires < now:
            return True
        return self.hostname == socket.gethostname() and not _alive(self.pid)


def local_time(stamp: float) -> str:
    """A time as people read it here, with its offset from UTC so it means the same anywhere."""
    return dt.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class RolloutRecord:
    id: str
    kind: str
    release: str | None
    commit: str | None
    created: float
    operator: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class JournalEvent:
    seq: int
    rollout: str
    event: Event


class Journal(ABC):
    """What rollout needs of a journal; SQLite here, PostgreSQL for teams later."""

    @abstractmethod
    def create(self, record: RolloutRecord) -> None: ...

    @abstractmethod
    def append(self, rollout: str, event: Event) -> int: ...

    @abstractmethod
    def append_releasing(self, rollout: str, events: list[Event], plant: str, owner: str) -> list[int]:
        """Append ``events`` and release ``owner``'s lock of ``plant`` in one transaction: an
        outcome is never recorded with its lock still held, nor a lock released without it."""

    @abstractmethod
    def rollout(self, rollout: str) -> RolloutRecord | None: ...

    @abstractmethod
    def rollouts(self, plant: str | None = None) -> list[RolloutRecord]: ...

    @abstractmethod
    def events(
        self, rollout: str | None = None, plant: str | None = None, kinds: tuple[str, ...] = ()
    ) -> list[JournalEvent]:
        """Events in journal order; ``kinds`` keeps only those kinds."""

    @abstractmethod
    def sync(self) -> None:
        """Put every event appended so far on disk, safe from a power cut."""

    @abstractmethod
    def acquire(self, plant: str, owner: str, purpose: str, ttl: float, operator: str = "") -> Lock: ...

    @abstractmethod
    def renew(self, plants: list[str], owner: str, ttl: float) -> None: ...

    @abstractmethod
    def release(self, plant: str, owner: str) -> None: ...

    @abstractmethod
    def locks(self) -> list[Lock]: ...


class SqliteJournal(Journal):
    """The embedded journal: one SQLite file in WAL mode, one short transaction per write.

    Commits reach the operating system at once (a killed rollout loses nothing) and the
    disk when ``sync`` is called: an fsync per event would serialise every plant behind
    the disk (5 ms a commit here), so only the steps that matter after a power cut wait for it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = self._db()
            db.executescript(SCHEMA)  # executescript commits on its own
            _add_lock_operator(db)
            self._identity = _identity(path)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from None

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
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        self._same_file()
        try:
            with self._tx() as db:
                return int(db.execute(sql, args).lastrowid or 0)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._db().execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {self.path}: {exc}") from None

    def create(self, record: RolloutRecord) -> None:
        self._write(
            "INSERT INTO rollouts (id, kind, release, commit_id, created, operator, spec) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.kind,
                record.release,
                record.commit,
                record.created,
                record.operator,
                json.dumps(record.spec, sort_keys=True),
            ),
        )

    def append(self, rollout: str, event: Event) -> int:
        return self._write(_INSERT_EVENT, _event_row(rollout, event))

    def append_releasing(self, rollout: str, events: list[Event], plant: str, owner: str) -> list[int]:
        self._same_file()
        try:
            with self._tx() as db:
                seqs = [int(db.execute(_INSERT_EVENT, _event_row(rollout, e)).lastrowid or 0) for e in events]
                db.execute("DELETE FROM locks WHERE plant = ? AND owner = ?", (plant, owner))
                return seqs
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None

    def rollout(self, rollout: str) -> RolloutRecord | None:
        rows = self._read(
            "SELECT id, kind, release, commit_id, created, operator, spec FROM rollouts WHERE id = ?", (rollout,)
        )
        return _record(rows[0]) if rows else None

    def rollouts(self, plant: str | None = None) -> list[RolloutRecord]:
        if plant is None:
            rows = self._read(
                "SELECT id, kind, release, commit_id, created, operator, spec FROM rollouts ORDER BY created"
            )
        else:
            rows = self._read(
                "SELECT id, kind, release, commit_id, created, operator, spec FROM rollouts WHERE id IN "
                "(SELECT DISTINCT rollout FROM events WHERE plant = ?) ORDER BY created",
                (plant,),
            )
        return [_record(row) for row in rows]

    def events(
        self, rollout: str | None = None, plant: str | None = None, kinds: tuple[str, ...] = ()
    ) -> list[JournalEvent]:
        where, args = [], []
        if rollout is not None:
            where.append("rollout = ?")
            args.append(rollout)
        if plant is not None:
            where.append("plant = ?")
            args.append(plant)
        if kinds:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT seq, rollout, time, kind, plant, layer, host, release, detail FROM events {clause} ORDER BY seq",
            tuple(args),
        )
        return [
            JournalEvent(seq, ro, Event(kind, plant_, layer, host, release, json.loads(detail), when, seq, ro))
            for seq, ro, when, kind, plant_, layer, host, release, detail in rows
        ]

    def sync(self) -> None:
        # A commit is in the WAL file (or, after a checkpoint, in the database, which
        # SQLite syncs itself): an fsync of the WAL file makes it durable.
        self._same_file()
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
        """Take the plant's lock: free, stale (its process died or it expired), or already this process's."""
        self._same_file()
        now = time.time()
        lock = Lock(plant, owner, purpose, now, now + ttl, socket.gethostname(), os.getpid(), operator)
        row_out = (lock.plant, lock.owner, lock.purpose, lock.acquired, lock.expires, lock.hostname, lock.pid, operator)
        try:
            with self._tx() as db:
                row = db.execute(f"SELECT {LOCK_COLUMNS} FROM locks WHERE plant = ?", (plant,)).fetchone()
                if row is not None:
                    held = Lock(*row)
                    if not held.stale(now) and not held.mine(owner):
                        raise LockedError(plant, held)
                db.execute(f"INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row_out)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc}") from None
        return lock

    def renew(self, plants: list[str], owner: str, ttl: float) -> None:
        expires = time.time() + ttl
        for plant in plants:
            self._write("UPDATE locks SET expires = ? WHERE plant = ? AND owner = ?", (expires, plant, owner))

    def release(self, plant: str, owner: str) -> None:
        self._write("DELETE FROM locks WHERE plant = ? AND owner = ?", (plant, owner))

    def locks(self) -> list[Lock]:
        rows = self._read(f"SELECT {LOCK_COLUMNS} FROM locks ORDER BY plant")
        return [Lock(*row) for row in rows]


_INSERT_EVENT = (
    "INSERT INTO events (rollout, time, kind, plant, layer, host, release, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _event_row(rollout: str, event: Event) -> tuple[Any, ...]:
    detail = json.dumps(event.detail, sort_keys=True, default=str)
    return (rollout, event.time, event.kind, event.plant, event.layer, event.host, event.release, detail)


def _add_lock_operator(db: sqlite3.Connection) -> None:
    """Journals made before locks named their operator get the column (empty for old locks)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(locks)")}
    if "operator" not in columns:
        try:
            db.execute("ALTER TABLE locks ADD COLUMN operator TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:  # another process opening the journal added it first
            if "duplicate column" not in str(exc):
                raise


def _record(row: tuple[Any, ...]) -> RolloutRecord:
    rid, kind, release, commit, created, operator, spec = row
    return RolloutRecord(rid, kind, release, commit, created, operator, json.loads(spec))


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
