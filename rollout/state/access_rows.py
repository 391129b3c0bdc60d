"""How the access records (``rollout.state.access``) become table rows and back: the same for
every SQL backend. Plants, a job's params and a delivery's body are JSON text, as events'
details are (``rollout.state.rows``)."""

from __future__ import annotations

import json
from typing import Any

from rollout.state.access import Delivery, Job, Session, User

USER_COLUMNS = "name, role, plants, token_hash, created, created_by, revoked"
SESSION_COLUMNS = "token_hash, user_name, created, expires"
JOB_COLUMNS = "key, kind, params, user_name, reason, created, state, rollout, message, updated, runner"
DELIVERY_COLUMNS = (
    "id, hook, seq, rollout, kind, body, state, attempts, next_attempt, last_error, updated, claimed_by, claimed_until"
)
# The columns a new row sets when a revoked user's name is given again (all but the key).
USER_REPLACED = ", ".join(f"{c} = excluded.{c}" for c in USER_COLUMNS.split(", ")[1:])


def marks(columns: str, mark: str) -> str:
    """One placeholder ``mark`` per column of ``columns``: ``?, ?, ?`` or ``%s, %s, %s``."""
    return ", ".join([mark] * len(columns.split(",")))


def qualified(columns: str, alias: str) -> str:
    """``columns`` each prefixed with a table's ``alias`` (for a join)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def user_row(user: User) -> tuple[Any, ...]:
    plants = json.dumps(list(user.plants))
    return (user.name, user.role, plants, user.token_hash, user.created, user.created_by, user.revoked)


def to_user(row: tuple[Any, ...]) -> User:
    name, role, plants, token_hash, created, created_by, revoked = row
    return User(name, role, tuple(json.loads(plants)), token_hash, created, created_by, revoked)


def session_row(session: Session) -> tuple[Any, ...]:
    return (session.token_hash, session.user, session.created, session.expires)


def to_session(row: tuple[Any, ...]) -> Session:
    token_hash, user, created, expires = row
    return Session(token_hash, user, created, expires)


def job_row(job: Job) -> tuple[Any, ...]:
    params = json.dumps(job.params, sort_keys=True)
    j = job
    return (j.key, j.kind, params, j.user, j.reason, j.created, j.state, j.rollout, j.message, j.updated, j.runner)


def to_job(row: tuple[Any, ...]) -> Job:
    key, kind, params, user, reason, created, state, rollout, message, updated, runner = row
    return Job(key, kind, json.loads(params), user, reason, created, state, rollout, message, updated, runner)


def delivery_row(delivery: Delivery) -> tuple[Any, ...]:
    d = delivery
    body = json.dumps(d.body, sort_keys=True)
    return (
        d.id,
        d.hook,
        d.seq,
        d.rollout,
        d.kind,
        body,
        d.state,
        d.attempts,
        d.next_attempt,
        d.last_error,
        d.updated,
        d.claimed_by,
        d.claimed_until,
    )


def to_delivery(row: tuple[Any, ...]) -> Delivery:
    did, hook, seq, rollout, kind, body, *rest = row
    return Delivery(did, hook, seq, rollout, kind, json.loads(body), *rest)


def in_claim_order(deliveries: list[Delivery]) -> list[Delivery]:
    """Oldest first (by seq, then hook): what ``claim_deliveries`` returns, whatever order the
    database's ``RETURNING`` gave."""
    return sorted(deliveries, key=lambda d: (d.seq, d.hook))
