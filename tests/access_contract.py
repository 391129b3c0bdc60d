"""What every backend keeps of the access part of the state (``rollout.state.access``): users,
sessions, the console's jobs and the notifications' outbox.

A backend's test class subclasses ``AccessContract`` next to ``StateContract``; the same
``backend`` fixture serves both. The claims are contended for by real processes started at
once (an Event set when every one of them has opened the state).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pytest
from state_contract import SPAWN, START, WAIT, Backend, reap, spawn

from rollout.state.access import Delivery, Job, Session, User
from rollout.state.journal import Journal, JournalError
from rollout.state.url import open_url, parse_state_url

NOW = START.timestamp()
CLAIMERS = 6
"""Processes contending for one job's key."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def person(name: str, token: str, role: str = "admin", plants: tuple[str, ...] = ()) -> User:
    return User(name, role, plants, digest(token), NOW, "root")


def job(key: str, user: str, created: float = NOW) -> Job:
    return Job(key, "rollback", {"to": "v1", "plants": ["p1", "p2"]}, user, "broke the line", created)


def delivery(hook: str, seq: int, **changes: Any) -> Delivery:
    return Delivery(f"{hook}:{seq}", hook, seq, "r1", "finished", {"seq": seq, "text": "é\n"}, **changes)


def _open(url: str) -> Journal:
    return open_url(parse_state_url(url, Path("/")))


def watch_access(url: str, token_hash: str, cookie: str, now: float, revoked: Any, out: Any) -> None:
    """A child: report what its one open state says of a token and a session, before and after
    the parent revoked their user."""

    def seen() -> tuple[str | None, str | None]:
        found, session = journal.user_by_token(token_hash), journal.session(cookie, now)
        return (found.name if found else None, session[1].name if session else None)

    journal = _open(url)
    out.put(seen())
    if revoked.wait(WAIT):
        out.put(seen())


def claim_job_in_child(url: str, key: str, name: str, go: Any, out: Any) -> None:
    """A child: open the state, say so, claim ``key`` as ``name`` once told to go, report."""
    journal = _open(url)
    out.put(("ready", name))
    if not go.wait(WAIT):
        return
    try:
        stored, won = journal.claim_job(job(key, name))
    except JournalError as exc:  # reported, not raised: the parent would wait for a report in vain
        out.put((name, False, f"failed: {exc}"))
        return
    out.put((name, won, stored.user))


def claim_deliveries_in_child(url: str, name: str, rounds: int, go: Any, out: Any) -> None:
    """A child: once told to go, claim one delivery at a time (each claim contends for the same
    oldest one) until none is left (at most ``rounds`` claims); report the ids it got."""
    journal = _open(url)
    out.put(("ready", name))
    if not go.wait(WAIT):
        return
    got: list[str] = []
    try:
        for _ in range(rounds):
            batch = journal.claim_deliveries(NOW, name, 3600.0, 1)
            if not batch:
                break
            got += [d.id for d in batch]
    except JournalError as exc:
        got.append(f"failed: {exc}")
    out.put((name, got))


def contend(children: list[SpawnProcess], go: Any, out: Any) -> list[Any]:
    """Start the children's claims at once, when every one has opened the state; their reports."""
    ready = [out.get(timeout=WAIT) for _ in children]
    assert all(r[0] == "ready" for r in ready), f"not every child opened the state: {ready}"
    go.set()
    return [out.get(timeout=WAIT) for _ in children]


