"""The access part of the PostgreSQL state (``rollout.state.access``): users, sessions, jobs and
deliveries, each method one transaction on a pooled connection of the journal's.

Several consoles on several machines share these tables, so the claims are decided by the
database: a job's key by its primary key (``ON CONFLICT DO NOTHING``: a second claimer waits
for the first's commit and then inserts nothing), a delivery by the row locks of
``FOR UPDATE SKIP LOCKED`` (a batch another claimer is taking is passed over, not waited for)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from psycopg import Connection

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
from rollout.state.journal import JournalError

_ADD_USER = (
    f"INSERT INTO rollout.users ({USER_COLUMNS}) VALUES ({marks(USER_COLUMNS, '%s')}) "
    f"ON CONFLICT (name) DO UPDATE SET {USER_REPLACED} WHERE rollout.users.revoked IS NOT NULL"
)
_SESSION = (
    f"SELECT {qualified(SESSION_COLUMNS, 's')}, {qualified(USER_COLUMNS, 'u')} FROM rollout.sessions s "
    "JOIN rollout.users u ON u.name = s.user_name WHERE s.token_hash = %s AND s.expires > %s AND u.revoked IS NULL"
)
_CLAIM_JOB = (
    f"INSERT INTO rollout.jobs ({JOB_COLUMNS}) VALUES ({marks(JOB_COLUMNS, '%s')}) ON CONFLICT (key) DO NOTHING"
)
_ENQUEUE = (
    f"INSERT INTO rollout.deliveries ({DELIVERY_COLUMNS}) VALUES ({marks(DELIVERY_COLUMNS, '%s')}) "
    "ON CONFLICT (id) DO NOTHING"
)
_CLAIM_DELIVERIES = (
    # Rows locked by another claim in progress are skipped; a row another claim committed after
    # this statement began is checked again as it now is (held: left out).
    "UPDATE rollout.deliveries SET claimed_by = %(claimer)s, claimed_until = %(until)s "
    "WHERE id IN (SELECT id FROM rollout.deliveries WHERE state = 'pending' AND next_attempt <= %(now)s "
    "AND claimed_until < %(now)s ORDER BY seq, hook LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    f"RETURNING {DELIVERY_COLUMNS}"
)
_SESSION_WIDTH = len(SESSION_COLUMNS.split(","))


class PostgresAccess(AccessStore):
    """``AccessStore`` on the journal's pool; ``PostgresJournal`` mixes it in."""

    @abstractmethod
    def _tx(self, action: str) -> AbstractContextManager[Connection[Any]]:
        """A connection inside one transaction; driver errors become ``JournalError``."""

    @abstractmethod
    def _rows(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """The rows of one query; driver errors become ``JournalError``."""

    def add_user(self, user: User) -> bool:
        with self._tx("write") as db:
            return db.execute(_ADD_USER, user_row(user)).rowcount == 1

    def user(self, name: str) -> User | None:
        rows = self._rows(f"SELECT {USER_COLUMNS} FROM rollout.users WHERE name = %s", (name,))
        return to_user(rows[0]) if rows else None

    def user_by_token(self, token_hash: str) -> User | None:
        rows = self._rows(
            f"SELECT {USER_COLUMNS} FROM rollout.users WHERE token_hash = %s AND revoked IS NULL", (token_hash,)
        )
        return to_user(rows[0]) if rows else None

    def active_tokens(self, token_hashes: Sequence[str]) -> set[str]:
        if not token_hashes:
            return set()
        # one array, not a list of marks: the statement's text stays the same, parsed once
        sql = "SELECT token_hash FROM rollout.users WHERE token_hash = ANY(%s::text[]) AND revoked IS NULL"
        return {str(row[0]) for row in self._rows(sql, (sorted(set(token_hashes)),))}

    def users(self) -> list[User]:
        return [to_user(row) for row in self._rows(f"SELECT {USER_COLUMNS} FROM rollout.users ORDER BY name")]

    def revoke_user(self, name: str, when: float) -> bool:
        with self._tx("write") as db:
            revoked = db.execute(
                "UPDATE rollout.users SET revoked = %s WHERE name = %s AND revoked IS NULL", (when, name)
            )
            if revoked.rowcount != 1:
                return False
            db.execute("DELETE FROM rollout.sessions WHERE user_name = %s", (name,))
            return True

    def add_session(self, session: Session) -> None:
        with self._tx("write") as db:
            db.execute(
                f"INSERT INTO rollout.sessions ({SESSION_COLUMNS}) VALUES ({marks(SESSION_COLUMNS, '%s')})",
                session_row(session),
            )

    def session(self, token_hash: str, now: float) -> tuple[Session, User] | None:
        rows = self._rows(_SESSION, (token_hash, now))
        if not rows:
            return None
        return to_session(rows[0][:_SESSION_WIDTH]), to_user(rows[0][_SESSION_WIDTH:])

    def end_session(self, token_hash: str) -> None:
        with self._tx("write") as db:
            db.execute("DELETE FROM rollout.sessions WHERE token_hash = %s", (token_hash,))

    def claim_job(self, job: Job) -> tuple[Job, bool]:
        row = job_row(job)
        with self._tx("write") as db:
            won = db.execute(_CLAIM_JOB, row).rowcount == 1
            # A new statement, a new snapshot: it sees the row of a claimer that won meanwhile.
            stored = db.execute(f"SELECT {JOB_COLUMNS} FROM rollout.jobs WHERE key = %s", (job.key,)).fetchone()
        if stored is None:  # jobs are never deleted: a key that conflicted is there
            raise JournalError(f"the job {job.key} was neither recorded nor found")
        return to_job(stored), won

    def update_job(self, key: str, state: str, when: float, message: str = "", rollout: str | None = None) -> None:
        with self._tx("write") as db:
            db.execute(
                "UPDATE rollout.jobs SET state = %s, updated = %s, message = %s, rollout = coalesce(%s, rollout) "
                "WHERE key = %s",
                (state, when, message, rollout, key),
            )

    def job(self, key: str) -> Job | None:
        rows = self._rows(f"SELECT {JOB_COLUMNS} FROM rollout.jobs WHERE key = %s", (key,))
        return to_job(rows[0]) if rows else None

    def jobs(self, limit: int = 100) -> list[Job]:
        rows = self._rows(f"SELECT {JOB_COLUMNS} FROM rollout.jobs ORDER BY created DESC, key DESC LIMIT %s", (limit,))
        return [to_job(row) for row in rows]

    def enqueue_deliveries(self, deliveries: list[Delivery]) -> int:
        # By id: two processes enqueuing the same ones wait for each other's rows in one order,
        # never each for the other's (a deadlock the server would end by failing one).
        rows = [delivery_row(d) for d in sorted(deliveries, key=lambda d: d.id)]
        if not rows:
            return 0
        with self._tx("write") as db:
            cursor = db.cursor()
            cursor.executemany(_ENQUEUE, rows)
            return max(cursor.rowcount, 0)  # the sum over the rows: those of a taken id add 0

    def claim_deliveries(self, now: float, claimer: str, hold: float, limit: int) -> list[Delivery]:
        with self._tx("write") as db:
            rows = db.execute(
                _CLAIM_DELIVERIES, {"claimer": claimer, "until": now + hold, "now": now, "limit": limit}
            ).fetchall()
        return in_claim_order([to_delivery(row) for row in rows])

    def finish_delivery(
        self, delivery_id: str, state: str, attempts: int, next_attempt: float, error: str, when: float
    ) -> None:
        with self._tx("write") as db:
            db.execute(
                "UPDATE rollout.deliveries SET state = %s, attempts = %s, next_attempt = %s, last_error = %s, "
                "updated = %s, claimed_by = '', claimed_until = 0 WHERE id = %s",
                (state, attempts, next_attempt, error, when, delivery_id),
            )

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        rows = self._rows(
            f"SELECT {DELIVERY_COLUMNS} FROM rollout.deliveries ORDER BY seq DESC, hook DESC LIMIT %s", (limit,)
        )
        return [to_delivery(row) for row in rows]
