"""The agent part of the state (``rollout.state.agents``) in SQL that SQLite and PostgreSQL share.

A backend says how it writes and reads (``_agent_write``, ``_agent_read``), its placeholder and
the schema its tables live in; the statements are the same. Blobs are inserted with ``ON
CONFLICT DO NOTHING``: two publishers of one bundle at once store it once.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from rollout.state.agents import AgentOrder, AgentStore, Heartbeat, OrderState
from rollout.state.rows import IN_CHUNK, chunks

ORDER_COLUMNS = "id, plant, rollout, action, body, state, created, taken, result, updated"
Run = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
"""Runs one statement inside the open transaction and returns its rows."""


def _order(row: tuple[Any, ...]) -> AgentOrder:
    taken = None if row[7] is None else float(row[7])
    return AgentOrder(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]), float(row[6]),
        taken, None if row[8] is None else str(row[8]), float(row[9]),
    )  # fmt: skip


class SqlAgents(AgentStore):
    """``AgentStore`` over a backend's transactions; the SQLite and PostgreSQL journals mix it in."""

    _agent_mark: str = "?"
    _agent_schema: str = ""

    @abstractmethod
    def _agent_write(self) -> AbstractContextManager[Run]:
        """One write transaction."""

    @abstractmethod
    def _agent_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query."""

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self._agent_mark).replace("@", self._agent_schema)

    def _any(self, column: str, values: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        """``column`` is one of ``values``: a mark each here; PostgreSQL binds one array, so that the
        statement's text stays the same (parsed and prepared once, not once a look)."""
        return f"{column} IN ({', '.join('?' for _ in values)})", tuple(values)

    def _pairs(self, pairs: Sequence[tuple[str, int]]) -> tuple[str, tuple[Any, ...]]:
        """The rows (order id, seq) of a ``WITH w (o, s)``; PostgreSQL binds two arrays instead."""
        return "VALUES " + ", ".join("(?, ?)" for _ in pairs), tuple(x for pair in pairs for x in pair)

    def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        if not blobs:
            return
        insert = self._sql("INSERT INTO @blobs (hash, data) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING")
        with self._agent_write() as run:
            for digest, data in sorted(blobs.items()):
                run(insert, (digest, data))

    def missing_blobs(self, hashes: Sequence[str]) -> set[str]:
        wanted = sorted(set(hashes))
        kept: set[str] = set()
        for chunk in chunks(wanted):
            where, args = self._any("hash", chunk)
            kept |= {str(r[0]) for r in self._agent_read(self._sql(f"SELECT hash FROM @blobs WHERE {where}"), args)}
        return set(wanted) - kept

    def blob(self, digest: str) -> bytes | None:
        rows = self._agent_read(self._sql("SELECT data FROM @blobs WHERE hash = ?"), (digest,))
        return bytes(rows[0][0]) if rows else None

    def publish(self, order: AgentOrder, blobs: Sequence[str]) -> AgentOrder:
        insert = self._sql(
            f"INSERT INTO @agent_orders ({ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING"
        )
        need = self._sql("INSERT INTO @order_blobs (order_id, hash) VALUES (?, ?) ON CONFLICT DO NOTHING")
        with self._agent_write() as run:
            row = (order.id, order.plant, order.rollout, order.action, order.body, "pending", order.created)
            run(insert, (*row, None, None, order.created))
            for digest in sorted(set(blobs)):
                run(need, (order.id, digest))
            found = run(self._sql(f"SELECT {ORDER_COLUMNS} FROM @agent_orders WHERE id = ?"), (order.id,))
        return _order(found[0])

    def order(self, order_id: str) -> AgentOrder | None:
        rows = self._agent_read(self._sql(f"SELECT {ORDER_COLUMNS} FROM @agent_orders WHERE id = ?"), (order_id,))
        return _order(rows[0]) if rows else None

    def orders(self, plant: str | None = None, rollout: str | None = None) -> list[AgentOrder]:
        where, args = [], []
        for column, value in (("plant", plant), ("rollout", rollout)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = self._sql(f"SELECT {ORDER_COLUMNS} FROM @agent_orders {clause} ORDER BY created, id")
        return [_order(r) for r in self._agent_read(sql, tuple(args))]

    def next_order(self, plant: str) -> AgentOrder | None:
        sql = self._sql(
            f"SELECT {ORDER_COLUMNS} FROM @agent_orders WHERE plant = ? AND state IN ('pending', 'taken') "
            "ORDER BY created, id LIMIT 1"
        )
        rows = self._agent_read(sql, (plant,))
        return _order(rows[0]) if rows else None

    def take_order(self, order_id: str, agent: str) -> AgentOrder | None:
        now = time.time()
        sql = self._sql(
            "UPDATE @agent_orders SET state = 'taken', taken = ?, updated = ? "
            f"WHERE id = ? AND state IN ('pending', 'taken') RETURNING {ORDER_COLUMNS}"
        )
        with self._agent_write() as run:
            rows = run(sql, (now, now, order_id))
        return _order(rows[0]) if rows else None

    def finish_order(self, order_id: str, state: str, result: str | None) -> bool:
        if state not in ("done", "abandoned"):
            raise ValueError(f"an order is finished as done or abandoned, not {state!r}")
        sql = self._sql(
            "UPDATE @agent_orders SET state = ?, result = ?, updated = ? "
            "WHERE id = ? AND state IN ('pending', 'taken') RETURNING id"
        )
        with self._agent_write() as run:
            return bool(run(sql, (state, result, time.time(), order_id)))

    def order_needs(self, plant: str, digest: str) -> bool:
        sql = self._sql(
            "SELECT 1 FROM @order_blobs b JOIN @agent_orders o ON o.id = b.order_id "
            "WHERE o.plant = ? AND b.hash = ? LIMIT 1"
        )
        return bool(self._agent_read(sql, (plant, digest)))

    def add_order_events(self, order_id: str, events: Sequence[tuple[int, str]]) -> int:
        insert = self._sql(
            "INSERT INTO @order_events (order_id, seq, body) VALUES (?, ?, ?) ON CONFLICT (order_id, seq) DO NOTHING"
        )
        with self._agent_write() as run:
            for seq, body in events:
                if seq < 1:
                    raise ValueError(f"an agent's event seq starts at 1, not {seq}")
                run(insert, (order_id, seq, body))
            # the highest seq with every seq before it kept: count = max when nothing is missing
            rows = run(self._sql("SELECT seq FROM @order_events WHERE order_id = ? ORDER BY seq"), (order_id,))
        through = 0
        for (seq,) in rows:
            if int(seq) != through + 1:
                break
            through = int(seq)
        return through

    def order_events(self, order_id: str, after: int = 0) -> list[tuple[int, str]]:
        sql = self._sql("SELECT seq, body FROM @order_events WHERE order_id = ? AND seq > ? ORDER BY seq")
        return [(int(r[0]), str(r[1])) for r in self._agent_read(sql, (order_id, after))]

    def events_of_orders(self, after: Mapping[str, int]) -> dict[str, list[tuple[int, str]]]:
        found: dict[str, list[tuple[int, str]]] = {}
        for chunk in chunks(sorted(after)):
            pairs, args = self._pairs([(oid, int(after[oid])) for oid in chunk])
            sql = self._sql(
                f"WITH w (o, s) AS ({pairs}) SELECT e.order_id, e.seq, e.body FROM @order_events e "
                "JOIN w ON e.order_id = w.o AND e.seq > w.s ORDER BY e.order_id, e.seq"
            )
            for oid, seq, body in self._agent_read(sql, args):
                found.setdefault(str(oid), []).append((int(seq), str(body)))
        return found

    def order_states(self, order_ids: Sequence[str]) -> dict[str, OrderState]:
        found: dict[str, OrderState] = {}
        for chunk in chunks(sorted(set(order_ids))):
            where, args = self._any("id", chunk)
            sql = self._sql(f"SELECT id, state, taken, result FROM @agent_orders WHERE {where}")
            for oid, state, taken, result in self._agent_read(sql, args):
                found[str(oid)] = OrderState(str(oid), str(state), None if taken is None else float(taken), result)
        return found

    def open_plants(self, plants: Sequence[str]) -> set[str]:
        wanted = set(plants)
        if not wanted:
            return set()
        if len(wanted) <= IN_CHUNK:
            where, args = self._any("plant", sorted(wanted))
            sql = self._sql(f"SELECT DISTINCT plant FROM @agent_orders WHERE {where} AND state IN ('pending', 'taken')")
            return {str(r[0]) for r in self._agent_read(sql, args)}
        # more plants than one statement asks about (a server's ten thousand waiting agents): the
        # open orders are the few in flight, so one read of them all beats a statement a chunk
        sql = self._sql("SELECT DISTINCT plant FROM @agent_orders WHERE state IN ('pending', 'taken')")
        return {str(r[0]) for r in self._agent_read(sql)} & wanted

    def beat(self, *beats: Heartbeat) -> None:
        if not beats:
            return
        sql = self._sql(
            "INSERT INTO @heartbeats (plant, agent, at, detail) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (plant) DO UPDATE SET agent = excluded.agent, at = excluded.at, detail = excluded.detail"
        )
        with self._agent_write() as run:
            for beat in beats:
                run(sql, (beat.plant, beat.agent, beat.at, beat.detail))

    def heartbeats(self) -> dict[str, Heartbeat]:
        rows = self._agent_read(self._sql("SELECT plant, agent, at, detail FROM @heartbeats ORDER BY plant"))
        return {str(r[0]): Heartbeat(str(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows}


AGENT_TABLES = (
    "CREATE TABLE IF NOT EXISTS @blobs (hash TEXT PRIMARY KEY, data {blob} NOT NULL)",
    """CREATE TABLE IF NOT EXISTS @agent_orders (
        id TEXT PRIMARY KEY, plant TEXT NOT NULL, rollout TEXT NOT NULL, action TEXT NOT NULL,
        body TEXT NOT NULL, state TEXT NOT NULL, created {real} NOT NULL, taken {real},
        result TEXT, updated {real} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS agent_orders_open ON @agent_orders (plant, state, created)",
    """CREATE TABLE IF NOT EXISTS @order_blobs (
        order_id TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (order_id, hash)
    )""",
    "CREATE INDEX IF NOT EXISTS order_blobs_by_hash ON @order_blobs (hash)",
    """CREATE TABLE IF NOT EXISTS @order_events (
        order_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (order_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS @heartbeats (
        plant TEXT PRIMARY KEY, agent TEXT NOT NULL, at {real} NOT NULL, detail TEXT NOT NULL
    )""",
)
"""The agent tables, with ``@`` for the schema, ``{blob}`` and ``{real}`` for the backend's types."""


def agent_tables(schema: str, blob: str, real: str) -> list[str]:
    """The statements that make the agent tables on one backend."""
    return [s.replace("@", schema).format(blob=blob, real=real) for s in AGENT_TABLES]