class AccessContract:
    """The tests; a subclass provides the ``backend`` fixture."""

    def test_a_user_is_added_once_and_a_revoked_name_is_given_anew(self, backend: Backend) -> None:
        journal = backend.open()
        ann = person("ann", "t-ann")
        assert journal.add_user(ann) is True and journal.user("ann") == ann
        assert journal.add_user(person("ann", "t-other", "viewer")) is False, "an active user was replaced"
        assert journal.user("ann") == ann and journal.user_by_token(digest("t-other")) is None
        assert journal.revoke_user("ann", NOW + 5) is True
        assert journal.revoke_user("ann", NOW + 6) is False, "a revoked user was revoked again"
        assert journal.revoke_user("nobody", NOW) is False and journal.user("nobody") is None
        assert journal.user("ann") == User("ann", "admin", (), digest("t-ann"), NOW, "root", NOW + 5)
        again = person("ann", "t-ann-2", "plant-it", ("p1", "p2"))
        assert journal.add_user(again) is True, "a revoked name could not be given again"
        assert journal.user("ann") == again and again.active
        journal.add_user(person("bob", "t-bob", "viewer"))
        journal.revoke_user("bob", NOW + 7)
        assert [(u.name, u.role, u.revoked) for u in journal.users()] == [
            ("ann", "plant-it", None),
            ("bob", "viewer", NOW + 7),
        ], journal.users()

    def test_a_token_finds_only_an_active_user(self, backend: Backend) -> None:
        journal = backend.open()
        agent = person("line-agent", "t-agent", "agent", ("p3",))
        journal.add_user(agent)
        journal.add_user(person("ann", "t-ann"))
        assert journal.user_by_token(digest("t-agent")) == agent and agent.plants == ("p3",)
        assert journal.user_by_token(digest("t-nothing")) is None
        journal.revoke_user("line-agent", NOW + 1)
        assert journal.user_by_token(digest("t-agent")) is None, "a revoked user's token still lets it in"
        assert backend.open().user_by_token(digest("t-ann")) == person("ann", "t-ann")

    def test_the_active_tokens_of_many_are_told_in_one_look(self, backend: Backend) -> None:
        journal = backend.open()
        for n in range(3):
            journal.add_user(person(f"agent-{n}", f"t-{n}", "agent", (f"p{n}",)))
        journal.revoke_user("agent-1", NOW + 1)
        asked = [digest(f"t-{n}") for n in range(3)] + [digest(f"t-unknown-{n}") for n in range(1200)]
        assert backend.open().active_tokens(asked) == {digest("t-0"), digest("t-2")}
        assert journal.active_tokens([]) == set()
        journal.add_user(person("agent-1", "t-1b", "agent", ("p1",)))  # the name given anew: its old token stays out
        assert journal.active_tokens([digest("t-1"), digest("t-1b")]) == {digest("t-1b")}

    def test_a_revoke_ends_every_session_at_once_in_every_process(self, backend: Backend) -> None:
        journal, other = backend.open(), backend.open()
        journal.add_user(person("ann", "t-ann"))
        for cookie in ("c1", "c2"):
            journal.add_session(Session(digest(cookie), "ann", NOW, NOW + 3600))
        revoked, out = SPAWN.Event(), SPAWN.Queue()
        child = spawn(watch_access, backend.url, digest("t-ann"), digest("c1"), NOW + 1, revoked, out)
        try:
            before = out.get(timeout=WAIT)
            assert other.session(digest("c2"), NOW + 1) is not None
            assert journal.revoke_user("ann", NOW + 1) is True
            revoked.set()
            after = out.get(timeout=WAIT)
        finally:
            reap([child])
        assert before == ("ann", "ann") and after == (None, None), f"another process saw {before}, then {after}"
        assert other.session(digest("c2"), NOW + 1) is None, "another connection still sees a revoked session"
        journal.add_session(Session(digest("c3"), "ann", NOW + 1, NOW + 3600))  # one racing the revoke
        assert journal.session(digest("c3"), NOW + 2) is None, "a session of a revoked user lets it in"
        journal.add_user(person("ann", "t-ann-2"))  # active again: a session left behind would let the old one in
        assert journal.session(digest("c1"), NOW + 2) is None and other.session(digest("c2"), NOW + 2) is None

    def test_a_session_lasts_until_it_expires_or_ends(self, backend: Backend) -> None:
        journal = backend.open()
        ann = person("ann", "t-ann")
        journal.add_user(ann)
        first, second = Session(digest("c1"), "ann", NOW, NOW + 60), Session(digest("c2"), "ann", NOW, NOW + 600)
        journal.add_session(first)
        journal.add_session(second)
        assert journal.session(digest("c1"), NOW) == (first, ann)
        assert backend.open().session(digest("c1"), NOW + 59.5) == (first, ann)
        assert journal.session(digest("c1"), NOW + 60) is None, "a session outlived its expiry"
        assert journal.session(digest("c1"), NOW + 61) is None and journal.session(digest("c9"), NOW) is None
        journal.end_session(digest("c2"))
        journal.end_session(digest("c9"))  # not there: nothing happens
        assert journal.session(digest("c2"), NOW + 1) is None, "a signed-out session still lets its user in"
        journal.add_session(Session(digest("c3"), "ann", NOW, NOW + 60))
        assert journal.session(digest("c3"), NOW + 1) is not None, "signing out ended another session"

    def test_of_several_processes_claiming_one_job_key_at_once_exactly_one_wins(self, backend: Backend) -> None:
        go, out = SPAWN.Event(), SPAWN.Queue()
        names = [f"console{i}" for i in range(CLAIMERS)]
        children = [spawn(claim_job_in_child, backend.url, "k1", name, go, out) for name in names]
        try:
            results = contend(children, go, out)
        finally:
            go.set()
            reap(children)
        winners = [name for name, won, _ in results if won]
        assert len(winners) == 1, f"winners: {winners} of {results}"
        assert {stored for _, _, stored in results} == set(winners), f"claimers were shown other jobs: {results}"
        assert backend.open().job("k1") == job("k1", winners[0])

    def test_a_job_is_claimed_once_and_moves_keeping_its_rollout(self, backend: Backend) -> None:
        journal = backend.open()
        first = job("k1", "ann")
        assert journal.claim_job(first) == (first, True) and journal.job("k1") == first
        assert journal.job("k2") is None
        journal.update_job("k1", "running", NOW + 1, "started", rollout="r-7")
        journal.update_job("k1", "done", NOW + 2, "rolled back")
        done = journal.job("k1")
        assert done is not None and (done.state, done.rollout, done.message, done.updated) == (
            "done",
            "r-7",
            "rolled back",
            NOW + 2,
        ), done
        assert done.params == first.params and (done.user, done.reason) == ("ann", "broke the line")
        assert journal.claim_job(job("k1", "bob")) == (done, False), "a second claim changed the job"
        journal.update_job("k1", "failed", NOW + 3, "again", rollout="r-8")
        assert [(j.state, j.rollout) for j in journal.jobs()] == [("failed", "r-8")]

    def test_jobs_are_listed_newest_first_up_to_the_limit(self, backend: Backend) -> None:
        journal = backend.open()
        created = [3.0, 1.0, 5.0, 2.0, 4.0]
        for n in created:
            journal.claim_job(job(f"k{n:g}", "ann", NOW + n))
        assert [j.key for j in journal.jobs(limit=3)] == ["k5", "k4", "k3"]
        assert [j.key for j in journal.jobs()] == ["k5", "k4", "k3", "k2", "k1"]

    def test_enqueue_counts_only_new_ids_and_keeps_the_first(self, backend: Backend) -> None:
        journal = backend.open()
        assert journal.enqueue_deliveries([delivery("a", 1), delivery("b", 1), delivery("a", 2)]) == 3
        changed = Delivery("a:1", "a", 1, "r1", "halted", {"other": True})
        assert journal.enqueue_deliveries([changed, delivery("a", 3), delivery("b", 1)]) == 1
        assert journal.enqueue_deliveries([]) == 0
        stored = {d.id: d for d in journal.deliveries()}
        assert sorted(stored) == ["a:1", "a:2", "a:3", "b:1"] and stored["a:1"] == delivery("a", 1), stored

    def test_two_processes_claiming_at_once_share_the_due_deliveries_without_overlap(self, backend: Backend) -> None:
        journal = backend.open()
        due = [delivery(hook, seq, next_attempt=NOW - seq) for seq in range(1, 41) for hook in ("a", "b")]
        untouchable = [
            delivery("a", 50, next_attempt=NOW + 1),  # not yet due
            delivery("a", 51, claimed_by="other", claimed_until=NOW + 5),  # held by another claimer
            delivery("a", 52, state="delivered"),
            delivery("a", 53, state="failed", attempts=5),
        ]
        assert journal.enqueue_deliveries(due + untouchable) == len(due) + len(untouchable)
        go, out = SPAWN.Event(), SPAWN.Queue()
        children = [spawn(claim_deliveries_in_child, backend.url, name, len(due) + 1, go, out) for name in "xy"]
        try:
            claimed = dict(contend(children, go, out))
        finally:
            go.set()
            reap(children)
        x, y = set(claimed["x"]), set(claimed["y"])
        assert len(x) == len(claimed["x"]) and len(y) == len(claimed["y"]), f"one claimer got one twice: {claimed}"
        assert not x & y, f"both claimers got {sorted(x & y)}"
        assert x | y == {d.id for d in due}, f"claimed {sorted(x | y)}, due were {sorted(d.id for d in due)}"
        stored = {d.id: d for d in journal.deliveries()}
        assert all(stored[i].claimed_by == "x" and stored[i].claimed_until == NOW + 3600 for i in x), stored
        assert all(stored[i].claimed_by == "y" for i in y)
        assert [stored[d.id] for d in untouchable] == untouchable, "a delivery not to be claimed was changed"
        assert journal.claim_deliveries(NOW, "z", 60.0, 100) == [], "a held delivery was claimed again"

    def test_a_claim_holds_oldest_first_until_its_time_runs_out(self, backend: Backend) -> None:
        journal = backend.open()
        queued = [delivery("b", 2), delivery("a", 3), delivery("a", 2), delivery("c", 1)]
        journal.enqueue_deliveries(queued)
        first = journal.claim_deliveries(NOW, "x", 30.0, 3)
        assert [(d.id, d.claimed_by, d.claimed_until) for d in first] == [
            ("c:1", "x", NOW + 30),
            ("a:2", "x", NOW + 30),
            ("b:2", "x", NOW + 30),
        ], first
        assert first[0].body == {"seq": 1, "text": "é\n"}
        assert [d.id for d in journal.claim_deliveries(NOW + 1, "y", 30.0, 10)] == ["a:3"]
        assert journal.claim_deliveries(NOW + 29, "y", 30.0, 10) == [], "a held delivery was claimed"
        again = journal.claim_deliveries(NOW + 30.5, "y", 30.0, 10)  # x's claim ran out (x died)
        assert [(d.id, d.claimed_by) for d in again] == [("c:1", "y"), ("a:2", "y"), ("b:2", "y")], again

    def test_a_finished_delivery_gives_up_its_claim_and_a_pending_one_returns_at_its_next_attempt(
        self, backend: Backend
    ) -> None:
        journal = backend.open()
        journal.enqueue_deliveries([delivery("a", 1), delivery("b", 1)])
        assert len(journal.claim_deliveries(NOW, "x", 60.0, 10)) == 2
        journal.finish_delivery("a:1", "pending", 1, NOW + 30, "HTTP 503", NOW + 1)
        journal.finish_delivery("b:1", "delivered", 1, 0.0, "", NOW + 1)
        retried = delivery("a", 1, attempts=1, next_attempt=NOW + 30, last_error="HTTP 503", updated=NOW + 1)
        assert journal.deliveries() == [
            delivery("b", 1, state="delivered", attempts=1, updated=NOW + 1),
            retried,
        ], journal.deliveries()
        assert journal.claim_deliveries(NOW + 10, "y", 60.0, 10) == [], "a retry was claimed before it was due"
        back = journal.claim_deliveries(NOW + 30, "y", 60.0, 10)
        assert back == [replace(retried, claimed_by="y", claimed_until=NOW + 90)], back
        journal.finish_delivery("a:1", "failed", 2, NOW + 60, "HTTP 503", NOW + 31)
        assert journal.claim_deliveries(NOW + 10_000, "y", 60.0, 10) == [], "a finished delivery was claimed again"

    def test_deliveries_are_listed_newest_first_by_seq_then_hook(self, backend: Backend) -> None:
        journal = backend.open()
        queued = [delivery(hook, seq) for seq in (1, 2, 3) for hook in ("a", "b")]
        journal.enqueue_deliveries(random.Random(7).sample(queued, len(queued)))
        assert [d.id for d in journal.deliveries()] == ["b:3", "a:3", "b:2", "a:2", "b:1", "a:1"]
        assert [d.id for d in journal.deliveries(limit=2)] == ["b:3", "a:3"]

    def test_a_read_only_store_refuses_every_access_write_with_a_journal_error(self, backend: Backend) -> None:
        journal = backend.open()
        journal.add_user(person("ann", "t-ann"))
        journal.add_session(Session(digest("c1"), "ann", NOW, NOW + 60))
        journal.claim_job(job("k1", "ann"))
        journal.enqueue_deliveries([delivery("a", 1)])
        before = (journal.users(), journal.jobs(), journal.deliveries())
        with backend.read_only():
            writes: list[Callable[[], object]] = [
                lambda: journal.add_user(person("bob", "t-bob")),
                lambda: journal.revoke_user("ann", NOW + 1),
                lambda: journal.add_session(Session(digest("c2"), "ann", NOW, NOW + 60)),
                lambda: journal.end_session(digest("c1")),
                lambda: journal.claim_job(job("k2", "ann")),
                lambda: journal.update_job("k1", "running", NOW + 1, "started"),
                lambda: journal.enqueue_deliveries([delivery("a", 2)]),
                lambda: journal.claim_deliveries(NOW, "x", 60.0, 10),
                lambda: journal.finish_delivery("a:1", "delivered", 1, 0.0, "", NOW + 1),
            ]
            for write in writes:
                with pytest.raises(JournalError):
                    write()
        assert (journal.users(), journal.jobs(), journal.deliveries()) == before, "a refused write was recorded"
        assert journal.session(digest("c1"), NOW + 1) is not None and journal.session(digest("c2"), NOW) is None

    def test_a_vanished_store_is_a_journal_error_for_access_too(self, backend: Backend) -> None:
        journal = backend.open()
        journal.add_user(person("ann", "t-ann"))
        backend.vanish()
        attempts: list[Callable[[], object]] = [
            lambda: journal.user("ann"),
            lambda: journal.user_by_token(digest("t-ann")),
            lambda: journal.session(digest("c1"), NOW),
            lambda: journal.add_user(person("bob", "t-bob")),
            lambda: journal.claim_job(job("k1", "ann")),
            lambda: journal.jobs(),
            lambda: journal.claim_deliveries(NOW, "x", 60.0, 10),
        ]
        for attempt in attempts:
            with pytest.raises(JournalError):
                attempt()
        assert not backend.exists(), "a new, empty store took the vanished one's place"
