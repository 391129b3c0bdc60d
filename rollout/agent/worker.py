"""The agent's work: take the plant's orders, fetch what they need by hash, run them with the same
executor as the centre (the hosts reached over the plant's own network), and announce every
step into the outbox before it is taken. The link to the centre may drop at any time: nothing
here waits for it except fetching what an order needs before any host is touched."""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from rollout.agent.blobs import BlobCache
from rollout.agent.client import Centre, LinkDown, Refused
from rollout.agent.outbox import Outbox
from rollout.agent.settings import AgentSettings
from rollout.agent.site import NodeRunner, load_kit, node_rebuild, node_rollback
from rollout.core.agentwork import Assignment, BlobError, result_to_json, unpack_bundle
from rollout.core.events import Event
from rollout.core.steps import PlantResult, targets_from_json
from rollout.errors import ConfigError, RolloutError

log = logging.getLogger("rollout.agent")
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
"""Waits between tries while the link is down: soon at first, then every 5 s."""
MAX_BATCH = 500
T = TypeVar("T")


class WrongPlant(ConfigError):
    """The token is an agent token of another plant."""


class Agent:
    """One plant's agent; ``run`` until ``stop`` is set."""

    def __init__(self, settings: AgentSettings, stop: threading.Event) -> None:
        self.s = settings
        self.stop = stop
        self.centre = Centre(settings)
        self.outbox = Outbox(settings.work_dir / "outbox.db")
        self.blobs = BlobCache(settings.work_dir / "blobs", self._fetch)
        self.wake = threading.Event()
        self.current = ""
        self.greeted = False

    def hello(self) -> None:
        """Make sure the centre takes this token for this plant (Refused, WrongPlant), waiting out a link down."""
        found = self._retrying(self.centre.me)
        self.greeted = found is not None
        if found is not None and found.get("plant") != self.s.plant:
            raise WrongPlant.one(
                "--plant", f"the token is the agent token of plant {found.get('plant')!r}, not {self.s.plant!r}",
                expected="the token made for this plant ('rollout user add NAME --role agent --plant P')",
            )  # fmt: skip

    def run(self) -> None:
        if not self.outbox.running():  # a plant left half way goes on first, even with the link down
            self.hello()
        threads = [
            threading.Thread(target=t, daemon=True, name=n)
            for t, n in ((self._send, "outbox"), (self._beat, "heartbeat"))
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stop.is_set():
                self._once()
        finally:
            self.wake.set()
            for thread in threads:
                thread.join(timeout=10)
            self.centre.close()
            self.outbox.close()

    def _once(self) -> None:
        """Go on with an order a killed agent left, else wait for the next one."""
        left = self.outbox.running()
        if left:
            self._execute(*left[0], resumed=True)
            return
        if not self.greeted:
            self.hello()
        found = self._retrying(self.centre.next_order)
        if found is None or self.stop.is_set():
            return
        order_id, body = str(found["id"]), json.dumps(found["assignment"])
        if self.outbox.state(order_id) == "finished":
            self.wake.set()  # its result is on its way; the centre offers it until it arrives
            self.stop.wait(1.0)
            return
        self.outbox.take(order_id, body)
        self._quietly(lambda: self.centre.take(order_id))
        self._execute(order_id, body, resumed=False)

    def _execute(self, order_id: str, body: str, resumed: bool) -> None:
        self.current = order_id
        assignment = Assignment.model_validate_json(body)
        log.info("order %s: %s of %s%s", order_id, assignment.action, assignment.plant, " (resumed)" if resumed else "")
        resumed = resumed or bool(self.outbox.kinds(order_id))
        # Off the main thread: ansible-runner takes SIGTERM and SIGINT for itself when it runs
        # there and never gives them back, and the agent would no longer stop when told to.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"order {order_id}") as pool:
            running = pool.submit(self._carry_out, order_id, assignment, resumed)
        try:
            result = running.result()
        except (BlobError, ConfigError) as exc:
            result = self._refused(order_id, assignment, str(exc))
        self.outbox.finish(order_id, result)
        self.current = ""
        self.wake.set()
        log.info("order %s: finished", order_id)

    def _carry_out(self, order_id: str, a: Assignment, resumed: bool) -> str:
        project = load_kit(self.s.work_dir / "project", a.kit, self.blobs.get)
        work = a.work()
        bundles = {
            lay.bundle_hash: unpack_bundle(a.indexes[lay.layer], lay.bundle_hash, self.blobs.get) for lay in work.layers
        }
        order = a.work(bundles)
        runner = NodeRunner(project, self.s, order, a.operator)
        sink = self._sink(order_id)
        before = None if a.before is None else targets_from_json(a.before)
        recorded = self.outbox.last_detail(order_id, "plant.before") if resumed else None
        if before is None and recorded and isinstance(recorded.get("before"), dict):
            # a killed run had recorded what the plant ran: the hosts it moved since are this run's to settle
            before = targets_from_json(recorded["before"])
        begun_rollback = "rollback.started" in self.outbox.kinds(order_id)
        if a.action == "recheck":
            return result_to_json(runner.recheck(order, sink))
        if a.action == "rollback":
            return result_to_json(node_rollback(runner, order, a, sink))
        if a.action == "rebuild":
            return result_to_json(node_rebuild(runner, order, a, sink))
        if a.action == "restore" or (resumed and begun_rollback and before is not None):
            why = a.why or "resumed after the agent restarted"
            return result_to_json(runner.restore(order, before or {}, why, a.interrupted or resumed, sink))
        return result_to_json(runner.deploy(order, before, sink))

    def _refused(self, order_id: str, a: Assignment, why: str) -> str:
        """An order that cannot be run here (a blob that does not match, a kit that does not load):
        refused before any host is touched."""
        reason = f"refused by the agent, nothing changed: {why}"
        if a.action == "recheck":
            return result_to_json(reason)
        self._sink(order_id)(Event("plant.preflight_failed", a.plant, detail={"reason": reason}))
        return result_to_json(PlantResult(a.plant, "preflight_failed", None, reason))

    def _sink(self, order_id: str) -> Callable[[Event], None]:
        def keep(event: Event) -> None:
            self.outbox.append(order_id, event.as_dict())
            self.wake.set()

        return keep

    # -- the link ----------------------------------------------------------------------------

    def _fetch(self, digest: str) -> bytes:
        found = self._retrying(lambda: self.centre.blob(digest))
        if found is None:
            raise BlobError(f"blob {digest[:12]}: the agent stopped before it came")
        return found

    def _retrying(self, call: Callable[[], T]) -> T | None:
        """``call`` until the link answers or the agent stops (None); a refusal is raised at once."""
        for attempt in range(10**9):
            if self.stop.is_set():
                return None
            try:
                return call()
            except LinkDown as exc:
                if attempt == 0 or attempt % 12 == 0:
                    log.warning("the centre cannot be reached, trying again: %s", exc)
                self.stop.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        return None

    def _quietly(self, call: Callable[[], object]) -> None:
        try:
            call()
        except (LinkDown, Refused, RolloutError) as exc:
            log.warning("%s", exc)

    def _send(self) -> None:
        """Deliver the outbox in order whenever there is something and the link is up."""
        failures = 0
        while not (self.stop.is_set() and self.outbox.pending() == 0):
            try:
                sent = self._deliver()
                failures = 0
            except (LinkDown, Refused, RolloutError) as exc:
                if failures % 12 == 0:
                    log.warning("outbox: %s (%d waiting)", exc, self.outbox.pending())
                failures += 1
                if self.stop.wait(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]) and failures > 3:
                    return  # stopping with the link down: the outbox keeps them for the next start
                continue
            if not sent:
                if self.stop.is_set():
                    return
                self.wake.wait(1.0)
                self.wake.clear()

    def _deliver(self) -> int:
        count = 0
        for order_id, events in self.outbox.unsent(MAX_BATCH).items():
            through = self.centre.send_events(order_id, events)
            self.outbox.sent(order_id, through)
            count += len(events)
        for order_id, last_seq, result in self.outbox.undelivered():
            self.centre.send_result(order_id, last_seq, json.loads(result))
            self.outbox.delivered(order_id)
            count += 1
        return count

    def _beat(self) -> None:
        node = socket.gethostname()
        while True:
            detail: dict[str, object] = {"order": self.current, "outbox": self.outbox.pending(), "node": node}
            self._quietly(functools.partial(self.centre.beat, detail))
            if self.stop.wait(self.s.heartbeat_s):
                return
