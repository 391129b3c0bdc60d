"""Connections to the PostgreSQL state: one psycopg pool per URL in a process, lent one
transaction at a time, with the driver's errors turned into ``JournalError``."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from rollout.state.journal import JournalError

# psycopg logs warnings of its own: the pool its failed connection attempts, a pipeline on a
# lost connection "error ignored terminating" it. With no handler configured Python would print
# them to stderr. The library never prints: the error reaches the caller as JournalError. The
# handler on "psycopg" covers "psycopg.pool" too (a child logger's records reach it).
logging.getLogger("psycopg").addHandler(logging.NullHandler())

IDLE_IN_TRANSACTION = "30s"
POOL_SIZE = 16
"""Connections per URL: one per plant worked on in parallel, each held for one short transaction."""
CONNECT_TIMEOUT = 10
"""Seconds a connection attempt may take, unless the URL says ``connect_timeout``."""
_QUICK_WAIT = 2.0
"""Seconds to wait for a pooled connection before asking the server directly why there is none."""
_BUSY_WAIT = 28.0
_CLOSE_WAIT = 5.0

Pool = ConnectionPool[Connection[Any]]


class _Pools:
    """One pool per URL in a process, shared by every journal opened on it: a verb opens the
    state several times, and each pool would connect anew and keep threads of its own."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._pools: dict[str, tuple[Pool, int]] = {}
        atexit.register(self.close_all)

    def take(self, conninfo: str) -> Pool:
        """The pool of ``conninfo``, opened (in the background) on first use."""
        with self._guard:
            pool, users = self._pools.get(conninfo, (None, 0))
            if pool is None:
                pool = ConnectionPool(
                    conninfo,
                    min_size=1,
                    max_size=POOL_SIZE,
                    kwargs={"autocommit": True},
                    configure=_configure,
                    open=False,
                )
                pool.open(wait=False)
            self._pools[conninfo] = (pool, users + 1)
            return pool

    def give_back(self, conninfo: str) -> None:
        """One user fewer; the last one closes the pool."""
        with self._guard:
            pool, users = self._pools.pop(conninfo)
            if users > 1:
                self._pools[conninfo] = (pool, users - 1)
                return
        pool.close(timeout=_CLOSE_WAIT)

    def close_all(self) -> None:
        with self._guard:
            pools = [pool for pool, _ in self._pools.values()]
            self._pools.clear()
        for pool in pools:
            pool.close(timeout=_CLOSE_WAIT)


POOLS = _Pools()


@contextmanager
def lend(pool: Pool, conninfo: str, doing: str) -> Iterator[Connection[Any]]:
    """A connection of ``pool`` for the block; a driver error in it becomes ``JournalError``
    ("cannot ``doing``: why"). A lost connection drains the pool: after a server restart
    every pooled connection is dead, and each would fail one more write."""
    db = _get(pool, conninfo, doing)
    try:
        yield db
    except psycopg.Error as exc:
        why = reason(exc)
        if db.broken:
            pool.drain()
            why = f"the connection to the server was lost ({why})"
        raise JournalError(f"cannot {doing}: {why}") from None
    finally:
        pool.putconn(db)


def _get(pool: Pool, conninfo: str, doing: str) -> Connection[Any]:
    """A connection from the pool, or the server's own reason why there is none.

    The pool would wait its whole timeout for a server that refuses or a database that was
    dropped; a direct attempt after a short wait tells which it is."""
    try:
        return pool.getconn(_QUICK_WAIT)
    except PoolTimeout:
        pass
    slow = ""
    try:
        psycopg.connect(conninfo).close()
    except psycopg.errors.ConnectionTimeout:
        # slow to answer is not a refusal: a loaded machine (a rollout of a thousand plants at
        # once) can take longer than the connect timeout; the pool may still hand one back
        slow = "; a new connection timed out too"
    except psycopg.Error as exc:
        raise JournalError(f"cannot {doing}: {reason(exc)}") from None
    try:  # the server answers (or is slow to): every pooled connection is busy, wait for one
        return pool.getconn(_BUSY_WAIT)
    except PoolTimeout:
        waited = _QUICK_WAIT + _BUSY_WAIT
        raise JournalError(f"cannot {doing}: no free connection within {waited:g} s{slow}") from None


def with_defaults(conninfo: str) -> str:
    """``conninfo`` with a bounded connect time and rollout's name in ``pg_stat_activity``,
    unless the URL says otherwise."""
    given = conninfo_to_dict(conninfo)
    defaults: dict[str, str | int] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "rollout"}
    return make_conninfo(conninfo, **{k: v for k, v in defaults.items() if k not in given})


def reason(exc: BaseException) -> str:
    """The server's or libpq's own words, on one line (connection errors span several)."""
    primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    if primary:
        return primary
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def _configure(conn: Connection[Any]) -> None:
    """A transaction left open (its process stopped or cut off) would hold the append lock and
    stall every writer: the server ends such a session after ``IDLE_IN_TRANSACTION``."""
    conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'")
