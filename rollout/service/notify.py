"""Webhooks told of what a person acts on, from a queue in the state. Nothing here prints or exits.

The journal is the source: ``enqueue_after`` turns the events after a seq into one delivery
per (webhook, event), named ``<hook>:<seq>``, so any number of processes following one state
(the CLI's verbs, every console instance) queue each once. ``deliver_due`` claims what is due
and POSTs it; a failure (no connection, no answer in time, a status other than 2xx) is recorded
on the delivery with the next try (``core.notifications.retry_delay``), and after the last try
it is ``failed``. The background thread of ``start`` never raises into the rollout it watches:
a receiver that hangs or answers 500 costs a recorded failure and nothing else.

Secrets stay out of what is stored and returned: headers are taken from ``rollout.yaml`` at
each POST (never queued), and an error's text never holds the URL or a header's value.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from rollout.config.models.notify import Webhook, shown_url
from rollout.config.project import Project
from rollout.core.clock import Clock, SystemClock
from rollout.core.notifications import body, notice, retry_delay
from rollout.service.state import existing_state
from rollout.state.access import AccessStore, Delivery
from rollout.state.journal import JournalError, JournalEvent, RolloutRecord

TICK = 0.2
"""Longest wait on the journal: how soon the thread sees a stop, a due retry or a new event."""
MAX_IN_FLIGHT = 8
"""POSTs at once: a receiver that hangs holds one of them, not the others' deliveries."""
GRACE = 2.0
"""What a verb's end waits for deliveries still on their way; the rest stay queued."""
USER_AGENT = "rollout-notify/1"


class NotifyState(Protocol):
    """What the notifier needs of the state: the journal's events and the outbox of ``AccessStore``."""

    def last_seq(self) -> int: ...

    def events_after(self, seq: int, rollout: str | None = None) -> list[JournalEvent]: ...

    def wait(self, after_seq: int, timeout: float) -> bool: ...

    def rollout(self, rollout: str) -> RolloutRecord | None: ...

    def enqueue_deliveries(self, deliveries: list[Delivery]) -> int: ...

    def claim_deliveries(self, now: float, claimer: str, hold: float, limit: int) -> list[Delivery]: ...

    def finish_delivery(
        self, delivery_id: str, state: str, attempts: int, next_attempt: float, error: str, when: float
    ) -> None: ...

    def deliveries(self, limit: int = 100) -> list[Delivery]: ...

    def close(self) -> None: ...


class Deliveries(Protocol):
    """A state that keeps the outbox, for reading it."""

    def deliveries(self, limit: int = 100) -> list[Delivery]: ...


@dataclass(frozen=True)
class Attempt:
    """The result of one POST of a delivery, as recorded."""

    delivery: str
    hook: str
    state: str
    """``delivered``, ``pending`` (tried again at ``next_attempt``) or ``failed`` (no more tries)."""
    attempts: int
    next_attempt: float
    error: str


def recent(journal: Deliveries, limit: int = 100) -> list[Delivery]:
    """The latest deliveries, newest first, for a console or a report to show."""
    return journal.deliveries(limit)


def open_outbox(project: Project, clock: Clock | None = None) -> NotifyState | None:
    """The project's state as the notifier uses it, if the state exists (None: nothing has been
    recorded yet, and a verb refused as bad input must not create it)."""
    journal = existing_state(project, clock)
    if journal is None:
        return None
    if not isinstance(journal, AccessStore):
        raise JournalError(f"this state ({type(journal).__name__}) keeps no outbox for notifications")
    return journal


