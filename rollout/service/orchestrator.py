"""Running a staged rollout: the loop that carries out what ``decide`` decides.

The same ``run`` starts a rollout and resumes one: the state is folded from the journal,
a plant a killed run left half way is finished or put back to what it ran before, and the
rollout goes on from there. Every decision is the pure ``rollout.core.decide``; this loop
only does what it says: starts plants on a pool, waits on the clock, records events.
Nothing is done twice that the journal says is done.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from rollout.config.project import Project
from rollout.core.clock import Clock
from rollout.core.decide import (
    Abort,
    Bake,
    Blocked,
    CrossThreshold,
    Decision,
    Ended,
    Finish,
    FinishWave,
    Halt,
    Pause,
    Recheck,
    RollBack,
    Skip,
    Start,
    StartWave,
    WaitRunning,
    WaitUntil,
    WaitWindow,
    decide,
)
from rollout.core.events import ROLLOUT, Event, EventSink
from rollout.core.plan import Plan
from rollout.core.projection import RolloutState
from rollout.core.spec import RolloutSpec, spec_of
from rollout.engine.executor import targets_from_json
from rollout.engine.runner import PlantRunner, WorkOrder
from rollout.errors import RolloutError
from rollout.service import assets
from rollout.service.recorder import Recorder
from rollout.state.journal import Journal, LockedError, RolloutRecord

State = Literal["finished", "paused", "blocked", "halted", "aborted"]
POLL_S = 1.0
"""The longest a wait goes without looking for an abort or an approval from another process."""
MAX_STEPS = 10_000_000
"""A bound on the loop's steps (a wait is one step of at most ``POLL_S``): months of waiting."""
WAITS = (WaitWindow, WaitUntil, WaitRunning)
SAFE_POINTS = (Start, StartWave, Bake, Recheck, FinishWave, Finish)
"""Decisions that begin something new: another process's abort or approval is looked for first."""
_ENDED: dict[str, State] = {"finished": "finished", "halted": "halted", "aborted": "aborted"}


class LoopError(RolloutError):
    """The loop made no progress on a decision: a defect, stopped rather than spun."""


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
        clock: Clock,
    ) -> None:
        self.project = project
        self.journal = journal
        self.runner = runner
        self.orders = orders
        self.display = display
        self.clock = clock

    def start(self, record: RolloutRecord, plants_check: list[str], warnings: list[str]) -> RolloutResult:
        """Create the rollout in the journal and run it; refuse up front if a plant is locked."""
        self._refuse_locked(record.id, plants_check)
        self.journal.create(record)
        opening = [Event("rollout.created", ROLLOUT, detail={"release": record.release, "by": record.operator})]
        # warnings are recorded with the rollout, not only printed
        opening += [Event("warning", ROLLOUT, detail={"reason": warning}) for warning in warnings]
        return self.run(record, opening)

    def resume(self, record: RolloutRecord) -> RolloutResult:
        self._refuse_locked(record.id, RolloutSpec.from_json(record.spec).plants)
        return self.run(record, [Event("rollout.resumed", ROLLOUT, detail={"by": record.operator})])

    def _refuse_locked(self, rollout: str, plants: list[str]) -> None:
        """Refuse before anything is done if another live process holds one of the plants,
        even another process running this same rollout."""
        now = time.time()
        for lock in self.journal.locks():
            if lock.plant in plants and not lock.stale(now) and not lock.mine(rollout):
                raise LockedError(lock.plant, lock)

    def run(self, record: RolloutRecord, opening: list[Event]) -> RolloutResult:
        """Run (or go on with) the rollout until it ends, pauses or is blocked."""
        spec = RolloutSpec.from_json(record.spec)
        recorder = Recorder(self.journal, record.id, record.operator, self.display)
        with recorder.driving():
            for event in opening:
                recorder.record(event)
            parallel = max((w.parallelism for w in spec.waves), default=1)
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"plant {record.id}") as pool:
                state, message = _Loop(self, recorder, spec, pool).run()
        # The outcome of every plant is read from the folded journal: it keeps the one truth.
        return RolloutResult(record.id, state, message, recorder.state.outcomes())


