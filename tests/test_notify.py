"""Notifications: ``notify:`` webhooks told of approvals, rollbacks, attention, halts, aborts and
finishes, from a queue with retries; a receiver that hangs or fails costs a recorded failure.

Real receivers: an ``http.server`` on 127.0.0.1 that records each POST (or answers 500), and a
listening socket that accepts and never answers. The pure tests run the notifier on a small
in-memory outbox (``MemoryState``); the last tests run real deploys and rollbacks through the
command line on the project's real state, and need its backends to keep the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import MiniProject
from deploykit import DeployProject, PlantSpec, build, events_of
from rollout.config.models.notify import NOTIFY_EVENTS, Webhook
from rollout.core.clock import ManualClock
from rollout.core.events import ROLLOUT, Event, EventKind
from rollout.core.notifications import BACKOFF_MAX, MAX_ATTEMPTS, NOTICE_OF, body, notice, retry_delay
from rollout.service import open_state
from rollout.service.notify import Notifier, recent
from rollout.state.access import AccessStore, Delivery
from rollout.state.journal import JournalError, JournalEvent, RolloutRecord

SECRET = "s3cret-token-value"
LIMIT = 10.0
"""Longest any wait of these tests may take for a receiver or the notifier."""


# Real receivers.


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class Receiver:
    """An HTTP server in a thread on 127.0.0.1 (a port of its own) that records each POST."""

    def __init__(self, status: int = 204) -> None:
        self.status, self.arrived = status, threading.Condition()
        self.posts: list[Post] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.posts.append(Post(self.path, dict(self.headers), data))
                    receiver.arrived.notify_all()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"

    def wait_for(self, count: int) -> list[Post]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, LIMIT)
            return list(self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(LIMIT)


class Hanging:
    """A port that accepts connections (the kernel's backlog) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)

    @property
    def url(self) -> str:
        return f"http://user:{SECRET}@127.0.0.1:{self.sock.getsockname()[1]}/hooks/{SECRET}"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def servers() -> Iterator[list[Receiver | Hanging]]:
    made: list[Receiver | Hanging] = []
    yield made
    for server in made:
        server.close()


def receiver(servers: list[Receiver | Hanging], status: int = 204) -> Receiver:
    made = Receiver(status)
    servers.append(made)
    return made


def hanging(servers: list[Receiver | Hanging]) -> Hanging:
    made = Hanging()
    servers.append(made)
    return made


# An in-memory outbox beside a list of events: for the tests of the notifier alone.


class MemoryState(AccessStore):
    """Events, rollouts and the deliveries' outbox in memory, as a backend keeps them."""

    def __init__(self) -> None:
        self.items: list[JournalEvent] = []
        self.records: dict[str, RolloutRecord] = {}
        self.outbox: dict[str, Delivery] = {}
        self.changed = threading.Condition()
        self.broken = False

    def append(self, rollout: str, event: Event, release: str = "v2") -> int:
        with self.changed:
            self.records.setdefault(rollout, RolloutRecord(rollout, "deploy", release, None, 0.0, "ann", {}))
            seq = len(self.items) + 1
            self.items.append(JournalEvent(seq, rollout, event))
            self.changed.notify_all()
            return seq

    def last_seq(self) -> int:
        return len(self.items)

    def events_after(self, seq: int, rollout: str | None = None) -> list[JournalEvent]:
        if self.broken:
            raise JournalError("the state is gone")
        with self.changed:
            return [i for i in self.items if i.seq > seq and rollout in (None, i.rollout)]

    def wait(self, after_seq: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.items) > after_seq, timeout)

    def rollout(self, rollout: str) -> RolloutRecord | None:
        return self.records.get(rollout)

    def close(self) -> None:
        pass

    def enqueue_deliveries(self, deliveries: list[Delivery]) -> int:
        with self.changed:
            new = [d for d in deliveries if d.id not in self.outbox]
            self.outbox.update({d.id: d for d in new})
            return len(new)

    def claim_deliveries(self, now: float, claimer: str, hold: float, limit: int) -> list[Delivery]:
        with self.changed:
            due = [d for d in self.outbox.values() if d.state == "pending" and d.next_attempt <= now]
            due = [d for d in due if d.claimed_until < now][:limit]
            for d in due:
                self.outbox[d.id] = replace(d, claimed_by=claimer, claimed_until=now + hold)
            return [self.outbox[d.id] for d in due]

    def finish_delivery(
        self, delivery_id: str, state: str, attempts: int, next_attempt: float, error: str, when: float
    ) -> None:
        with self.changed:
            d = self.outbox[delivery_id]
            self.outbox[delivery_id] = replace(
                d, state=state, attempts=attempts, next_attempt=next_attempt, last_error=error, updated=when,
                claimed_by="", claimed_until=0.0,
            )  # fmt: skip

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        return sorted(self.outbox.values(), key=lambda d: (-d.seq, d.hook))[:limit]

    def _unused(self, *_: object) -> Any:
        raise NotImplementedError("users, sessions and jobs are not the notifier's")

    add_user = user = user_by_token = active_tokens = users = revoke_user = _unused  # type: ignore[assignment]
    add_session = session = end_session = claim_job = update_job = job = jobs = _unused  # type: ignore[assignment]


