"""The plant runner for ``execution: agent`` plants: the centre never contacts the plant's hosts.

It publishes the plant's work order in the state (its bundles and kit as blobs, stored once by
hash), then passes every event the agent sends on to the rollout's sink in the agent's order,
as if the executor ran here: the orchestrator's thresholds, approvals, bakes, abort and resume
are the same for both modes. While the agent is silent the plant is "in progress, agent
unreachable since T" (``agent.unreachable``); silent past the plant's ``agent_timeout`` it needs
attention and the order is abandoned. A resumed run attaches to the order its killed run
published and passes on only what it had not yet passed on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from rollout.config.project import Project
from rollout.core.agentwork import Action, Assignment, pack_bundle, pack_kit, recheck_from_json, result_from_json
from rollout.core.clock import local_time
from rollout.core.events import Event, EventSink
from rollout.core.steps import PlantResult, Targets, commits_of, targets_to_json
from rollout.core.workorder import RenderSteps, WorkOrder
from rollout.engine.runner import PlantRunner
from rollout.errors import ConfigError
from rollout.service.agent_hub import POLL_S, OrderHub
from rollout.service.kit import kit_files
from rollout.state.agents import AgentOrder
from rollout.state.journal import Journal

WATCH_S = 4 * POLL_S
"""The longest a plant's thread waits for news of its order before it looks at the agent's silence."""
UNREACHABLE_S = 15.0
"""Silence after which the plant shows as "agent unreachable" (the agent beats every 5 s)."""


@dataclass(frozen=True)
class Request:
    """What one order asks of the agent beyond the work order itself."""

    action: Action
    before: Targets | None = None
    why: str = ""
    interrupted: bool = False
    layers: tuple[str, ...] = ()
    to_order: bool = False
    keys: tuple[str, ...] = ()


class AgentRunner(PlantRunner):
    """Runs a plant's work through its agent, by way of the state."""

    def __init__(
        self, project: Project, journal: Journal, rollout: str, operator: str, render: Callable[[str], RenderSteps]
    ) -> None:
        self.project, self.journal, self.rollout, self.operator = project, journal, rollout, operator
        self.render = render
        """Plant -> renders a commit's steps (at the centre, before the order is published)."""
        self.hub = OrderHub(journal)
        """Every order of the rollout followed on one look (not one query of each plant's thread)."""

    def deploy(self, order: WorkOrder, before: Targets | None, sink: EventSink) -> PlantResult:
        return result_from_json(self.run(order, Request("deploy", before), sink))

    def restore(self, order: WorkOrder, before: Targets, why: str, interrupted: bool, sink: EventSink) -> PlantResult:
        return result_from_json(self.run(order, Request("restore", before, why, interrupted), sink))

    def recheck(self, order: WorkOrder, sink: EventSink) -> str:
        return recheck_from_json(self.run(order, Request("recheck"), sink))

    def run(self, order: WorkOrder, request: Request, sink: EventSink) -> str:
        """Publish (or attach to) the order and pass its events on until its result is in."""
        earlier = self.journal.orders(plant=order.plant, rollout=self.rollout)
        published = self._attach(earlier, order.plant, request.action)
        if published is None:
            published = self._publish(self._completed(order, request), request, len(earlier) + 1)
        return _Follower(self, published, sink).follow()

    def _completed(self, order: WorkOrder, request: Request) -> WorkOrder:
        """The order with the steps of every release the plant may go back to, rendered here: the
        agent has no code base. One that does not render is left out; the agent refuses the plant."""
        lacking = order.lacks(commits_of(request.before or {}))
        render, found = self.render(order.plant), {}
        for commit in lacking:
            try:
                found[commit] = render(commit)
            except ConfigError:
                continue
        return order.with_old(found) if found else order

    def _attach(self, earlier: list[AgentOrder], plant: str, action: str) -> AgentOrder | None:
        """Of ``earlier`` (the plant's orders in this rollout), the one a killed run published for the
        same work: still open, or done with events it never passed on (the agent finished while no
        run of the rollout ran)."""
        prefix = f"{self.rollout}/{plant}/{action}/"
        mine = [o for o in earlier if o.id.startswith(prefix)]
        last = mine[-1] if mine else None
        if last is None or last.state == "abandoned":
            return None
        if last.open:
            return last
        sent = self.journal.order_events(last.id, after=passed_before(self.journal, self.rollout, last))
        return last if sent else None

    def _publish(self, order: WorkOrder, request: Request, number: int) -> AgentOrder:
        """Publish the order as the plant's ``number``-th in this rollout, its blobs sent first."""
        blobs, indexes = {}, {}
        for layer, bundle in order.bundles.items():
            indexes[layer], packed = pack_bundle(bundle)
            blobs.update(packed)
        # packed anew for each order, not kept: a plant's kit holds the project file, which in a
        # project of ten thousand plants is 120 kB, and one kept a plant was a gigabyte
        kit, kit_blobs = pack_kit(kit_files(self.project, self.project.plants[order.plant]))
        blobs.update(kit_blobs)
        missing = self.journal.missing_blobs(list(blobs))
        self.journal.put_blobs({h: blobs[h] for h in missing})
        oid = f"{self.rollout}/{order.plant}/{request.action}/{number}"
        assignment = Assignment(
            id=oid, plant=order.plant, rollout=self.rollout, action=request.action, operator=self.operator,
            order=json.loads(order.to_json()), indexes=indexes, kit=kit,
            before=None if request.before is None else targets_to_json(request.before),
            why=request.why, interrupted=request.interrupted, layers=list(request.layers), to_order=request.to_order,
            keys=list(request.keys),
        )  # fmt: skip
        row = AgentOrder(
            oid, order.plant, self.rollout, request.action, assignment.model_dump_json(), "pending", time.time()
        )
        return self.journal.publish(row, sorted(blobs))