class Notifier:
    """Follows one state's journal and delivers its notifications to the project's webhooks."""

    def __init__(self, journal: NotifyState, project: Project, clock: Clock | None = None) -> None:
        self.journal = journal
        self.project = project.config.name
        self.hooks = {hook.name: hook for hook in project.config.notify}
        self.clock = clock or SystemClock()
        self.claimer = f"{socket.gethostname()}:{os.getpid()}"
        longest = max((hook.timeout for hook in self.hooks.values()), default=5.0)
        self.hold = 3 * longest + 10.0
        """How long a claim keeps others off a delivery: longer than one POST's three phases."""
        self._releases: dict[str, str | None] = {}
        self._guard = threading.Lock()
        self._problems: dict[str, int] = {}
        self._flying: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    # The queue: what the journal says, as deliveries.

    def enqueue_after(self, seq: int) -> int:
        """Queue a delivery per webhook for each event after ``seq`` it wants; returns the seq
        read up to (``seq`` itself when there was nothing new). Queueing twice adds nothing."""
        items = self.journal.events_after(seq)
        now = self.clock.time()
        queued = [d for item in items for d in self._deliveries(item, now)]
        if queued:
            self.journal.enqueue_deliveries(queued)
        return items[-1].seq if items else seq

    def _deliveries(self, item: JournalEvent, now: float) -> list[Delivery]:
        told = notice(item.event, self.project, item.rollout, item.seq, self._release(item))
        if told is None:
            return []
        return [
            Delivery(
                f"{hook.name}:{item.seq}",
                hook.name,
                item.seq,
                item.rollout,
                told.kind,
                body(told, hook.format),
                updated=now,
            )
            for hook in self.hooks.values()
            if hook.wants(told.kind)
        ]

    def _release(self, item: JournalEvent) -> str | None:
        if item.rollout not in self._releases:
            record = self.journal.rollout(item.rollout)
            self._releases[item.rollout] = record.release if record else None
        return self._releases[item.rollout] or item.event.release

    # Delivering.

    def deliver_due(self, limit: int = MAX_IN_FLIGHT) -> list[Attempt]:
        """Claim up to ``limit`` due deliveries, POST them at once and return their results (each
        bounded by its webhook's timeout; one the state failed to record is left out)."""
        results: list[Attempt] = []
        threads = [self._launch(d, results) for d in self._claim(limit)]
        for thread in threads:
            thread.join(self.hold)
        with self._guard:
            return list(results)

    def _claim(self, limit: int) -> list[Delivery]:
        if limit <= 0:
            return []
        return self.journal.claim_deliveries(self.clock.time(), self.claimer, self.hold, limit)

    def _launch(self, delivery: Delivery, results: list[Attempt] | None = None) -> threading.Thread:
        # A daemon: a POST that outlives the grace never keeps the process from ending.
        thread = threading.Thread(target=self._attempt, args=(delivery, results), name=delivery.id, daemon=True)
        with self._guard:
            self._flying[delivery.id] = thread
        thread.start()
        return thread

    def _attempt(self, delivery: Delivery, results: list[Attempt] | None) -> None:
        try:
            hook = self.hooks.get(delivery.hook)
            error = post(hook, delivery.body) if hook else f"no webhook {delivery.hook!r} in rollout.yaml any more"
            attempt = self._record(delivery, error, give_up=hook is None)
            if results is not None:
                with self._guard:
                    results.append(attempt)
        except Exception as exc:  # the state failed: the claim lapses and the delivery is tried again
            self._keep(f"recording delivery {delivery.id}: {type(exc).__name__}: {exc}")
        finally:
            with self._guard:
                self._flying.pop(delivery.id, None)

    def _record(self, delivery: Delivery, error: str, give_up: bool) -> Attempt:
        attempts, now = delivery.attempts + 1, self.clock.time()
        delay = None if give_up else retry_delay(attempts)
        state = "delivered" if not error else "failed" if delay is None else "pending"
        following = now + delay if error and delay is not None else 0.0
        self.journal.finish_delivery(delivery.id, state, attempts, following, error, now)
        return Attempt(delivery.id, delivery.hook, state, attempts, following, error)

    # The background thread.

    def start(self, from_seq: int) -> None:
        """Follow the journal from ``from_seq`` in a daemon thread: queue and deliver until ``stop``."""
        self._thread = threading.Thread(target=self._run, args=(from_seq,), name="rollout-notifier", daemon=True)
        self._thread.start()

    def stop(self, grace: float = GRACE) -> list[str]:
        """Queue what was recorded up to now, give the deliveries on their way ``grace`` seconds,
        and return what went wrong meanwhile (deliveries' failures are on the deliveries). What is
        not delivered by then stays queued for the next process that delivers."""
        self._deadline = time.monotonic() + grace
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
        with self._guard:
            flying = list(self._flying.values())
        for thread in flying:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        with self._guard:
            left = sorted(self._flying)
            problems = [f"{p} (x{n})" if n > 1 else p for p, n in self._problems.items()]
        if left:  # their claims lapse and the next process that delivers tries them again
            problems.append(f"not answered within {grace:g}s, left queued: {', '.join(left)}")
        return problems

    def _run(self, after: int) -> None:
        while True:
            last = self._stop.is_set()  # one more pass after the stop: the rollout's end is told too
            try:
                after, failed = self.enqueue_after(after), False
            except Exception as exc:  # tried again from the same seq: queueing is idempotent
                self._keep(f"reading the journal: {type(exc).__name__}: {exc}")
                failed = True
            self._dispatch()
            if last:
                return
            if failed:
                self._stop.wait(TICK)  # a broken state is not asked again at once
            else:
                self._pause(after)

    def _dispatch(self) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return
        with self._guard:
            free = MAX_IN_FLIGHT - len(self._flying)
        try:
            for delivery in self._claim(free):
                self._launch(delivery)
        except Exception as exc:
            self._keep(f"claiming deliveries: {type(exc).__name__}: {exc}")

    def _pause(self, after: int) -> None:
        try:
            self.journal.wait(after, TICK)
        except Exception as exc:
            self._keep(f"waiting for events: {type(exc).__name__}: {exc}")
            self._stop.wait(TICK)  # a broken state is not asked again at once

    def _keep(self, problem: str) -> None:
        with self._guard:
            if problem in self._problems or len(self._problems) < 20:
                self._problems[problem] = self._problems.get(problem, 0) + 1


