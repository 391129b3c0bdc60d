"""The orchestrator's decisions: a pure function of the spec, the folded state and the time.

``decide`` returns the one next step; the loop carries it out, records it, folds the new
events in and asks again. No I/O, no clock of its own: the table tests need neither hosts
nor real time. ``live`` is what the loop runs right now: after a kill -9 the events show
plants in flight that nothing runs, and those are started again (the executor finishes or
puts back a plant a killed run left half way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from rollout.config.models.plant import PlantConfig
from rollout.core.projection import FAILED, PlantState, RolloutState, WaveState
from rollout.core.spec import RolloutSpec, WaveSpec
from rollout.core.windows import is_open, next_opening


@dataclass(frozen=True)
class Start:
    """Start these plants (a plant a killed run left half way is carried on or put back)."""

    plants: tuple[str, ...]
    forced: tuple[str, ...] = ()
    """Of those, the plants started outside their window because of ``--force-window``."""


@dataclass(frozen=True)
class StartWave:
    wave: str
    plants: tuple[str, ...]


@dataclass(frozen=True)
class WaitWindow:
    """Nothing can start before ``plant``'s window opens at ``until``."""

    plant: str
    until: dt.datetime


@dataclass(frozen=True)
class Skip:
    plant: str
    reason: str
    next_opening: dt.datetime | None


@dataclass(frozen=True)
class Pause:
    """Wait for ``rollout approve`` before ``wave``."""

    wave: str


@dataclass(frozen=True)
class Bake:
    """Begin the wave's bake: it lasts until ``until``."""

    wave: str
    until: dt.datetime


@dataclass(frozen=True)
class Recheck:
    """Run the checks of these (updated) plants of a baking wave again."""

    wave: str
    plants: tuple[str, ...]


@dataclass(frozen=True)
class WaitUntil:
    """Nothing to do before ``until`` (the next bake round, or the bake's end)."""

    until: dt.datetime


@dataclass(frozen=True)
class CrossThreshold:
    """Record that the wave's failures crossed its threshold, and the response."""

    wave: str
    response: str
    reason: str


@dataclass(frozen=True)
class RollBack:
    """Put these plants back to what they ran before this rollout."""

    plants: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class WaitRunning:
    """Wait for running plants to end (or, at the latest, until ``until``)."""

    plants: tuple[str, ...]
    until: dt.datetime | None = None


@dataclass(frozen=True)
class Blocked:
    """A plant was locked by someone else: no new plant starts; the run ends blocked."""

    reason: str


@dataclass(frozen=True)
class Halt:
    wave: str
    reason: str


@dataclass(frozen=True)
class FinishWave:
    wave: str


@dataclass(frozen=True)
class Abort:
    """The abort asked for is carried out: nothing runs any more; record it and stop."""

    by: str
    reason: str


@dataclass(frozen=True)
class Finish:
    """Every wave is done: record the rollout's end."""


@dataclass(frozen=True)
class Ended:
    """The rollout has already ended (finished, halted or aborted); nothing to do."""

    status: str


Decision = (
    Start
    | StartWave
    | WaitWindow
    | Skip
    | Pause
    | Bake
    | Recheck
    | WaitUntil
    | CrossThreshold
    | RollBack
    | WaitRunning
    | Blocked
    | Halt
    | FinishWave
    | Abort
    | Finish
    | Ended
)


def recheck_interval(wave: WaveSpec) -> float:
    """Seconds between two rounds of a bake's checks: five rounds a bake, one a second at most."""
    return max(1.0, wave.bake_s / 5)


def decide(
    spec: RolloutSpec,
    state: RolloutState,
    now: dt.datetime,
    live: frozenset[str],
    plants: Mapping[str, PlantConfig],
) -> Decision:
    """The next step of the rollout. ``plants``: each plant's configuration (its windows)."""
    if state.status in ("finished", "halted", "aborted"):
        return Ended(state.status)
    if state.abort is not None:
        return _abort(spec, state, live)
    for wave in spec.waves:
        if _progress(state, wave.name).finished:
            continue
        return _wave(spec, wave, state, now, live, plants)
    if live:
        return WaitRunning(tuple(sorted(live)))
    return Finish()