def hook(url: str, name: str = "ops", **fields: Any) -> Webhook:
    return Webhook.model_validate({"name": name, "url": url, **fields})


def notifier(state: MemoryState, hooks: list[Webhook], clock: ManualClock | None = None) -> Notifier:
    project = SimpleNamespace(config=SimpleNamespace(name="dp", notify=hooks))
    return Notifier(state, project, clock)  # type: ignore[arg-type]  # only the config is read


def start_clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC))


ROLLED_BACK = Event("plant.rolled_back", "p2", release="v1", detail={"reason": "check health failed"}, time=100.0)
FINISHED = Event("rollout.finished", ROLLOUT, detail={"plants": {"p1": "updated", "p2": "rolled_back"}}, time=101.0)


# The pure mapping, bodies and backoff.


@pytest.mark.parametrize("kind", get_args(EventKind))
def test_only_the_six_moments_are_told(kind: str) -> None:
    told = notice(Event(kind, ROLLOUT, detail={"wave": "w1"}), "dp", "r1", 7, "v2")  # type: ignore[arg-type]
    assert (told.kind if told else None) == NOTICE_OF.get(kind)
    assert set(NOTICE_OF.values()) == set(NOTIFY_EVENTS)


def test_the_bodies_of_each_format() -> None:
    told = notice(ROLLED_BACK, "dp", "r1", 7, "v2")
    assert told is not None
    plain = body(told, "json")
    assert {k: plain[k] for k in ("event", "rollout", "plant", "release", "reason", "seq", "project")} == {
        "event": "rolled_back",
        "rollout": "r1",
        "plant": "p2",
        "release": "v2",
        "reason": "check health failed",
        "seq": 7,
        "project": "dp",
    }
    assert plain["time"] == "1970-01-01T00:01:40.000+00:00"
    line = "dp: plant p2 was rolled back in rollout r1 (release v2): check health failed"
    assert body(told, "slack") == {"text": line}
    card = body(told, "teams")
    assert card["@type"] == "MessageCard" and card["@context"] == "https://schema.org/extensions"
    assert "rolled back" in card["summary"] and "check health failed" in card["text"]
    done = notice(FINISHED, "dp", "r1", 8, "v2")
    assert done is not None and body(done, "json")["outcomes"] == {"p1": "updated", "p2": "rolled_back"}
    assert "1 rolled_back, 1 updated" in body(done, "slack")["text"]
    waiting = notice(Event("approval.waiting", ROLLOUT, detail={"wave": "rest"}), "dp", "r1", 9, "v2")
    assert waiting is not None and "rollout approve r1" in body(waiting, "slack")["text"]


@given(st.text(max_size=200), st.sampled_from(["json", "slack", "teams"]))
def test_any_reason_makes_a_json_body_and_never_a_slack_link(reason: str, form: str) -> None:
    told = notice(replace(ROLLED_BACK, detail={"reason": reason}), "dp", "r1", 7, None)
    assert told is not None
    made = body(told, form)
    assert json.loads(json.dumps(made)) == made
    if form == "slack":
        assert "<" not in made["text"] and ">" not in made["text"]
    if form == "json":
        assert made["reason"] == reason


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 2.0), (2, 4.0), (3, 8.0), (7, 128.0), (MAX_ATTEMPTS, None), (50, None)]
)
def test_backoff_schedule(attempts: int, delay: float | None) -> None:
    assert retry_delay(attempts) == delay


@given(st.integers(min_value=0, max_value=1000))
def test_backoff_grows_is_capped_and_ends(attempts: int) -> None:
    delay, following = retry_delay(attempts), retry_delay(attempts + 1)
    assert (delay is None) == (attempts >= MAX_ATTEMPTS)
    if delay is not None:
        assert 0 < delay <= BACKOFF_MAX
        assert following is None or following >= delay


