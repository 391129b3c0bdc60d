"""Running a staged rollout: waves in order, plants in parallel inside a wave, thresholds,
bake, approvals, maintenance windows and plant locks, all recorded in the journal.

The same ``run`` starts a rollout and resumes one: what is done is read from the journal,
a plant a killed run left half way is finished or put back to what it ran before, and
the rollout goes on from there. Nothing is done twice that the journal says is done.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rollout.config.project import Project
from rollout.core.events import DURABLE, PLANT_DONE, ROLLOUT, Event, EventKind, EventSink
from rollout.core.plan import Plan
from rollout.core.projection import fold
from rollout.core.spec import spec_of
from rollout.core.windows import is_open, next_opening
from rollout.engine.executor import targets_from_json
from rollout.engine.runner import PlantRunner, WorkOrder
from rollout.state.journal import Journal, JournalEvent, LockedError, RolloutRecord

LOCK_TTL = 60.0
State = Literal["finished", "paused", "blocked", "halted", "aborted"]


@dataclass
class RolloutResult:
    id: str
    state: State
    message: str = ""
    plants: dict[str, str] = field(default_factory=dict)
    """Plant -> its last outcome in this rollout (updated, rolled_back, skipped, ...)."""

    @property
    def attention(self) -> bool:
        return "attention" in self.plants.values()

    @property
    def failed(self) -> bool:
        return any(o in ("rolled_back", "preflight_failed", "attention") for o in self.plants.values())


def new_rollout_id(now: dt.datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def plan_spec(plan: Plan, approve_through: str | None, force_window: bool, kind: str = "deploy") -> dict[str, Any]:
    """What the journal keeps of a rollout's plan, so that resume follows the same one."""
    return spec_of(plan, approve_through, force_window, kind).to_json()


