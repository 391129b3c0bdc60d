"""What every backend keeps for agent plants (``rollout.state.agents``): blobs by hash, work
orders with the blobs they need, the agents' events keyed (order, seq), heartbeats.

A backend's test class subclasses ``AgentContract`` next to ``StateContract``; the same
``backend`` fixture serves both."""

from __future__ import annotations

import hashlib
import threading

from state_contract import Backend

from rollout.state.agents import AgentOrder, Heartbeat


def blob(text: str) -> tuple[str, bytes]:
    data = text.encode()
    return hashlib.sha256(data).hexdigest(), data


def order(oid: str, plant: str = "berlin", created: float = 1.0) -> AgentOrder:
    return AgentOrder(oid, plant, "r1", "deploy", '{"order": 1}', "pending", created)


class AgentContract:
    def test_blobs_are_kept_once_by_hash_and_read_back_byte_for_byte(self, backend: Backend) -> None:
        journal = backend.open()
        a, b = blob("a"), blob("b" * 100_000)
        assert journal.missing_blobs([a[0], b[0]]) == {a[0], b[0]} and journal.blob(a[0]) is None
        journal.put_blobs(dict([a, b]))
        journal.put_blobs(dict([a]))  # a second publisher of the same bundle: no error, no copy
        assert backend.open().blob(b[0]) == b[1] and journal.blob(a[0]) == a[1]
        assert journal.missing_blobs([a[0], "f" * 64]) == {"f" * 64}
        many = dict(blob(f"file {i}") for i in range(1200))  # more than one statement's worth of hashes
        journal.put_blobs(many)
        assert journal.missing_blobs([*many, "0" * 64]) == {"0" * 64}

    def test_an_order_is_published_once_and_an_agent_may_fetch_only_what_its_plants_orders_need(
        self, backend: Backend
    ) -> None:
        journal = backend.open()
        first = journal.publish(order("r1/berlin/deploy/1"), ["h1", "h2"])
        assert first.state == "pending" and first.taken is None
        changed = AgentOrder("r1/berlin/deploy/1", "berlin", "r1", "deploy", "{}", "pending", 9.0)
        again = journal.publish(changed, ["h3"])
        assert again.body == '{"order": 1}' and again.created == 1.0, "a republished order replaced the first"
        journal.publish(order("r1/detroit/deploy/1", "detroit", 2.0), ["h9"])
        assert journal.order_needs("berlin", "h1") and journal.order_needs("berlin", "h3")
        assert not journal.order_needs("berlin", "h9"), "berlin may fetch a blob only detroit's order needs"
        assert [o.id for o in journal.orders(plant="berlin")] == ["r1/berlin/deploy/1"]
        assert [o.id for o in journal.orders(rollout="r1")] == ["r1/berlin/deploy/1", "r1/detroit/deploy/1"]

    def test_the_oldest_open_order_is_next_and_a_taken_one_comes_back_to_a_restarted_agent(
        self, backend: Backend
    ) -> None:
        journal = backend.open()
        assert journal.next_order("berlin") is None
        journal.publish(order("o2", created=2.0), [])
        journal.publish(order("o1", created=1.0), [])
        taken = journal.take_order("o1", "agent-berlin")
        assert taken is not None and taken.state == "taken" and taken.taken is not None
        assert journal.next_order("berlin") == backend.open().order("o1"), "a taken order is not offered again"
        assert journal.finish_order("o1", "done", '{"outcome": "updated"}')
        nxt = journal.next_order("berlin")
        assert nxt is not None and nxt.id == "o2"
        assert journal.take_order("o1", "agent-berlin") is None, "a finished order was taken again"
        done = journal.order("o1")
        assert done is not None and done.state == "done" and done.result == '{"outcome": "updated"}'

    def test_the_first_close_wins_and_a_late_result_never_reopens_an_abandoned_order(self, backend: Backend) -> None:
        journal = backend.open()
        journal.publish(order("o1"), [])
        assert journal.finish_order("o1", "abandoned", None)
        assert not journal.finish_order("o1", "done", '{"late": true}')
        found = journal.order("o1")
        assert found is not None and found.state == "abandoned" and found.result is None

    def test_an_agents_events_are_kept_once_per_seq_and_the_contiguous_mark_says_what_may_be_dropped(
        self, backend: Backend
    ) -> None:
        journal = backend.open()
        journal.publish(order("o1"), [])
        assert journal.add_order_events("o1", [(1, "e1"), (2, "e2")]) == 2
        assert journal.add_order_events("o1", [(2, "changed"), (4, "e4")]) == 2, "seq 3 is missing"
        assert journal.add_order_events("o1", [(3, "e3")]) == 4
        assert journal.order_events("o1") == [(1, "e1"), (2, "e2"), (3, "e3"), (4, "e4")], "a replay changed an event"
        assert backend.open().order_events("o1", after=2) == [(3, "e3"), (4, "e4")]

    def test_replays_of_one_outbox_from_two_connections_at_once_store_each_event_once(self, backend: Backend) -> None:
        journal = backend.open()
        journal.publish(order("o1"), [])
        events = [(i, f"e{i}") for i in range(1, 201)]
        marks: list[int] = []

        def replay() -> None:
            marks.append(backend.open().add_order_events("o1", events))

        threads = [threading.Thread(target=replay) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert marks == [200, 200] and journal.order_events("o1") == events

    def test_many_orders_are_read_in_one_look_as_each_would_be_alone(self, backend: Backend) -> None:
        journal = backend.open()
        journal.publish(order("o1"), [])
        journal.publish(order("o2", "detroit", 2.0), [])
        journal.publish(order("o3", "sydney", 3.0), [])
        journal.add_order_events("o1", [(1, "a1"), (2, "a2"), (3, "a3")])
        journal.add_order_events("o2", [(1, "b1")])
        found = journal.events_of_orders({"o1": 1, "o2": 1, "o3": 0, "nowhere": 0})
        assert found == {"o1": [(2, "a2"), (3, "a3")]}, "an order with nothing new is left out"
        assert journal.events_of_orders({}) == {}
        journal.take_order("o2", "agent-detroit")
        journal.finish_order("o3", "done", "{}")
        states = journal.order_states(["o1", "o2", "o3", "nowhere"])
        assert {oid: o.state for oid, o in states.items()} == {"o1": "pending", "o2": "taken", "o3": "done"}
        assert states["o3"].result == "{}" and states["o1"].taken is None and states["o2"].taken is not None
        assert journal.open_plants(["berlin", "detroit", "sydney", "oslo"]) == {"berlin", "detroit"}
        waiting = [f"plant{i:05d}" for i in range(1200)] + ["detroit", "sydney"]  # a server's many waiting agents
        assert journal.open_plants(waiting) == {"detroit"} and journal.open_plants([]) == set()
        many = {f"x{i}": 0 for i in range(1200)} | {"o1": 0}  # more than one statement's worth
        assert [seq for seq, _ in backend.open().events_of_orders(many)["o1"]] == [1, 2, 3]

    def test_a_heartbeat_replaces_the_plants_last(self, backend: Backend) -> None:
        journal = backend.open()
        journal.beat(Heartbeat("berlin", "agent-berlin", 10.0, "{}"))
        journal.beat(Heartbeat("berlin", "agent-berlin", 20.0, '{"order": "o1"}'))
        journal.beat(Heartbeat("detroit", "agent-detroit", 15.0, "{}"))
        beats = backend.open().heartbeats()
        assert beats["berlin"] == Heartbeat("berlin", "agent-berlin", 20.0, '{"order": "o1"}') and len(beats) == 2
        journal.beat(Heartbeat("berlin", "agent-berlin", 30.0, "{}"), Heartbeat("tokyo", "agent-tokyo", 31.0, "{}"))
        journal.beat()  # nothing gathered: nothing written
        beats = backend.open().heartbeats()
        assert [(b.plant, b.at) for b in beats.values()] == [("berlin", 30.0), ("detroit", 15.0), ("tokyo", 31.0)]