def test_a_webhook_keeps_its_secrets_out_of_its_repr() -> None:
    made = hook(f"https://bot:{SECRET}@example.invalid/x", headers={"Authorization": f"Bearer {SECRET}"})
    assert (made.format, made.events, made.timeout) == ("json", list(NOTIFY_EVENTS), 5.0)
    assert SECRET not in repr(made) and SECRET not in str(made)


# The notifier on the in-memory outbox, with real receivers.


def test_enqueue_makes_one_delivery_per_hook_and_wanted_event_once() -> None:
    state = MemoryState()
    hooks = [hook("http://127.0.0.1:9/a", "all"), hook("http://127.0.0.1:9/b", "done", events=["finished"])]
    state.append("r1", Event("plant.started", "p2"))
    state.append("r1", ROLLED_BACK)
    last = state.append("r1", FINISHED)
    told = notifier(state, hooks)
    assert told.enqueue_after(0) == last
    assert sorted(state.outbox) == ["all:2", "all:3", "done:3"]
    assert told.enqueue_after(0) == last and len(state.outbox) == 3  # again, from any process: nothing new
    assert told.enqueue_after(last) == last
    assert state.outbox["all:2"].kind == "rolled_back" and state.outbox["all:2"].body["release"] == "v2"
    assert all(d.state == "pending" and d.attempts == 0 for d in state.outbox.values())


def test_a_2xx_is_delivered_with_its_headers(servers: list[Receiver | Hanging]) -> None:
    good = receiver(servers, 200)
    state = MemoryState()
    state.append("r1", ROLLED_BACK)
    told = notifier(state, [hook(good.url, format="slack", headers={"Authorization": f"Bearer {SECRET}"})])
    told.enqueue_after(0)
    [attempt] = told.deliver_due()
    assert (attempt.state, attempt.attempts, attempt.error) == ("delivered", 1, "")
    [post] = good.wait_for(1)
    assert post.headers["Authorization"] == f"Bearer {SECRET}" and post.path == f"/hooks/{SECRET}"
    assert post.body == {"text": "dp: plant p2 was rolled back in rollout r1 (release v2): check health failed"}
    assert state.outbox["ops:1"].state == "delivered" and told.deliver_due() == []
    assert all(SECRET not in json.dumps(d.body) for d in state.outbox.values())  # headers are never queued


def test_a_500_is_retried_with_backoff_then_failed(servers: list[Receiver | Hanging]) -> None:
    broken = receiver(servers, 500)
    state, clock = MemoryState(), start_clock()
    state.append("r1", FINISHED)
    told = notifier(state, [hook(broken.url)], clock)
    told.enqueue_after(0)
    delays = []
    for attempt_number in range(1, MAX_ATTEMPTS + 1):
        [attempt] = told.deliver_due()
        assert attempt.attempts == attempt_number and attempt.error == "answered HTTP 500"
        assert told.deliver_due() == [], "tried again before its backoff"
        if attempt.state == "failed":
            break
        delays.append(attempt.next_attempt - clock.time())
        clock.advance(delays[-1])
    assert attempt.state == "failed" and state.outbox["ops:1"].state == "failed"
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    assert len(broken.wait_for(MAX_ATTEMPTS)) == MAX_ATTEMPTS


def test_a_hanging_receiver_costs_one_timeout_and_shows_no_secret(servers: list[Receiver | Hanging]) -> None:
    silent = hanging(servers)
    state = MemoryState()
    state.append("r1", FINISHED)
    secret_header = {"X-Api-Key": SECRET}
    told = notifier(state, [hook(silent.url, timeout=0.5, headers=secret_header)])
    told.enqueue_after(0)
    began = time.monotonic()
    [attempt] = told.deliver_due()
    took = time.monotonic() - began
    assert 0.4 < took < 3.0, f"one attempt of a 0.5 s timeout took {took:.2f} s"
    assert attempt.state == "pending" and attempt.attempts == 1 and "no answer within 0.5s" in attempt.error
    assert SECRET not in attempt.error and SECRET not in state.outbox["ops:1"].last_error


def test_a_refused_connection_is_a_recorded_failure_without_the_url(servers: list[Receiver | Hanging]) -> None:
    gone = hanging(servers)
    url = gone.url
    gone.close()  # nothing listens there now
    state = MemoryState()
    state.append("r1", FINISHED)
    told = notifier(state, [hook(url)])
    told.enqueue_after(0)
    [attempt] = told.deliver_due()
    assert attempt.state == "pending" and "ConnectError" in attempt.error and SECRET not in attempt.error


