"""What the state keeps besides events and leases: who may come in, their sessions, the
console's jobs and the notifications' outbox.

The console is stateless: every instance on one state reads and writes these, so two
instances see the same users, refuse a revoked token at once and start one job for one
idempotency key. Tokens are kept only as their SHA-256 (``token_hash``): a token is 256
random bits, so a plain hash is as strong as a slow one and costs nothing per request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("viewer", "plant-it", "release-engineer", "admin", "agent")
"""The roles of DESIGN.md; ``rollout.core.access`` says what each may do."""

JOB_STATES = ("queued", "running", "done", "failed")
DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class User:
    """A person, pipeline or agent allowed in, with the hash of its one token."""

    name: str
    role: str
    plants: tuple[str, ...]
    """The plants it is scoped to (``plant-it`` and ``agent``); empty for the other roles."""
    token_hash: str
    created: float
    created_by: str = ""
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the hash of its cookie's value, whose it is and until when."""

    token_hash: str
    user: str
    created: float
    expires: float


@dataclass(frozen=True)
class Job:
    """An action asked for in the console, run in the background by the instance that claimed it.

    ``key`` is the idempotency key the page sends: a double click or a second instance finds
    the job already claimed and shows that one instead of starting another.
    """

    key: str
    kind: str
    """rollback, approve, resume or abort."""
    params: dict[str, Any]
    user: str
    reason: str
    created: float
    state: str = "queued"
    rollout: str | None = None
    """The rollout or rollback it started or acted on, once known: its events are its progress."""
    message: str = ""
    updated: float = 0.0
    runner: str = ""
    """Which process runs it (``hostname:pid``)."""


@dataclass(frozen=True)
class Delivery:
    """One notification to one webhook, queued when its event was recorded."""

    id: str
    """``<hook>:<seq>``: one delivery per webhook and event, however many processes enqueue it."""
    hook: str
    seq: int
    rollout: str
    kind: str
    """What it tells: approval_needed, rolled_back, needs_attention, halted, aborted or finished."""
    body: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    updated: float = 0.0
    claimed_by: str = ""
    claimed_until: float = 0.0


class AccessStore(ABC):
    """Users, sessions, jobs and deliveries, as every backend keeps them (``tests/access_contract.py``);
    part of the one state interface, ``rollout.state.journal.Journal``.

    Each method is one transaction; a failed one raises ``JournalError`` and leaves nothing."""

    @abstractmethod
    def add_user(self, user: User) -> bool:
        """Record ``user``; False (and nothing changed) when an active user of that name exists.
        A revoked user of that name is replaced: the name is given a new role and token."""

    @abstractmethod
    def user(self, name: str) -> User | None:
        """The user of that name, revoked or not, or None."""

    @abstractmethod
    def user_by_token(self, token_hash: str) -> User | None:
        """The ACTIVE user whose token has that hash, or None (also for a revoked one)."""

    @abstractmethod
    def active_tokens(self, token_hashes: Sequence[str]) -> set[str]:
        """Those of ``token_hashes`` that are an active user's (a server re-checks the tokens it
        keeps in memory so, all in one look, instead of one query a request)."""

    @abstractmethod
    def users(self) -> list[User]:
        """Every user, revoked ones included, by name."""

    @abstractmethod
    def revoke_user(self, name: str, when: float) -> bool:
        """End the user's access at once: mark it revoked and end all its sessions, in one
        transaction. False when there is no active user of that name."""

    @abstractmethod
    def add_session(self, session: Session) -> None:
        """Record a new session (its hash is new)."""

    @abstractmethod
    def session(self, token_hash: str, now: float) -> tuple[Session, User] | None:
        """The unexpired session of that hash with its ACTIVE user, or None."""

    @abstractmethod
    def end_session(self, token_hash: str) -> None:
        """Forget that session (signing out); nothing happens if it is not there."""

    @abstractmethod
    def claim_job(self, job: Job) -> tuple[Job, bool]:
        """Record ``job`` unless a job of its key exists: (the stored job, True if it is this one).
        Two processes claiming one key at once: exactly one gets True."""

    @abstractmethod
    def update_job(self, key: str, state: str, when: float, message: str = "", rollout: str | None = None) -> None:
        """Move the job to ``state`` with ``message``; ``rollout`` is kept when None is given."""

    @abstractmethod
    def job(self, key: str) -> Job | None:
        """The job of that key, or None."""

    @abstractmethod
    def jobs(self, limit: int = 100) -> list[Job]:
        """The latest ``limit`` jobs, newest first."""

    @abstractmethod
    def enqueue_deliveries(self, deliveries: list[Delivery]) -> int:
        """Queue those whose id is new, in one transaction; returns how many were new."""

    @abstractmethod
    def claim_deliveries(self, now: float, claimer: str, hold: float, limit: int) -> list[Delivery]:
        """Up to ``limit`` pending deliveries due by ``now`` (``next_attempt <= now``) that no one
        holds (``claimed_until < now``), oldest first, marked held by ``claimer`` until
        ``now + hold``: two processes claiming at once never get the same one."""

    @abstractmethod
    def finish_delivery(
        self, delivery_id: str, state: str, attempts: int, next_attempt: float, error: str, when: float
    ) -> None:
        """Record an attempt's result and give up the claim: ``pending`` again (retry at
        ``next_attempt``), ``delivered`` or ``failed`` (no more retries)."""

    @abstractmethod
    def deliveries(self, limit: int = 100) -> list[Delivery]:
        """The latest ``limit`` deliveries, newest first (by seq, then hook)."""
