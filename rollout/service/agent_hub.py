"""One look at the state for every agent order a rollout waits on.

A rollout of a thousand agent plants at once used to have each plant's thread ask the state
for its order's new events and its state four times a second, and for every agent's heartbeat
every two seconds: thousands of queries a second that told nothing new. The hub asks once a
``POLL_S`` for all of them (the orders' states first, then their events: an order seen done
has every event it kept before its result in the same look) and hands each waiting thread what
is its own. A look that fails is handed to every waiter, which raises it as its own query did.
"""

from __future__ import annotations

import threading
import time

from rollout.state.agents import Heartbeat, OrderState
from rollout.state.journal import Journal

POLL_S = 0.25
"""How often the hub looks for the agents' events and results."""
BEAT_LOOK_S = 2.0
"""How often it looks at the agents' heartbeats."""


class OrderHub:
    """The orders a rollout follows, looked at together on one thread (started while any is followed)."""

    def __init__(self, journal: Journal, poll_s: float = POLL_S) -> None:
        self.journal = journal
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._after: dict[str, int] = {}
        """Order id -> the last seq fetched."""
        self._events: dict[str, list[tuple[int, str]]] = {}
        self._orders: dict[str, OrderState | None] = {}
        """Order id -> the order as the last look found it (None: not in the state)."""
        self._news: dict[str, threading.Event] = {}
        """Order id -> set by a look that brought the order new events or a new state."""
        self._beats: dict[str, Heartbeat] = {}
        self._beats_at = 0.0
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None

    def follow(self, order_id: str, after: int) -> None:
        """Start looking for the order's events after ``after``."""
        with self._cond:
            self._after[order_id] = after
            self._events[order_id] = []
            self._news[order_id] = threading.Event()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="agent orders")
                self._thread.start()

    def leave(self, order_id: str) -> None:
        with self._cond:
            self._after.pop(order_id, None)
            self._events.pop(order_id, None)
            self._orders.pop(order_id, None)
            self._news.pop(order_id, None)

    def take(self, order_id: str) -> list[tuple[int, str]]:
        """The order's events fetched since the last take, by seq."""
        with self._cond:
            self._raise()
            found, self._events[order_id] = self._events.get(order_id, []), []
            return found

    def order(self, order_id: str) -> OrderState | None:
        """The order as the last look found it (None: not in the state), waiting for the first look."""
        with self._cond:
            self._cond.wait_for(lambda: order_id in self._orders or self._error is not None)
            self._raise()
            return self._orders.get(order_id)

    def heartbeat(self, plant: str) -> Heartbeat | None:
        with self._cond:
            return self._beats.get(plant)

    def wait(self, order_id: str, timeout: float) -> None:
        """Until a look brings the order news (new events, a new state, a failure), or ``timeout``.
        Only that order's thread wakes: a thousand plants' threads woken by every look, four times
        a second, were most of a large rollout's work."""
        with self._cond:
            news = self._news.get(order_id)
        if news is not None:
            news.wait(timeout)
            news.clear()  # before the take that follows: news of a later look is kept for the next wait

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._after:
                    self._thread = None
                    return
                after = dict(self._after)
            began = time.monotonic()
            self._look(after)
            time.sleep(max(0.0, self.poll_s - (time.monotonic() - began)))

    def _look(self, after: dict[str, int]) -> None:
        try:
            orders = self.journal.order_states(list(after))  # states first: see the module's note
            events = self.journal.events_of_orders(after)
            beats = self.journal.heartbeats() if time.monotonic() - self._beats_at >= BEAT_LOOK_S else None
            error: Exception | None = None
        except Exception as exc:  # handed to the waiters, who raise it as their own query would have
            orders, events, beats, error = {}, {}, None, exc
        with self._cond:
            self._error = error
            woken = set(after) if error is not None else set()
            for oid in after:
                if oid in self._after and error is None:
                    found = orders.get(oid)
                    if oid not in self._orders or _changed(self._orders[oid], found):
                        woken.add(oid)
                    self._orders[oid] = found
            for oid, rows in events.items():
                if oid in self._after and rows:
                    self._events[oid].extend(rows)
                    self._after[oid] = rows[-1][0]
                    woken.add(oid)
            for oid in woken:
                if oid in self._news:
                    self._news[oid].set()
            if beats is not None:
                self._beats, self._beats_at = beats, time.monotonic()
            self._cond.notify_all()


def _changed(before: OrderState | None, now: OrderState | None) -> bool:
    if before is None or now is None:
        return before is not now
    return (before.state, before.taken) != (now.state, now.taken)