def test_a_delivery_of_a_webhook_no_longer_configured_fails_at_once() -> None:
    state = MemoryState()
    state.enqueue_deliveries([Delivery("gone:1", "gone", 1, "r1", "finished", {"event": "finished"})])
    [attempt] = notifier(state, []).deliver_due()
    assert attempt.state == "failed" and "no webhook 'gone'" in attempt.error


def test_the_thread_follows_the_journal_and_stop_keeps_to_its_grace(servers: list[Receiver | Hanging]) -> None:
    good, silent = receiver(servers), hanging(servers)
    state = MemoryState()
    state.append("r0", FINISHED)  # before the start: not told
    told = notifier(state, [hook(good.url), hook(silent.url, "pager", timeout=30)])
    told.start(state.last_seq())
    waiting = state.append("r1", Event("approval.waiting", ROLLOUT, detail={"wave": "rest"}))
    assert [p.body["event"] for p in good.wait_for(1)] == ["approval_needed"]
    finished = state.append("r1", FINISHED)
    began = time.monotonic()
    problems = told.stop(grace=0.5)
    took = time.monotonic() - began
    assert took < 1.5, f"stop(grace=0.5) took {took:.2f} s"
    assert [p.body["seq"] for p in good.wait_for(2)] == [waiting, finished]  # the end is told too
    assert any("left queued" in p and f"pager:{finished}" in p for p in problems), problems
    assert state.outbox[f"pager:{finished}"].state == "pending"  # for the next process
    assert all(SECRET not in p for p in problems)


def test_a_broken_state_is_a_reason_from_stop_never_an_exception() -> None:
    state = MemoryState()
    state.broken = True
    told = notifier(state, [hook("http://127.0.0.1:9/x")])
    told.start(0)
    problems = told.stop(grace=1.0)
    assert problems and "reading the journal: JournalError: the state is gone" in problems[0], problems


def test_recent_deliveries_newest_first() -> None:
    state = MemoryState()
    state.append("r1", ROLLED_BACK)
    state.append("r1", FINISHED)
    notifier(state, [hook("http://127.0.0.1:9/a", "a"), hook("http://127.0.0.1:9/b", "b")]).enqueue_after(0)
    assert [d.id for d in recent(state, 3)] == ["a:2", "b:2", "a:1"]


def test_validate_never_shows_a_header_value_or_a_password(mini: MiniProject, rollout) -> None:
    text = (mini.root / "rollout.yaml").read_text()
    url = f"https://bot:{SECRET}@hooks.example.invalid/x y"
    notify = f'notify:\n  - name: ops\n    url: "{url}"\n    headers: {{X-Key: "{SECRET}\\n"}}\n'
    mini.write("rollout.yaml", text + notify)
    done = rollout("validate", "-C", mini.root)
    assert done.code == 2 and "notify[0].url" in done.err and "https://***@hooks.example.invalid" in done.err
    assert SECRET not in done.text
    mini.write("rollout.yaml", text + notify.replace(" y", ""))
    done = rollout("validate", "-C", mini.root, "--json")
    assert done.code == 2 and "notify[0].headers" in done.out and "value not shown" in done.out
    assert SECRET not in done.text


# The real state, through the command line (these need the state's outbox: SQLite and PostgreSQL).

GRACE_MARGIN = 1.5
"""Beyond the notifier's 2 s grace: a verb's own end (printing, closing the state)."""


def with_webhooks(dp: DeployProject, hooks: list[dict[str, Any]]) -> None:
    text = (dp.root / "rollout.yaml").read_text()
    (dp.root / "rollout.yaml").write_text(text + "notify:\n" + "".join(f"  - {json.dumps(h)}\n" for h in hooks))


@pytest.fixture
def dp(tmp_path: Path) -> Iterator[DeployProject]:
    strategy = "  parallelism: 1\n  waves:\n    - name: all\n      select: {remaining: true}\n      max_failures: 1\n"
    project = build(tmp_path, "local", None, [PlantSpec("p1"), PlantSpec("p2", ("fragile",))], True, strategy)
    yield project
    project.stop_services()