class _Follower:
    """Passes one order's events on, in the agent's order, and watches the agent's silence."""

    def __init__(self, runner: AgentRunner, order: AgentOrder, sink: EventSink) -> None:
        self.r, self.order, self.sink = runner, order, sink
        self.plant = order.plant
        self.timeout = runner.project.plants[order.plant].config.agent_timeout
        self.passed = passed_before(runner.journal, runner.rollout, order)
        self.heard = max(order.created, order.taken or 0.0)
        self.unreachable_since: float | None = None

    def follow(self) -> str:
        self.r.hub.follow(self.order.id, self.passed)
        try:
            return self._follow()
        except _Silent as silent:
            why = f"it has been silent since {local_time(silent.since)}, past its agent_timeout of {self.timeout:g} s"
            return self._abandoned(why)
        finally:
            self.r.hub.leave(self.order.id)

    def _follow(self) -> str:
        deadline = time.monotonic() + 366 * 86400.0  # bounded: a year of waiting on one order
        while time.monotonic() < deadline:
            self._pass_on()
            found = self.r.hub.order(self.order.id)
            if found is not None and found.state == "done" and not self._pass_on():
                self._heard_again()
                return found.result or "{}"
            if found is None or found.state == "abandoned":
                return self._abandoned("its order was abandoned")
            self._watch(found.taken)
            self.r.hub.wait(self.order.id, WATCH_S)
        return self._abandoned("waited a year for it")

    def _pass_on(self) -> int:
        """Pass on the events that arrived since; how many."""
        rows = self.r.hub.take(self.order.id)
        if rows:  # heard from: said before what it sends, which may be the plant's outcome
            self.heard = time.time()
            self._heard_again()
        for seq, body in rows:
            data = json.loads(body)
            data.pop("seq", None)
            data.pop("rollout", None)
            event = Event.from_dict(data)
            detail = {**event.detail, "agent": {"order": self.order.id, "seq": seq}}
            self.sink(Event(event.kind, self.plant, event.layer, event.host, event.release, detail, event.time))
            self.passed = seq
        return len(rows)

    def _watch(self, taken: float | None) -> None:
        """The agent's silence: unreachable after ``UNREACHABLE_S``, abandoned after ``agent_timeout``.
        Its heartbeat, and its taking the order (a fetch of the blobs may come before any event), are heard."""
        now = time.time()
        beat = self.r.hub.heartbeat(self.plant)
        last = max(beat.at if beat is not None else 0.0, taken or 0.0)
        if last > self.heard:
            self.heard = last
            self._heard_again()
        silent = now - self.heard
        if silent > min(UNREACHABLE_S, self.timeout / 2) and self.unreachable_since is None:
            self.unreachable_since = self.heard
            self.sink(Event("agent.unreachable", self.plant, detail={"since": self.heard, "order": self.order.id}))
        if silent > self.timeout:
            raise _Silent(self.heard)

    def _heard_again(self) -> None:
        if self.unreachable_since is not None:
            self.unreachable_since = None
            self.sink(Event("agent.reachable", self.plant, detail={"order": self.order.id}))

    def _abandoned(self, why: str) -> str:
        self.r.journal.finish_order(self.order.id, "abandoned", None)
        reason = f"the agent of {self.plant} did not finish: {why}"
        if self.order.action != "recheck":  # a bake's recheck only fails; the put-back that follows decides
            self.sink(Event("plant.attention", self.plant, detail={"reason": reason}))
        return _attention(self.plant, self.order.action, reason)


def passed_before(journal: Journal, rollout: str, order: AgentOrder) -> int:
    """The last of the order's events a run of ``rollout`` passed on already (0: none)."""
    seqs = [
        int(e.event.detail["agent"].get("seq", 0))
        for e in journal.events(rollout=rollout, plant=order.plant)
        if isinstance(e.event.detail.get("agent"), dict) and e.event.detail["agent"].get("order") == order.id
    ]
    return max(seqs, default=0)


class _Silent(Exception):
    def __init__(self, since: float) -> None:
        self.since = since


def _attention(plant: str, action: str, reason: str) -> str:
    if action == "recheck":
        return json.dumps({"recheck": reason})
    return json.dumps({"plant": plant, "outcome": "attention", "release": None, "reason": reason})