def _abort(spec: RolloutSpec, state: RolloutState, live: frozenset[str]) -> Decision:
    """The safe point: no new plant; a plant a killed run left half way is still made whole."""
    if live:
        return WaitRunning(tuple(sorted(live)))
    stranded = tuple(p for p in spec.plants if p in state.plants and state.plants[p].in_flight)
    if stranded:
        return Start(stranded)
    assert state.abort is not None
    return Abort(state.abort.by, state.abort.reason)


def _wave(
    spec: RolloutSpec,
    wave: WaveSpec,
    state: RolloutState,
    now: dt.datetime,
    live: frozenset[str],
    plants: Mapping[str, PlantConfig],
) -> Decision:
    progress = _progress(state, wave.name)
    if wave.approval and not spec.pre_approved(wave.name) and progress.approval_granted is None:
        return WaitRunning(tuple(sorted(live))) if live else Pause(wave.name)
    if not progress.started:
        return StartWave(wave.name, wave.plants)
    failures = state.failures(wave.plants)
    if progress.threshold is None and failures > wave.max_failures and wave.on_failure != "continue":
        reason = f"{failures} plant(s) failed, more than the {wave.max_failures} wave {wave.name} allows"
        return CrossThreshold(wave.name, wave.on_failure, reason)
    criteria = _abort_criteria(wave, state)
    if progress.threshold is None and criteria:
        return CrossThreshold(wave.name, "rollback_all" if wave.on_failure == "rollback_all" else "halt", criteria)
    if progress.threshold is not None:
        return _threshold(spec, wave, state, live, progress.threshold)
    sick = tuple(
        p for p in wave.plants if p not in live and _plant(state, p).bake_failed and not _plant(state, p).ended
    )
    if sick:
        return RollBack(sick, f"failed during bake: {_plant(state, sick[0]).bake_failed}")
    blocked = next((_plant(state, p).blocked for p in wave.plants if _plant(state, p).blocked), None)
    if blocked:
        return WaitRunning(tuple(sorted(live))) if live else Blocked(blocked)
    pending = [p for p in wave.plants if p not in live and not _plant(state, p).ended]
    if pending or live:
        return _plants(spec, wave, state, now, live, pending, plants)
    return _bake(wave, state, now)


def _abort_criteria(wave: WaveSpec, state: RolloutState) -> str:
    """Why the wave's abort criteria are met ('' while they are not): more than its share of the
    plants that finished failed, once enough finished to tell."""
    if wave.abort_failed_pct is None:
        return ""
    ended = [p for p in wave.plants if _plant(state, p).ended and _plant(state, p).outcome != "skipped"]
    failures = sum(1 for p in ended if _plant(state, p).outcome in FAILED)
    if len(ended) < max(1, wave.abort_min_finished) or failures * 100 <= wave.abort_failed_pct * len(ended):
        return ""
    return (
        f"abort criteria of wave {wave.name}: {failures} of {len(ended)} finished plants failed, "
        f"more than {wave.abort_failed_pct:g}%"
    )


def _rate_room(wave: WaveSpec, state: RolloutState, now: dt.datetime) -> tuple[int | None, dt.datetime | None]:
    """How many more plants the wave's cap on starts per minute lets start now (None: no cap),
    and when the next one may start if none may now."""
    if wave.max_starts_per_minute is None:
        return None, None
    stamp = now.timestamp()
    # A start "in the future" (a clock shifted for a rehearsal) is not counted: it would block forever.
    recent = sorted(t for p in wave.plants if (t := _plant(state, p).started_at) is not None and 0 <= stamp - t < 60)
    room = max(0, wave.max_starts_per_minute - len(recent))
    frees = recent[len(recent) - wave.max_starts_per_minute] + 60 if not room else None
    return room, None if frees is None else dt.datetime.fromtimestamp(frees, dt.UTC)


def _plant(state: RolloutState, name: str) -> PlantState:
    """The plant's state, without adding it to ``state`` (decide changes nothing)."""
    return state.plants.get(name) or PlantState(name)


def _progress(state: RolloutState, wave: str) -> WaveState:
    return state.waves.get(wave) or WaveState(wave)