def test_a_deploy_tells_its_webhooks_and_a_hanging_one_costs_a_recorded_failure(
    dp: DeployProject, servers: list[Receiver | Hanging], rollout
) -> None:
    good, broken, silent = receiver(servers), receiver(servers, 500), hanging(servers)
    with_webhooks(
        dp,
        [
            {"name": "ops", "url": good.url, "headers": {"Authorization": f"Bearer {SECRET}"}},
            {"name": "chat", "url": broken.url, "format": "slack", "events": ["rolled_back", "finished"]},
            {"name": "pager", "url": silent.url, "format": "teams", "timeout": "1s"},
        ],
    )
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0  # the first: no state before
    done = rollout("deploy", "-C", dp.root, "--release", "bad-fragile", "--yes", "--json")
    ended = time.time()
    assert done.code == 1, done.text
    rid = events_of(done.out)[-1]["id"]
    journal = open_state(dp.project())
    [finish] = journal.events(rollout=rid, kinds=("rollout.finished",))
    assert ended - finish.event.time < 2.0 + GRACE_MARGIN, "the hanging receiver held the verb"
    posts = sorted((p.body for p in good.wait_for(3)), key=lambda b: int(b["seq"]))  # POSTed at once: any order
    told = [(b["event"], b["plant"]) for b in posts]
    assert told == [("finished", None), ("rolled_back", "p2"), ("finished", None)], done.err
    assert posts[1]["rollout"] == rid and posts[1]["release"] == "bad-fragile" and posts[1]["reason"]
    assert all(p.headers["Authorization"] == f"Bearer {SECRET}" for p in good.posts)
    mine = {d.hook: d for d in recent(journal, 100) if d.rollout == rid and d.kind == "rolled_back"}
    assert mine["ops"].state == "delivered"
    assert mine["chat"].state == "pending" and mine["chat"].last_error == "answered HTTP 500"
    assert mine["chat"].next_attempt > mine["chat"].updated  # backoff
    assert mine["pager"].attempts >= 1 and "no answer within 1s" in mine["pager"].last_error
    assert SECRET not in done.text and all(SECRET not in d.last_error for d in recent(journal, 100))


def test_a_receiver_slower_than_the_grace_leaves_the_rollback_on_time(
    dp: DeployProject, servers: list[Receiver | Hanging], rollout
) -> None:
    assert rollout("deploy", "-C", dp.root, "--release", "v1", "--yes").code == 0
    assert rollout("deploy", "-C", dp.root, "--release", "v2", "--yes").code == 0
    silent = hanging(servers)
    with_webhooks(dp, [{"name": "pager", "url": silent.url, "timeout": "30s", "events": ["finished"]}])
    began = time.monotonic()
    back = rollout("rollback", "-C", dp.root, "--plant", "p1", "--reason", "gateway misbehaves")
    assert back.code == 0, back.text
    journal = open_state(dp.project())
    rid = journal.rollouts()[-1].id
    [finish] = journal.events(rollout=rid, kinds=("rollout.finished",))
    assert time.time() - finish.event.time < 2.0 + GRACE_MARGIN, f"took {time.monotonic() - began:.1f} s in all"
    assert "notifications: not answered within 2s, left queued: pager:" in back.err, back.err
    [left] = [d for d in recent(journal) if d.rollout == rid]
    assert left.state == "pending" and left.attempts == 0  # on its way still: the next process tries it


def test_a_pause_for_approval_and_its_abort_are_told(
    tmp_path: Path, servers: list[Receiver | Hanging], rollout, monkeypatch
) -> None:
    monkeypatch.setenv("ROLLOUT_OPERATOR", "ann@console")
    strategy = (
        "  waves:\n    - name: canary\n      select: {plants: [p1]}\n"
        "    - name: rest\n      select: {remaining: true}\n      approval: true\n"
    )
    dp = build(tmp_path, "local", None, [PlantSpec("p1"), PlantSpec("p2")], True, strategy)
    try:
        good = receiver(servers)
        with_webhooks(dp, [{"name": "ops", "url": good.url, "events": ["approval_needed", "aborted"]}])
        paused = rollout("deploy", "-C", dp.root, "--release", "v1", "--yes", "--json")
        assert paused.code == 4, paused.text
        rid = events_of(paused.out)[-1]["id"]
        posts = good.wait_for(1)
        assert len(posts) == 1, paused.err
        assert [posts[0].body[k] for k in ("event", "wave", "rollout")] == ["approval_needed", "rest", rid]
        assert rollout("abort", "-C", dp.root, rid, "--reason", "wrong release").code == 0
        aborted = good.wait_for(2)[1].body
        assert (aborted["event"], aborted["by"], aborted["reason"]) == ("aborted", "ann@console", "wrong release")
    finally:
        dp.stop_services()