class _Loop:
    """One run of one rollout: ask ``decide``, do it, and again."""

    def __init__(self, owner: Orchestrator, recorder: Recorder, spec: RolloutSpec, pool: ThreadPoolExecutor) -> None:
        self.o = owner
        self.rec = recorder
        self.spec = spec
        self.pool = pool
        self.running: dict[Future[None], str] = {}
        self.configs = {name: plant.config for name, plant in owner.project.plants.items()}
        self._looked = 0.0

    def run(self) -> tuple[State, str]:
        for _ in range(MAX_STEPS):
            self._reap(self.running)
            self._look_outside()
            decision = self._decide(frozenset(self.running.values()), self.o.clock.now())
            if isinstance(decision, SAFE_POINTS):  # an abort asked for since is seen before it
                self.rec.take_foreign()
                decision = self._decide(frozenset(self.running.values()), self.o.clock.now())
            written, started = self.rec.seen, len(self.running)
            ended = self._carry_out(decision)
            if ended is not None:
                return ended
            if not isinstance(decision, WAITS) and (self.rec.seen, len(self.running)) == (written, started):
                raise LoopError(f"rollout {self.rec.rollout}: no progress on {decision}")
        raise LoopError(f"rollout {self.rec.rollout}: more than {MAX_STEPS} steps")

    def _decide(self, live: frozenset[str], now: dt.datetime) -> Decision:
        return self.rec.read(lambda state: decide(self.spec, state, now, live, self.configs))

    def _look_outside(self) -> None:
        """While waiting, another process's abort or approval is looked for once a ``POLL_S``."""
        if time.monotonic() - self._looked >= POLL_S:
            self._looked = time.monotonic()
            self.rec.take_foreign()

    def _carry_out(self, decision: Decision) -> tuple[State, str] | None:
        """Do what ``decision`` says; the run's end when it ends the run, else None."""
        rid, emit = self.rec.rollout, self.rec.emit
        match decision:
            case Ended(status):
                return _ENDED.get(status, "finished"), f"this rollout has already ended ({status})"
            case Pause(wave):
                if not self.rec.read(lambda state: wave in state.waves and state.waves[wave].approval_waiting):
                    emit("approval.waiting", detail={"wave": wave})
                emit("rollout.paused", detail={"wave": wave, "reason": "approval"})
                return "paused", (
                    f"rollout {rid} waits for approval of wave {wave!r}: "
                    f"run 'rollout approve {rid}' then 'rollout resume {rid}'"
                )
            case Blocked(reason):
                return "blocked", reason
            case Halt(wave, reason):
                emit("rollout.halted", detail={"wave": wave, "reason": reason})
                return "halted", reason
            case Abort(by, reason):
                emit("rollout.aborted", detail={"by": by, "reason": reason})
                return "aborted", f"rollout {rid} aborted by {by}: {reason}"
            case Finish():
                emit("rollout.finished", detail={"plants": self.rec.read(lambda state: state.outcomes())})
                return "finished", ""
        self._act(decision)
        return None

    def _act(self, decision: Decision) -> None:
        """The decisions the run goes on after: start, record, wait, put back."""
        emit = self.rec.emit
        match decision:
            case StartWave(wave, plants):
                emit("wave.started", detail={"wave": wave, "plants": list(plants)})
            case Start(plants, forced):
                for plant in plants:
                    if plant in forced:
                        windows = self.configs[plant].windows_text()
                        emit("window.forced", plant, {"by": "operator", "windows": windows})
                    self.running[self.pool.submit(self._plant, plant)] = plant
            case Skip(plant, reason, opening):
                at = opening.isoformat() if opening else None
                windows = self.configs[plant].windows_text()
                emit("plant.skipped", plant, {"reason": reason, "windows": windows, "next_opening": at})
            case WaitWindow(plant, until):
                if self.rec.read(lambda state: _window_until(state, plant)) != until.isoformat():
                    emit("window.waiting", plant, {"until": until.isoformat()})
                self._sleep_until(until)
            case Bake(wave, until):
                seconds = self.spec.wave(wave).bake_s
                emit("wave.baking", detail={"wave": wave, "seconds": seconds, "until": until.timestamp()})
            case Recheck(wave, plants):
                self._recheck(wave, plants)
            case WaitUntil(until):
                self._sleep_until(until)
            case WaitRunning(_, until):
                self._wait_running(until)
            case CrossThreshold(wave, response, reason):
                emit("wave.threshold", detail={"wave": wave, "response": response, "reason": reason})
            case RollBack(plants, reason):
                for plant in plants:
                    self._put_back(plant, reason)
            case FinishWave(wave):
                failures = self.rec.read(lambda state: state.failures(self.spec.wave(wave).plants))
                emit("wave.finished", detail={"wave": wave, "failures": failures})

    # -- carrying out ------------------------------------------------------------------

    def _plant(self, plant: str) -> None:
        """One plant, on a pool thread: its lease, then deploy (or finish an interrupted rollback)."""
        with self.rec.locked(plant, f"rollout {self.rec.rollout}: {self.spec.release}"):
            before, rolling_back = self.rec.read(lambda state: _before(state, plant))
            order = self.o.orders(plant)
            if self.o.project.config.assets.collect:
                order = order.knowing(assets.stamps(self.rec.journal, plant))
            if rolling_back and before is not None:
                self.o.runner.restore(order, before, "resumed an interrupted rollback", True, self.rec.sink())
            else:
                result = self.o.runner.deploy(order, before, self.rec.sink())
                warning = assets.keep(self.rec.journal, result.assets)
                if warning:
                    self.rec.emit("warning", detail={"reason": f"{plant}: {warning}"})

    def _reap(self, running: dict[Future[None], str]) -> None:
        """Plants whose work ended: a plant locked by someone else is recorded as blocked;
        any other failure ends the run (the pool lets the plants in flight end first)."""
        for future in [f for f in running if f.done()]:
            plant = running.pop(future)
            try:
                future.result()
            except LockedError as exc:
                self.rec.emit("plant.blocked", plant, {"reason": str(exc)})

    def _wait_running(self, until: dt.datetime | None) -> None:
        timeout = POLL_S
        if until is not None:
            timeout = max(0.0, min(POLL_S, (until - self.o.clock.now()).total_seconds()))
        wait(self.running, timeout=timeout, return_when=FIRST_COMPLETED)

    def _sleep_until(self, until: dt.datetime) -> None:
        # never less than a tick: a window that opens "now" by the clock is open at the next look
        self.o.clock.sleep(max(0.01, min(POLL_S, (until - self.o.clock.now()).total_seconds())))

    def _recheck(self, wave: str, plants: tuple[str, ...]) -> None:
        """One round of a bake: each healthy plant's checks again; a sick one is put back next."""
        for plant in plants:
            reason = self.o.runner.recheck(self.o.orders(plant), self.rec.sink())
            if reason:
                self.rec.emit("plant.bake_failed", plant, {"reason": reason})
        self.rec.emit("wave.rechecked", detail={"wave": wave, "at": self.o.clock.now().timestamp()})

    def _put_back(self, plant: str, why: str) -> None:
        before, cut_short = self.rec.read(lambda state: _before(state, plant))
        if before is None:  # never deployed by this rollout: nothing of it to put back
            self.rec.emit("plant.attention", plant, {"reason": f"{why}, but what it ran before is not recorded"})
            return
        with self.rec.locked(plant, f"rollout {self.rec.rollout}: putting back"):
            # a put-back a killed run cut short may have switched hosts whose restart never ran
            self.o.runner.restore(self.o.orders(plant), before, why, cut_short, self.rec.sink())


def _window_until(state: RolloutState, plant: str) -> str | None:
    return state.plants[plant].window_until if plant in state.plants else None


def _before(state: RolloutState, plant: str) -> tuple[Any, bool]:
    """What the plant ran when this rollout first reached it, and whether a rollback of it is cut short."""
    known = state.plants.get(plant)
    if known is None or known.before is None:
        return None, False
    return targets_from_json(known.before), known.rollback_started