def _threshold(
    spec: RolloutSpec, wave: WaveSpec, state: RolloutState, live: frozenset[str], threshold: tuple[str, str]
) -> Decision:
    """After the threshold: running plants end first; then halt, or roll back every updated plant."""
    if live:
        return WaitRunning(tuple(sorted(live)))
    response, reason = threshold
    if response == "rollback_all":
        updated = tuple(p for p in spec.plants if p in state.plants and state.plants[p].outcome == "updated")
        if updated:
            return RollBack(updated, "the wave's failure threshold was crossed")
        return Halt(wave.name, f"{reason}: every plant this rollout updated was rolled back")
    return Halt(wave.name, reason)


def _plants(
    spec: RolloutSpec,
    wave: WaveSpec,
    state: RolloutState,
    now: dt.datetime,
    live: frozenset[str],
    pending: list[str],
    plants: Mapping[str, PlantConfig],
) -> Decision:
    """Start what the window, the parallelism and the rate allow; otherwise wait for a plant, a
    window or the rate."""
    room = max(0, wave.parallelism - len(live))
    capped, frees = _rate_room(wave, state, now)
    room = room if capped is None else min(room, capped)
    sorted_out = _by_window(spec, wave, state, now, pending, plants)
    if isinstance(sorted_out, Skip):
        return sorted_out
    ready, forced, waits = sorted_out
    if room and ready:
        chosen = tuple(ready[:room])
        return Start(chosen, tuple(p for p in forced if p in chosen))
    soonest = min(waits) if waits else None
    if ready and frees is not None:  # ready, held back only by the rate
        soonest = min(soonest, (frees, ready[0])) if soonest else (frees, ready[0])
        if not live:
            return WaitUntil(frees)
    if live:
        return WaitRunning(tuple(sorted(live)), soonest[0] if soonest else None)
    assert soonest is not None, "pending plants are either ready or waiting"
    return WaitWindow(soonest[1], soonest[0])


def _by_window(
    spec: RolloutSpec,
    wave: WaveSpec,
    state: RolloutState,
    now: dt.datetime,
    pending: list[str],
    plants: Mapping[str, PlantConfig],
) -> tuple[list[str], list[str], list[tuple[dt.datetime, str]]] | Skip:
    """The pending plants that may start now (and those of them forced), and when the others' windows
    open; or the Skip of the first plant whose window stays closed too long."""
    ready: list[str] = []
    forced: list[str] = []
    waits: list[tuple[dt.datetime, str]] = []
    for name in pending:
        config = plants[name]
        if _plant(state, name).in_flight or is_open(config, now) or spec.force_window:
            ready.append(name)  # a plant a killed run left half way is made whole, window or not
            if spec.force_window and not _plant(state, name).in_flight and not is_open(config, now):
                forced.append(name)
            continue
        opening = next_opening(config, now)
        # in UTC: a local time in a DST gap or fold never compares equal across zones (PEP 495)
        opening = opening.astimezone(dt.UTC) if opening else None
        wait_s = (opening - now).total_seconds() if opening else float("inf")
        if wave.outside_window == "skip" or wait_s > spec.max_window_wait_s:
            why = (
                "window closed" if wave.outside_window == "skip" else "window opens in {:.0f}s, beyond max_window_wait"
            )
            return Skip(name, why.format(wait_s), opening)
        assert opening is not None
        waits.append((opening, name))
    return ready, forced, waits


def _bake(wave: WaveSpec, state: RolloutState, now: dt.datetime) -> Decision:
    """Every plant of the wave ended: bake (checks again in rounds), then the wave is done."""
    progress = _progress(state, wave.name)
    failures = state.failures(wave.plants)
    if wave.bake_s <= 0 or failures > wave.max_failures:
        return FinishWave(wave.name)
    if progress.baking_since is None or progress.bake_until is None:
        return Bake(wave.name, now + dt.timedelta(seconds=wave.bake_s))
    healthy = tuple(p for p in wave.plants if _plant(state, p).outcome in ("updated", "unchanged"))
    until = dt.datetime.fromtimestamp(progress.bake_until, dt.UTC)
    if not healthy:
        return FinishWave(wave.name)
    if progress.last_recheck is None:
        return Recheck(wave.name, healthy)  # at least one round, however short the bake
    if now >= until:
        return FinishWave(wave.name)
    due = dt.datetime.fromtimestamp(progress.last_recheck, dt.UTC) + dt.timedelta(seconds=recheck_interval(wave))
    if now >= due:
        return Recheck(wave.name, healthy)
    return WaitUntil(min(due, until))
