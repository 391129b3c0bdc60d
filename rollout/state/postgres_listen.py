"""Hearing of new events as they commit: LISTEN on a connection of its own, polling when it is lost.

Every append announces its last seq with ``NOTIFY rollout_events, '<seq>'`` in its own
transaction (``announce``): the payload is only the id, as notifications are capped at
8,000 bytes, and a listener reads the events themselves. The listener's connection is not
the pool's: a pooled connection is lent to one transaction at a time and would miss what
arrives while it is lent out, or hand another borrower notifications it never asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import Connection, sql

CHANNEL = "rollout_events"
POLL_INTERVAL = 0.5
"""Seconds between two looks at the newest seq while the listening connection is lost."""
RECONNECT_EVERY = 5.0
"""Seconds between two attempts to listen again: a server that is down is not hammered."""


def announce(db: Connection[Any], seqs: list[int]) -> None:
    """Tell listeners, at this transaction's commit, that events up to ``max(seqs)`` exist."""
    if seqs:
        db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(max(seqs))))


class Listener:
    """Waits for events after a seq: told by NOTIFY while its connection listens, else by
    ``last_seq`` (a cheap query) every ``POLL_INTERVAL``."""

    def __init__(self, conninfo: str, last_seq: Callable[[], int]) -> None:
        self._conninfo = conninfo
        self._last_seq = last_seq
        self._db: Connection[Any] | None = None
        self._retry_at = 0.0
        self._heard = 0
        """The newest seq known (announced, or read when listening began): a caller asking about an
        older seq learns at once that a later event exists."""
        self._guard = threading.Lock()

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Whether an event after ``after_seq`` may exist, within ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._guard:
            while True:
                if self._db is None:
                    self._listen()
                    # Polling, or listening anew: what committed before LISTEN was never announced.
                    self._heard = max(self._heard, self._last_seq())
                if self._heard > after_seq:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._db is not None:
                    self._hear(left)
                else:
                    time.sleep(min(POLL_INTERVAL, left))

    def _listen(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        try:
            db = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error:
            self._retry_at = time.monotonic() + RECONNECT_EVERY
            return
        try:
            db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except psycopg.Error:
            db.close()
            self._retry_at = time.monotonic() + RECONNECT_EVERY
            return
        self._db = db

    def _hear(self, timeout: float) -> None:
        """Take the notifications that arrive within ``timeout`` (at least one packet's worth)."""
        assert self._db is not None
        try:
            # Read to the generator's end: closing it early would drop the rest of a packet.
            notes = list(self._db.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error:  # lost (a restart, a terminated backend): poll until it listens again
            self.close()
            self._retry_at = time.monotonic() + RECONNECT_EVERY
            return
        for note in notes:
            if note.payload.isdigit():
                self._heard = max(self._heard, int(note.payload))

    def close(self) -> None:
        """Stop listening; the next ``wait`` listens anew."""
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except psycopg.Error:
                pass