def post(hook: Webhook, payload: dict[str, Any]) -> str:
    """POST ``payload`` to ``hook``: '' when it answered 2xx, else why not (no secret in it)."""
    import httpx  # here, not at the top: only a verb that notifies pays for loading it

    headers = {"User-Agent": USER_AGENT, **hook.headers}
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(hook.timeout), follow_redirects=False) as client,
            client.stream("POST", hook.url, json=payload, headers=headers) as answer,
        ):
            status = answer.status_code  # the body is not read: a receiver cannot trickle it forever
    except httpx.TimeoutException as exc:
        return _scrubbed(hook, f"no answer within {hook.timeout:g}s ({type(exc).__name__})")
    except Exception as exc:
        return _scrubbed(hook, f"{type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return ""
    moved = " (redirects are not followed)" if 300 <= status < 400 else ""
    return f"answered HTTP {status}{moved}"


def _scrubbed(hook: Webhook, text: str) -> str:
    """``text`` without the webhook's URL (its path may be its token) or a header's value."""
    text = text.replace(hook.url, f"<webhook {hook.name}>").replace(shown_url(hook.url), f"<webhook {hook.name}>")
    for value in hook.headers.values():
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text[:500]


@contextmanager
def notifying(project: Project, grace: float = GRACE, clock: Clock | None = None) -> Iterator[list[str]]:
    """The project's webhooks told while the body runs, then ``grace`` seconds for what is on its
    way. Yields the list that holds, after the body, what went wrong with notifying (never raised).

    A state that does not exist yet is not created here (a verb refused as bad input leaves
    none); the first deploy's events are queued from the journal's start once the body ran."""
    problems: list[str] = []
    if not project.config.notify:
        yield problems
        return
    notifier = _started(project, clock, problems, from_start=False)
    try:
        yield problems
    finally:
        if notifier is None and not problems:
            notifier = _started(project, clock, problems, from_start=True)
        if notifier is not None:
            problems.extend(notifier.stop(grace))
            try:
                notifier.journal.close()
            except Exception as exc:  # the verb's result stands; what failed here is only said
                problems.append(f"closing the notifier's state: {type(exc).__name__}: {exc}")


def _started(project: Project, clock: Clock | None, problems: list[str], from_start: bool) -> Notifier | None:
    try:
        journal = open_outbox(project, clock)
        if journal is None:
            return None
        notifier = Notifier(journal, project, clock)
        notifier.start(0 if from_start else journal.last_seq())
        return notifier
    except Exception as exc:
        problems.append(f"notifications are off for this run: {type(exc).__name__}: {exc}")
        return None
