"""The agent's local SQLite outbox: the orders it took, every event it announced (before the step
it announces, like the journal), and the results, kept until the centre has them.

A link cut mid-layer costs nothing: the plant goes on, its events wait here and are sent in
order when the link returns. An agent killed -9 finds here the order it was running and what it
had announced, and resumes the plant from what its hosts run."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY, body TEXT NOT NULL, state TEXT NOT NULL, result TEXT, delivered INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        order_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, seq)
    )""",
)


class Outbox:
    """One agent's orders and their events, safe to use from its threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an announced step survives a power cut of the node
        self._lock = threading.Lock()
        with self._lock:
            for statement in _SCHEMA:
                self._db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def take(self, order_id: str, body: str) -> None:
        """Keep an order this agent runs (again after a restart: kept once)."""
        self._write(
            "INSERT INTO orders (id, body, state) VALUES (?, ?, 'running') ON CONFLICT (id) DO NOTHING",
            (order_id, body),
        )

    def state(self, order_id: str) -> str | None:
        rows = self._rows("SELECT state FROM orders WHERE id = ?", (order_id,))
        return str(rows[0][0]) if rows else None

    def running(self) -> list[tuple[str, str]]:
        """(id, body) of orders taken and not finished: a restarted agent goes on with them."""
        return [
            (str(r[0]), str(r[1]))
            for r in self._rows("SELECT id, body FROM orders WHERE state = 'running' ORDER BY rowid")
        ]

    def append(self, order_id: str, event: dict[str, Any]) -> int:
        """Keep one event of the order under the next seq, on disk before the step it announces."""
        with self._lock:
            row = self._db.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE order_id = ?", (order_id,)
            ).fetchone()
            seq = int(row[0])
            self._db.execute(
                "INSERT INTO events (order_id, seq, body) VALUES (?, ?, ?)", (order_id, seq, json.dumps(event))
            )
        return seq

    def kinds(self, order_id: str) -> list[str]:
        """The kinds of the order's events so far (what a killed run had begun)."""
        return [
            str(json.loads(r[0]).get("kind"))
            for r in self._rows("SELECT body FROM events WHERE order_id = ? ORDER BY seq", (order_id,))
        ]

    def last_detail(self, order_id: str, kind: str) -> dict[str, Any] | None:
        """The detail of the order's latest event of ``kind`` (what the plant ran before: ``plant.before``)."""
        found = None
        for (body,) in self._rows("SELECT body FROM events WHERE order_id = ? ORDER BY seq", (order_id,)):
            event = json.loads(body)
            if event.get("kind") == kind:
                found = dict(event.get("detail") or {})
        return found

    def finish(self, order_id: str, result: str) -> None:
        self._write("UPDATE orders SET state = 'finished', result = ? WHERE id = ?", (result, order_id))

    def unsent(self, limit: int) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """Events not yet confirmed by the centre, by order, each order's in seq order."""
        rows = self._rows("SELECT order_id, seq, body FROM events WHERE sent = 0 ORDER BY rowid LIMIT ?", (limit,))
        out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for order_id, seq, body in rows:
            out.setdefault(str(order_id), []).append((int(seq), json.loads(body)))
        return out

    def sent(self, order_id: str, through: int) -> None:
        self._write("UPDATE events SET sent = 1 WHERE order_id = ? AND seq <= ?", (order_id, through))

    def undelivered(self) -> list[tuple[str, int, str]]:
        """(id, last seq, result) of finished orders whose result the centre does not have yet."""
        rows = self._rows(
            "SELECT o.id, (SELECT coalesce(max(seq), 0) FROM events e WHERE e.order_id = o.id), o.result "
            "FROM orders o WHERE o.state = 'finished' AND o.delivered = 0 ORDER BY o.rowid"
        )
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def delivered(self, order_id: str) -> None:
        self._write("UPDATE orders SET delivered = 1 WHERE id = ?", (order_id,))

    def pending(self) -> int:
        """How many events and results wait for the link."""
        events = self._rows("SELECT count(*) FROM events WHERE sent = 0")[0][0]
        results = self._rows("SELECT count(*) FROM orders WHERE state = 'finished' AND delivered = 0")[0][0]
        return int(events) + int(results)