class Orchestrator:
    def __init__(
        self,
        project: Project,
        journal: Journal,
        runner: PlantRunner,
        orders: Callable[[str], WorkOrder],
        display: EventSink,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.project = project
        self.journal = journal
        self.orders = orders
        self.display = display
        self.clock = clock
        self._lock = threading.Lock()
        self._order = threading.Lock()
        self.runner = runner
        self._held: set[str] = set()
        self._operator = ""
        self._stop_heartbeat = threading.Event()
        self._aborting = False

    # -- starting, resuming ------------------------------------------------------------

    def start(self, record: RolloutRecord, plants_check: list[str], warnings: list[str]) -> RolloutResult:
        """Create the rollout in the journal and run it; refuse up front if a plant is locked."""
        self._refuse_locked(record.id, plants_check)
        self.journal.create(record)
        self._emit(record.id, "rollout.created", detail={"release": record.release, "by": record.operator})
        for warning in warnings:  # recorded with the rollout, not only printed
            self._emit(record.id, "warning", detail={"reason": warning})
        return self.run(record)

    def resume(self, record: RolloutRecord) -> RolloutResult:
        plants = [p for w in record.spec["waves"] for p in w["plants"]]
        self._refuse_locked(record.id, plants)
        self._emit(record.id, "rollout.resumed", detail={"by": record.operator})
        return self.run(record)

    def _refuse_locked(self, rollout: str, plants: list[str]) -> None:
        """Refuse before anything is done if another live process holds one of the plants,
        even another process running this same rollout."""
        now = time.time()
        for lock in self.journal.locks():
            if lock.plant in plants and not lock.stale(now) and not lock.mine(rollout):
                raise LockedError(lock.plant, lock)

    # -- the waves ---------------------------------------------------------------------

    def run(self, record: RolloutRecord) -> RolloutResult:
        rid = record.id
        self._operator = record.operator
        self._release_leftovers(rid)
        heartbeat = threading.Thread(target=self._renew, args=(rid,), daemon=True)
        heartbeat.start()
        try:
            state, message = self._waves(rid, record.spec)
            self._release_leftovers(rid)
        finally:
            self._stop_heartbeat.set()
            heartbeat.join(timeout=5)
        # The outcome of every plant is read back from the journal: it keeps the one truth.
        return RolloutResult(rid, state, message, self._outcomes(rid))

    def _waves(self, rid: str, spec: dict[str, Any]) -> tuple[State, str]:
        history = self.journal.events(rollout=rid)
        if _last(history, "rollout.finished") or _last(history, "rollout.halted") or _last(history, "rollout.aborted"):
            return "finished", "this rollout has already ended"
        for index, wave in enumerate(spec["waves"]):
            if _wave_done(history, wave["name"]):
                continue
            if self._abort_requested(rid) and not self._stranded(history):
                return self._aborted(rid)
            if not self._approved(rid, spec, index, wave, history):
                return "paused", (
                    f"rollout {rid} waits for approval of wave {wave['name']!r}: "
                    f"run 'rollout approve {rid}' then 'rollout resume {rid}'"
                )
            state, message = self._wave(rid, spec, wave, history)
            if self._aborting:
                return self._aborted(rid)
            if state != "finished":
                return state, message
            history = self.journal.events(rollout=rid)
        self._emit(rid, "rollout.finished", detail={"plants": _outcomes(history)})
        return "finished", ""

    def _approved(
        self, rid: str, spec: dict[str, Any], index: int, wave: dict[str, Any], history: list[JournalEvent]
    ) -> bool:
        if not wave["approval"]:
            return True
        through = spec.get("approve_through")
        names = [w["name"] for w in spec["waves"]]
        if through in names and names.index(through) >= index:
            return True
        if any(e.event.kind == "approval.granted" and e.event.detail.get("wave") == wave["name"] for e in history):
            return True
        if not any(e.event.kind == "approval.waiting" and e.event.detail.get("wave") == wave["name"] for e in history):
            self._emit(rid, "approval.waiting", detail={"wave": wave["name"]})
        self._emit(rid, "rollout.paused", detail={"wave": wave["name"], "reason": "approval"})
        return False

    def _wave(
        self, rid: str, spec: dict[str, Any], wave: dict[str, Any], history: list[JournalEvent]
    ) -> tuple[State, str]:
        name = wave["name"]
        if not any(e.event.kind == "wave.started" and e.event.detail.get("wave") == name for e in history):
            self._emit(rid, "wave.started", detail={"wave": name, "plants": wave["plants"]})
        threshold = _last_wave_event(history, name, "wave.threshold")
        if threshold is None:
            todo = [p for p in wave["plants"] if p not in _ended(history)]
            blocked = self._plants(rid, spec, wave, todo, history)
            if blocked:
                return "blocked", blocked
            if self._aborting:
                return "aborted", ""
            if self._failures(rid, wave) <= wave["max_failures"] and wave["bake_s"] > 0:
                self._bake(rid, wave)
            thresholds = self.journal.events(rollout=rid, kinds=("wave.threshold",))
            threshold = _last_wave_event(thresholds, name, "wave.threshold")
        if threshold is not None:
            response = threshold.detail["response"]
            if response == "halt":
                self._emit(rid, "rollout.halted", detail={"wave": name, "reason": threshold.detail["reason"]})
                return "halted", threshold.detail["reason"]
            if response == "rollback_all":
                self._rollback_all(rid)
                self._emit(rid, "rollout.halted", detail={"wave": name, "reason": "every updated plant rolled back"})
                return "halted", f"{threshold.detail['reason']}: every plant this rollout updated was rolled back"
        self._emit(rid, "wave.finished", detail={"wave": name, "failures": self._failures(rid, wave)})
        return "finished", ""

    def _plants(
        self,
        rid: str,
        spec: dict[str, Any],
        wave: dict[str, Any],
        todo: list[str],
        history: list[JournalEvent],
    ) -> str:
        """Deploy the wave's plants, up to its parallelism at once; returns why it was blocked, or ''."""
        pending = list(todo)
        running: dict[Future[None], str] = {}
        blocked = ""
        stranded = self._stranded(history)
        with ThreadPoolExecutor(max_workers=max(1, wave["parallelism"])) as pool:
            while pending or running:
                if not self._aborting and self._abort_requested(rid):
                    # the safe point: no new plant starts; one a killed run left half way is made whole
                    self._aborting = True
                if self._aborting:
                    pending = [p for p in pending if p in stranded]
                crossed = self._failures(rid, wave) > wave["max_failures"]
                while (
                    pending
                    and len(running) < wave["parallelism"]
                    and not blocked
                    and not (crossed and wave["on_failure"] != "continue")
                ):
                    plant = pending.pop(0)
                    running[pool.submit(self._plant, rid, spec, wave, plant, history)] = plant
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    plant = running.pop(future)
                    try:
                        future.result()
                    except LockedError as exc:
                        blocked = str(exc)
                        self._emit(rid, "plant.blocked", plant=plant, detail={"reason": blocked})
                self._check_threshold(rid, wave)
        return blocked

    def _abort_requested(self, rid: str) -> bool:
        """Whether someone ran ``rollout abort`` on this rollout (a cheap query, between plants)."""
        return bool(self.journal.events(rollout=rid, kinds=("abort.requested",)))

    def _stranded(self, history: list[JournalEvent]) -> set[str]:
        """Plants a killed run left half way: even an aborted rollout makes them whole first."""
        state = fold(e.event for e in history)
        return {p.name for p in state.plants.values() if p.in_flight}

    def _aborted(self, rid: str) -> tuple[State, str]:
        state = fold(e.event for e in self.journal.events(rollout=rid))
        abort = state.abort
        by, why = (abort.by, abort.reason) if abort else ("", "")
        self._emit(rid, "rollout.aborted", detail={"by": by, "reason": why})
        return "aborted", f"rollout {rid} aborted by {by}: {why}"

    def _check_threshold(self, rid: str, wave: dict[str, Any]) -> None:
        failures = self._failures(rid, wave)
        history = self.journal.events(rollout=rid, kinds=("wave.threshold",))
        if failures > wave["max_failures"] and _last_wave_event(history, wave["name"], "wave.threshold") is None:
            reason = f"{failures} plant(s) failed, more than the {wave['max_failures']} wave {wave['name']} allows"
            if wave["on_failure"] != "continue":
                self._emit(
                    rid,
                    "wave.threshold",
                    detail={"wave": wave["name"], "response": wave["on_failure"], "reason": reason},
                )

    def _plant(
        self, rid: str, spec: dict[str, Any], wave: dict[str, Any], plant: str, history: list[JournalEvent]
    ) -> None:
        """One plant of a wave: window, lock, then deploy (or finish an interrupted rollback)."""
        config = self.project.plants[plant].config
        now = self.clock()
        if not is_open(config, now):
            if spec.get("force_window"):
                self._emit(
                    rid, "window.forced", plant=plant, detail={"by": "operator", "windows": config.windows_text()}
                )
            elif not self._wait_for_window(rid, spec, wave, plant):
                return
        with self._locked(rid, plant, f"rollout {rid}: {spec['release']}"):
            sink = self._sink(rid)
            mine = [e for e in history if e.event.plant == plant]
            before_event = _last(mine, "plant.before")
            before = targets_from_json(before_event.detail["before"]) if before_event else None
            order = self.orders(plant)
            if _last(mine, "rollback.started") is not None and before is not None:
                self.runner.restore(order, before, "resumed an interrupted rollback", True, sink)
            else:
                self.runner.deploy(order, before, sink)

    @contextmanager
    def _locked(self, rid: str, plant: str, purpose: str) -> Iterator[None]:
        """Hold the plant's lock while its work goes on. The plant's outcome releases it in the
        same write (``_record``); when the work ends without one, it is released here."""
        self.journal.acquire(plant, rid, purpose, LOCK_TTL, self._operator)
        with self._lock:
            self._held.add(plant)
        self._emit(rid, "plant.locked", plant=plant, detail={"owner": rid})
        try:
            yield
        finally:
            with self._lock:
                still = plant in self._held
                self._held.discard(plant)
            if still:
                self._write(rid, [Event("plant.unlocked", plant)], plant)

    def _release_leftovers(self, rid: str) -> None:
        """Locks of this rollout that no live process of it holds: a killed run's, left on plants
        whose outcome it had already written, or that it had locked but not yet started."""
        now = time.time()
        for lock in self.journal.locks():
            if lock.owner == rid and lock.plant not in self._held and (lock.stale(now) or lock.mine(rid)):
                left = {"left_by": f"pid {lock.pid} on {lock.hostname}"}
                self._write(rid, [Event("plant.unlocked", lock.plant, detail=left)], lock.plant)

    def _wait_for_window(self, rid: str, spec: dict[str, Any], wave: dict[str, Any], plant: str) -> bool:
        config = self.project.plants[plant].config
        now = self.clock()
        opening = next_opening(config, now)
        wait_s = (opening - now).total_seconds() if opening else float("inf")
        if wave["outside_window"] == "skip" or wait_s > spec["max_window_wait_s"]:
            why = (
                "window closed"
                if wave["outside_window"] == "skip"
                else f"window opens in {wait_s:.0f}s, beyond max_window_wait"
            )
            self._emit(
                rid,
                "plant.skipped",
                plant=plant,
                detail={
                    "reason": why,
                    "windows": config.windows_text(),
                    "next_opening": opening.isoformat() if opening else None,
                },
            )
            return False
        self._emit(rid, "window.waiting", plant=plant, detail={"until": opening.isoformat() if opening else None})
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not is_open(config, self.clock()):
            time.sleep(min(30.0, max(0.1, deadline - time.monotonic())))
        return True

    def _bake(self, rid: str, wave: dict[str, Any]) -> None:
        self._emit(rid, "wave.baking", detail={"wave": wave["name"], "seconds": wave["bake_s"]})
        outcomes = self._outcomes(rid)
        updated = [p for p in wave["plants"] if outcomes.get(p) in ("updated", "unchanged")]
        deadline = time.monotonic() + wave["bake_s"]
        rounds = 0
        while updated and (rounds == 0 or time.monotonic() < deadline):
            rounds += 1
            for plant in list(updated):
                reason = self.runner.recheck(self.orders(plant), self._sink(rid))
                if reason:
                    updated.remove(plant)
                    self._emit(rid, "plant.bake_failed", plant=plant, detail={"reason": reason})
                    self._put_back(rid, plant, f"failed during bake: {reason}")
                    self._check_threshold(rid, wave)
            time.sleep(min(max(0.0, deadline - time.monotonic()), max(1.0, wave["bake_s"] / 5)))

    def _rollback_all(self, rid: str) -> None:
        """Every plant this rollout updated (and did not already put back) goes back to what it ran."""
        for plant, outcome in self._outcomes(rid).items():
            if outcome == "updated":
                self._put_back(rid, plant, "the wave's failure threshold was crossed")

    def _put_back(self, rid: str, plant: str, why: str) -> None:
        history = self.journal.events(rollout=rid, plant=plant)
        before_event = _last(history, "plant.before")
        if before_event is None:
            return
        with self._locked(rid, plant, f"rollout {rid}: putting back"):
            before = targets_from_json(before_event.detail["before"])
            self.runner.restore(self.orders(plant), before, why, False, self._sink(rid))

    def _outcomes(self, rid: str) -> dict[str, str]:
        return _outcomes(self.journal.events(rollout=rid, kinds=tuple(_OUTCOME)))

    def _failures(self, rid: str, wave: dict[str, Any]) -> int:
        outcomes = self._outcomes(rid)
        return sum(1 for p in wave["plants"] if outcomes.get(p) in ("rolled_back", "preflight_failed", "attention"))

    # -- recording ---------------------------------------------------------------------

    def _renew(self, rid: str) -> None:
        while not self._stop_heartbeat.wait(LOCK_TTL / 4):
            with self._lock:
                held = sorted(self._held)
            if held:
                try:
                    self.journal.renew(held, rid, LOCK_TTL)
                except Exception:  # a failed renewal shows as an expiring lock; the next write stops the run
                    pass

    def _sink(self, rid: str) -> EventSink:
        return lambda event: self._record(rid, event)

    def _record(self, rid: str, event: Event) -> None:
        """Journal first, then show: an event that is shown was recorded, in the journal's order.

        A plant's outcome, the release of its lock and ``plant.unlocked`` are one write: a run
        killed between two writes would otherwise leave the lock behind a finished plant."""
        with self._lock:
            releasing = event.kind in PLANT_DONE and event.plant in self._held
            if releasing:
                self._held.discard(event.plant)
        if releasing:
            self._write(rid, [event, Event("plant.unlocked", event.plant)], event.plant)
        else:
            self._write(rid, [event], None)
        if event.kind in DURABLE:
            self.journal.sync()  # outside the lock: plants' syncs overlap instead of queueing

    def _write(self, rid: str, events: list[Event], unlock: str | None) -> None:
        with self._order:
            if unlock is None:
                seqs = [self.journal.append(rid, e) for e in events]
            else:
                seqs = self.journal.append_releasing(rid, events, unlock, rid)
            for event, seq in zip(events, seqs, strict=True):
                self.display(replace(event, seq=seq, rollout=rid))

    def _emit(self, rid: str, kind: EventKind, plant: str = ROLLOUT, detail: dict[str, Any] | None = None) -> None:
        self._record(rid, Event(kind, plant, detail=detail or {}))


def _last(events: list[JournalEvent], kind: str) -> Event | None:
    for journal_event in reversed(events):
        if journal_event.event.kind == kind:
            return journal_event.event
    return None


def _last_wave_event(events: list[JournalEvent], wave: str, kind: str) -> Event | None:
    for journal_event in reversed(events):
        if journal_event.event.kind == kind and journal_event.event.detail.get("wave") == wave:
            return journal_event.event
    return None


def _wave_done(events: list[JournalEvent], wave: str) -> bool:
    return _last_wave_event(events, wave, "wave.finished") is not None


def _ended(events: list[JournalEvent]) -> set[str]:
    """Plants whose part in the rollout is over: the last plant event ends it."""
    last: dict[str, str] = {}
    for journal_event in events:
        event = journal_event.event
        if event.plant != ROLLOUT and event.kind not in ("plant.locked", "plant.unlocked"):
            last[event.plant] = event.kind
    return {plant for plant, kind in last.items() if kind in PLANT_DONE}


_OUTCOME = {
    "plant.done": None,
    "plant.rolled_back": "rolled_back",
    "plant.attention": "attention",
    "plant.preflight_failed": "preflight_failed",
    "plant.skipped": "skipped",
}


def _outcomes(events: list[JournalEvent]) -> dict[str, str]:
    """Each plant's latest outcome in the rollout, from its terminal events."""
    found: dict[str, str] = {}
    for journal_event in events:
        event = journal_event.event
        if event.kind in _OUTCOME:
            outcome = _OUTCOME[event.kind] or ("updated" if event.detail.get("changed") else "unchanged")
            found[event.plant] = outcome
    return found
