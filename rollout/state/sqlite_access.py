"""The access part of the SQLite state (``rollout.state.access``): users, sessions, jobs and
deliveries, each method one transaction of the journal's.

Every write runs under ``BEGIN IMMEDIATE`` (the journal's ``_writing``): it holds the file's
one write lock from its first statement, so a read-then-write (a job's claim, a batch of
deliveries taken) is never interleaved with another process's."""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from rollout.state.access import AccessStore, Delivery, Job, Session, User
from rollout.state.access_rows import (
    DELIVERY_COLUMNS,
    JOB_COLUMNS,
    SESSION_COLUMNS,
    USER_COLUMNS,
    USER_REPLACED,
    delivery_row,
    in_claim_order,
    job_row,
    marks,
    qualified,
    session_row,
    to_delivery,
    to_job,
    to_session,
    to_user,
    user_row,
)
from rollout.state.rows import chunks

_ADD_USER = (
    f"INSERT INTO users ({USER_COLUMNS}) VALUES ({marks(USER_COLUMNS, '?')}) "
    f"ON CONFLICT (name) DO UPDATE SET {USER_REPLACED} WHERE users.revoked IS NOT NULL"
)
_SESSION = (
    f"SELECT {qualified(SESSION_COLUMNS, 's')}, {qualified(USER_COLUMNS, 'u')} FROM sessions s "
    "JOIN users u ON u.name = s.user_name WHERE s.token_hash = ? AND s.expires > ? AND u.revoked IS NULL"
)
_CLAIM_DELIVERIES = (
    "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE id IN (SELECT id FROM deliveries "
    "WHERE state = 'pending' AND next_attempt <= ? AND claimed_until < ? ORDER BY seq, hook LIMIT ?) "
    f"RETURNING {DELIVERY_COLUMNS}"
)
_SESSION_WIDTH = len(SESSION_COLUMNS.split(","))


class SqliteAccess(AccessStore):
    """``AccessStore`` on the journal's connections; ``SqliteJournal`` mixes it in."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; SQLite's errors become ``JournalError``."""

    @abstractmethod
    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query; SQLite's errors become ``JournalError``."""

    def add_user(self, user: User) -> bool:
        with self._writing() as db:
            return db.execute(_ADD_USER, user_row(user)).rowcount == 1

    def user(self, name: str) -> User | None:
        rows = self._read(f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return to_user(rows[0]) if rows else None

    def user_by_token(self, token_hash: str) -> User | None:
        rows = self._read(f"SELECT {USER_COLUMNS} FROM users WHERE token_hash = ? AND revoked IS NULL", (token_hash,))
        return to_user(rows[0]) if rows else None

    def active_tokens(self, token_hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(sorted(set(token_hashes))):
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT token_hash FROM users WHERE token_hash IN ({marks}) AND revoked IS NULL"
            found |= {str(row[0]) for row in self._read(sql, tuple(chunk))}
        return found

    def users(self) -> list[User]:
        return [to_user(row) for row in self._read(f"SELECT {USER_COLUMNS} FROM users ORDER BY name")]

    def revoke_user(self, name: str, when: float) -> bool:
        with self._writing() as db:
            revoked = db.execute("UPDATE users SET revoked = ? WHERE name = ? AND revoked IS NULL", (when, name))
            if revoked.rowcount != 1:
                return False
            db.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
            return True

    def add_session(self, session: Session) -> None:
        with self._writing() as db:
            db.execute(f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?)", session_row(session))

    def session(self, token_hash: str, now: float) -> tuple[Session, User] | None:
        rows = self._read(_SESSION, (token_hash, now))
        if not rows:
            return None
        return to_session(rows[0][:_SESSION_WIDTH]), to_user(rows[0][_SESSION_WIDTH:])

    def end_session(self, token_hash: str) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def claim_job(self, job: Job) -> tuple[Job, bool]:
        insert = f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({marks(JOB_COLUMNS, '?')}) ON CONFLICT (key) DO NOTHING"
        row = job_row(job)
        with self._writing() as db:
            won = db.execute(insert, row).rowcount == 1
            stored = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE key = ?", (job.key,)).fetchone()
        return to_job(stored), won

    def update_job(self, key: str, state: str, when: float, message: str = "", rollout: str | None = None) -> None:
        with self._writing() as db:
            db.execute(
                "UPDATE jobs SET state = ?, updated = ?, message = ?, rollout = coalesce(?, rollout) WHERE key = ?",
                (state, when, message, rollout, key),
            )

    def job(self, key: str) -> Job | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE key = ?", (key,))
        return to_job(rows[0]) if rows else None

    def jobs(self, limit: int = 100) -> list[Job]:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created DESC, key DESC LIMIT ?", (limit,))
        return [to_job(row) for row in rows]

    def enqueue_deliveries(self, deliveries: list[Delivery]) -> int:
        rows = [delivery_row(d) for d in deliveries]  # serialised first: a bad body fails before the write
        insert = (
            f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ({marks(DELIVERY_COLUMNS, '?')}) "
            "ON CONFLICT (id) DO NOTHING"
        )
        with self._writing() as db:
            return sum(db.execute(insert, row).rowcount for row in rows)

    def claim_deliveries(self, now: float, claimer: str, hold: float, limit: int) -> list[Delivery]:
        with self._writing() as db:  # every row RETURNING gives is read before the commit
            rows = db.execute(_CLAIM_DELIVERIES, (claimer, now + hold, now, now, limit)).fetchall()
        return in_claim_order([to_delivery(row) for row in rows])

    def finish_delivery(
        self, delivery_id: str, state: str, attempts: int, next_attempt: float, error: str, when: float
    ) -> None:
        with self._writing() as db:
            db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, next_attempt = ?, last_error = ?, updated = ?, "
                "claimed_by = '', claimed_until = 0 WHERE id = ?",
                (state, attempts, next_attempt, error, when, delivery_id),
            )

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        rows = self._read(f"SELECT {DELIVERY_COLUMNS} FROM deliveries ORDER BY seq DESC, hook DESC LIMIT ?", (limit,))
        return [to_delivery(row) for row in rows]
