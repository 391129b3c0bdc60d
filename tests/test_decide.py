"""The orchestrator's decisions, in tables: no hosts, no real time, no journal.

Each case is a spec, the events a rollout has so far, the time and the plants running now;
the decision expected is compared whole (its type and every field).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from rollout.config.models.plant import PlantConfig
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
from rollout.core.events import ROLLOUT, Event
from rollout.core.projection import fold
from rollout.core.spec import RolloutSpec, WaveSpec

UTC = dt.UTC
T0 = dt.datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # a Wednesday


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def plant(timezone: str = "UTC", windows: Any = "always") -> PlantConfig:
    return PlantConfig.model_validate({"archetype": "a", "timezone": timezone, "windows": windows})


NIGHTLY = [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "02:00", "end": "04:00"}]
SUNDAY = [{"days": ["sun"], "start": "02:00", "end": "05:00"}]


def wave(name: str, plants: str, **kw: Any) -> WaveSpec:
    defaults: dict[str, Any] = {"parallelism": 2, "max_failures": 0, "on_failure": "halt"}
    defaults.update(kw)
    return WaveSpec(name=name, plants=tuple(plants.split()), **defaults)


def spec(*waves: WaveSpec, **kw: Any) -> RolloutSpec:
    return RolloutSpec(kind="deploy", release="v2", commit="c" * 40, waves=waves, **kw)


# -- events, as the orchestrator and the executor write them -------------------------------


def ev(kind: str, plant: str = ROLLOUT, layer: str | None = None, **detail: Any) -> Event:
    return Event(kind, plant, layer=layer, detail=detail, time=T0.timestamp())  # type: ignore[arg-type]


def started(name: str, plants: str) -> list[Event]:
    return [ev("wave.started", wave=name, plants=plants.split())]


def done(p: str, changed: bool = True) -> list[Event]:
    return [
        ev("plant.locked", p, owner="r"),
        ev("plant.before", p, before=[]),
        ev("plant.started", p),
        ev("layer.activated", p, "edge"),
        ev("plant.done", p, changed=changed),
        ev("plant.unlocked", p),
    ]


def failed(p: str) -> list[Event]:
    return [
        ev("plant.locked", p, owner="r"),
        ev("plant.before", p, before=[]),
        ev("plant.started", p),
        ev("layer.failed", p, "edge", reason="check failed"),
        ev("rollback.started", p),
        ev("plant.rolled_back", p, reason="check failed"),
        ev("plant.unlocked", p),
    ]


def finished(name: str) -> list[Event]:
    return [ev("wave.finished", wave=name, failures=0)]


@dataclass
class Case:
    id: str
    spec: RolloutSpec
    events: list[Event]
    expected: Decision
    now: dt.datetime = T0
    live: frozenset[str] = frozenset()
    plants: dict[str, PlantConfig] = field(default_factory=dict)


ONE = spec(wave("w1", "a b c d", parallelism=2))
TWO = spec(wave("w1", "a b"), wave("w2", "c d", approval=True))
BAKE = spec(wave("w1", "a b", bake_s=100))
B = at(2026, 3, 29, 0, 30)  # Berlin switches to summer time at 01:00 UTC this day


def done_at(p: str, seconds: float) -> list[Event]:
    """``done(p)``, the plant started ``seconds`` after T0 (a cap on starts per minute counts it)."""
    return [replace(e, time=T0.timestamp() + seconds) for e in done(p)]


RATE = spec(wave("w1", "a b c d", parallelism=4, max_starts_per_minute=2))
CRITERIA = spec(wave("w1", "a b c d e", parallelism=1, max_failures=5, abort_failed_pct=40, abort_min_finished=3))


CASES = [
    # -- starting and parallelism
    Case("new rollout starts its first wave", ONE, [], StartWave("w1", ("a", "b", "c", "d"))),
    Case("first plants up to the parallelism", ONE, started("w1", "a b c d"), Start(("a", "b"))),
    Case("one slot free", ONE, started("w1", "a b c d"), Start(("b",)), live=frozenset({"a"})),
    Case("no slot free", ONE, started("w1", "a b c d"), WaitRunning(("a", "b")), live=frozenset({"a", "b"})),
    Case("after the first two", ONE, started("w1", "a b c d") + done("a") + done("b"), Start(("c", "d"))),
    Case("parallelism 1", spec(wave("w1", "a b", parallelism=1)), started("w1", "a b"), Start(("a",))),
    Case(
        "last plants running",
        ONE,
        started("w1", "a b c d") + done("a") + done("b"),
        WaitRunning(("c", "d")),
        live=frozenset({"c", "d"}),
    ),
    Case(
        "all ended, no bake",
        ONE,
        started("w1", "a b c d") + done("a") + done("b") + done("c") + done("d"),
        FinishWave("w1"),
    ),
    Case(
        "unchanged plants count as ended",
        ONE,
        started("w1", "a b c d") + done("a", False) + done("b", False) + done("c") + done("d"),
        FinishWave("w1"),
    ),
    Case("every wave finished", ONE, started("w1", "a b c d") + finished("w1"), Finish()),
    Case("finished rollout", ONE, [ev("rollout.finished")], Ended("finished")),
    Case("halted rollout", ONE, [ev("rollout.halted", reason="x")], Ended("halted")),
    Case(
        "second wave after the first",
        spec(wave("w1", "a"), wave("w2", "b")),
        started("w1", "a") + finished("w1"),
        StartWave("w2", ("b",)),
    ),
    # -- a cap on plants started per minute
    Case("the cap allows two", RATE, started("w1", "a b c d"), Start(("a", "b"))),
    Case(
        "two started in the last minute: wait until the first is a minute old",
        RATE,
        started("w1", "a b c d") + done_at("a", -10) + done_at("b", -5),
        WaitUntil(T0 + dt.timedelta(seconds=50)),
    ),
    Case(
        "one started over a minute ago: one slot",
        RATE,
        started("w1", "a b c d") + done_at("a", -70) + done_at("b", -5),
        Start(("c",)),
    ),
    Case(
        "capped while one runs: wait for it or for the rate",
        RATE,
        started("w1", "a b c d") + done_at("a", -10) + done_at("b", -5),
        WaitRunning(("x",), T0 + dt.timedelta(seconds=50)),
        live=frozenset({"x"}),
    ),
    Case(
        "a start stamped after now (a shifted clock) never blocks",
        RATE,
        started("w1", "a b c d") + done_at("a", 500) + done_at("b", 600),
        Start(("c", "d")),
    ),
    # -- abort criteria: a share of the finished plants, once enough finished
    Case(
        "too few finished to judge",
        CRITERIA,
        started("w1", "a b c d e") + failed("a") + failed("b"),
        Start(("c",)),
    ),
    Case(
        "two of three finished failed: over 40%",
        CRITERIA,
        started("w1", "a b c d e") + failed("a") + done("b") + failed("c"),
        CrossThreshold("w1", "halt", "abort criteria of wave w1: 2 of 3 finished plants failed, more than 40%"),
    ),
    Case(
        "one of three failed: within 40%",
        CRITERIA,
        started("w1", "a b c d e") + failed("a") + done("b") + done("c"),
        Start(("d",)),
    ),
    Case(
        "abort criteria with rollback_all roll back what was updated",
        spec(
            wave(
                "w1",
                "a b c",
                parallelism=1,
                max_failures=5,
                on_failure="rollback_all",
                abort_failed_pct=0,
                abort_min_finished=1,
            )
        ),
        started("w1", "a b c") + failed("a"),
        CrossThreshold("w1", "rollback_all", "abort criteria of wave w1: 1 of 1 finished plants failed, more than 0%"),
    ),
    # -- thresholds as counts and percentages (max_failures is the planned count)
    Case(
        "one failure, threshold 0, halt",
        ONE,
        started("w1", "a b c d") + failed("a"),
        CrossThreshold("w1", "halt", "1 plant(s) failed, more than the 0 wave w1 allows"),
    ),
    Case(
        "one failure within threshold 1",
        spec(wave("w1", "a b c d", max_failures=1)),
        started("w1", "a b c d") + failed("a"),
        Start(("b", "c")),
    ),
    Case(
        "two failures over threshold 1",
        spec(wave("w1", "a b c d", max_failures=1)),
        started("w1", "a b c d") + failed("a") + failed("b"),
        CrossThreshold("w1", "halt", "2 plant(s) failed, more than the 1 wave w1 allows"),
    ),
    Case(
        "25% of 4 = 1 tolerates one",
        spec(wave("w1", "a b c d", max_failures=1, parallelism=4)),
        started("w1", "a b c d") + failed("c"),
        Start(("a", "b", "d")),
    ),
    Case(
        "50% of 4 = 2 tolerates two",
        spec(wave("w1", "a b c d", max_failures=2)),
        started("w1", "a b c d") + failed("a") + failed("b"),
        Start(("c", "d")),
    ),
    Case(
        "preflight failure counts",
        ONE,
        started("w1", "a b c d") + [ev("plant.preflight_failed", "a", reason="x")],
        CrossThreshold("w1", "halt", "1 plant(s) failed, more than the 0 wave w1 allows"),
    ),
    Case(
        "attention counts",
        ONE,
        started("w1", "a b c d") + [ev("plant.attention", "a", reason="x")],
        CrossThreshold("w1", "halt", "1 plant(s) failed, more than the 0 wave w1 allows"),
    ),
    Case(
        "skipped does not count",
        ONE,
        started("w1", "a b c d") + [ev("plant.skipped", "a", reason="x")],
        Start(("b", "c")),
    ),
    # -- on_failure
    Case(
        "continue goes on past the threshold",
        spec(wave("w1", "a b c", on_failure="continue")),
        started("w1", "a b c") + failed("a"),
        Start(("b", "c")),
    ),
    Case(
        "continue finishes the wave with failures",
        spec(wave("w1", "a b", on_failure="continue")),
        started("w1", "a b") + failed("a") + done("b"),
        FinishWave("w1"),
    ),
    Case(
        "halt waits for running plants",
        ONE,
        started("w1", "a b c d") + failed("a") + [ev("wave.threshold", wave="w1", response="halt", reason="r")],
        WaitRunning(("b",)),
        live=frozenset("b"),
    ),
    Case(
        "halt after the threshold",
        ONE,
        started("w1", "a b c d") + failed("a") + [ev("wave.threshold", wave="w1", response="halt", reason="r")],
        Halt("w1", "r"),
    ),
    Case(
        "rollback_all crossing",
        spec(wave("w1", "a b c", on_failure="rollback_all")),
        started("w1", "a b c") + done("a") + failed("b"),
        CrossThreshold("w1", "rollback_all", "1 plant(s) failed, more than the 0 wave w1 allows"),
    ),
    Case(
        "rollback_all rolls back updated plants of every wave",
        spec(wave("w0", "z"), wave("w1", "a b c", on_failure="rollback_all")),
        started("w0", "z")
        + done("z")
        + finished("w0")
        + started("w1", "a b c")
        + done("a")
        + done("c", False)
        + failed("b")
        + [ev("wave.threshold", wave="w1", response="rollback_all", reason="r")],
        RollBack(("z", "a"), "the wave's failure threshold was crossed"),
    ),
    Case(
        "rollback_all halts once all are back",
        spec(wave("w1", "a b", on_failure="rollback_all")),
        started("w1", "a b")
        + done("a")
        + failed("b")
        + [ev("wave.threshold", wave="w1", response="rollback_all", reason="r")]
        + failed("a"),
        Halt("w1", "r: every plant this rollout updated was rolled back"),
    ),
    # -- approvals
    Case("approval needed", TWO, started("w1", "a b") + done("a") + done("b") + finished("w1"), Pause("w2")),
    Case(
        "approval granted",
        TWO,
        started("w1", "a b") + finished("w1") + [ev("approval.granted", wave="w2", by="x")],
        StartWave("w2", ("c", "d")),
    ),
    Case(
        "approve_through covers the wave",
        spec(*TWO.waves, approve_through="w2"),
        started("w1", "a b") + finished("w1"),
        StartWave("w2", ("c", "d")),
    ),
    Case(
        "approve_through an earlier wave does not",
        spec(*TWO.waves, approve_through="w1"),
        started("w1", "a b") + finished("w1"),
        Pause("w2"),
    ),
    Case("approval of the first wave", spec(wave("w1", "a", approval=True)), [], Pause("w1")),
    Case(
        "resume paused for approval",
        TWO,
        started("w1", "a b")
        + finished("w1")
        + [
            ev("approval.waiting", wave="w2"),
            ev("rollout.paused", wave="w2", reason="approval"),
            ev("rollout.resumed", by="x"),
        ],
        Pause("w2"),
    ),
    # -- windows
    Case(
        "closed window, wait policy, opens soon",
        spec(wave("w1", "a"), max_window_wait_s=3 * 3600),
        started("w1", "a"),
        WaitWindow("a", at(2026, 6, 11, 2, 0)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY)},
    ),
    Case(
        "closed window beyond max wait: skipped",
        spec(wave("w1", "a"), max_window_wait_s=3600),
        started("w1", "a"),
        Skip("a", "window opens in 10800s, beyond max_window_wait", at(2026, 6, 11, 2, 0)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY)},
    ),
    Case(
        "closed window, skip policy",
        spec(wave("w1", "a", outside_window="skip"), max_window_wait_s=9e9),
        started("w1", "a"),
        Skip("a", "window closed", at(2026, 6, 11, 2, 0)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY)},
    ),
    Case(
        "force_window starts it",
        spec(wave("w1", "a"), force_window=True),
        started("w1", "a"),
        Start(("a",), ("a",)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY)},
    ),
    Case(
        "open window in Tokyo",
        spec(wave("w1", "a")),
        started("w1", "a"),
        Start(("a",)),
        now=at(2026, 6, 10, 17, 30),
        plants={"a": plant("Asia/Tokyo", NIGHTLY)},
    ),
    Case(
        "New York window in local time",
        spec(wave("w1", "a"), max_window_wait_s=86400),
        started("w1", "a"),
        WaitWindow("a", at(2026, 6, 11, 6, 0)),
        now=at(2026, 6, 10, 12, 0),
        plants={"a": plant("America/New_York", NIGHTLY)},
    ),
    Case(
        "Sao Paulo (no DST) window open",
        spec(wave("w1", "a")),
        started("w1", "a"),
        Start(("a",)),
        now=at(2026, 6, 10, 5, 30),
        plants={"a": plant("America/Sao_Paulo", NIGHTLY)},
    ),
    Case(
        "Berlin, the night clocks go forward: 02:00 local is skipped, opens at 03:00 CEST",
        spec(wave("w1", "a"), max_window_wait_s=86400),
        started("w1", "a"),
        WaitWindow("a", at(2026, 3, 29, 0, 0) + dt.timedelta(hours=1)),
        now=B,
        plants={"a": plant("Europe/Berlin", SUNDAY)},
    ),
    Case(
        "Berlin, the night clocks go back: window open in the repeated hour",
        spec(wave("w1", "a")),
        started("w1", "a"),
        Start(("a",)),
        now=at(2026, 10, 25, 1, 30),
        plants={"a": plant("Europe/Berlin", SUNDAY)},
    ),
    Case(
        "open plant starts while another waits",
        spec(wave("w1", "a b"), max_window_wait_s=86400),
        started("w1", "a b"),
        Start(("b",)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY), "b": plant()},
    ),
    Case(
        "running plant and a waiting one",
        spec(wave("w1", "a b"), max_window_wait_s=86400),
        started("w1", "a b"),
        WaitRunning(("b",), at(2026, 6, 11, 2, 0)),
        now=at(2026, 6, 10, 23, 0),
        live=frozenset("b"),
        plants={"a": plant("UTC", NIGHTLY), "b": plant()},
    ),
    # -- bake
    Case("bake begins", BAKE, started("w1", "a b") + done("a") + done("b"), Bake("w1", T0 + dt.timedelta(seconds=100))),
    Case(
        "first bake round",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100)],
        Recheck("w1", ("a", "b")),
    ),
    Case(
        "between rounds",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("wave.rechecked", wave="w1", at=T0.timestamp()),
        ],
        WaitUntil(T0 + dt.timedelta(seconds=20)),
        now=T0 + dt.timedelta(seconds=5),
    ),
    Case(
        "next round due",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("wave.rechecked", wave="w1", at=T0.timestamp()),
        ],
        Recheck("w1", ("a", "b")),
        now=T0 + dt.timedelta(seconds=21),
    ),
    Case(
        "a bake round's check events leave the ended plants ended (nothing deployed twice)",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("check.attempt", "a", "edge", check="config", attempt=1),
            ev("check.result", "a", "edge", check="config", outcome="succeeded"),
            ev("check.result", "b", "edge", check="config", outcome="succeeded"),
            ev("wave.rechecked", wave="w1", at=T0.timestamp()),
        ],
        WaitUntil(T0 + dt.timedelta(seconds=20)),
        now=T0 + dt.timedelta(seconds=5),
    ),
    Case(
        "bake over",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("wave.rechecked", wave="w1", at=T0.timestamp() + 90),
        ],
        FinishWave("w1"),
        now=T0 + dt.timedelta(seconds=101),
    ),
    Case(
        "a plant sickens during bake: rolled back",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("plant.bake_failed", "b", reason="ingest down"),
        ],
        RollBack(("b",), "failed during bake: ingest down"),
    ),
    Case(
        "the sick plant counts against the threshold",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("plant.bake_failed", "b", reason="ingest down"),
        ]
        + failed("b"),
        CrossThreshold("w1", "halt", "1 plant(s) failed, more than the 0 wave w1 allows"),
    ),
    Case(
        "no bake over a failed wave that goes on",
        spec(wave("w1", "a b", bake_s=100, on_failure="continue")),
        started("w1", "a b") + failed("a") + done("b"),
        FinishWave("w1"),
    ),
    # -- blocked
    Case(
        "a locked plant blocks the wave",
        ONE,
        started("w1", "a b c d") + [ev("plant.blocked", "a", reason="locked by y")],
        Blocked("locked by y"),
    ),
    Case(
        "blocked waits for running ones first",
        ONE,
        started("w1", "a b c d") + [ev("plant.blocked", "a", reason="locked by y")],
        WaitRunning(("b",)),
        live=frozenset("b"),
    ),
    Case(
        "resume tries a blocked plant again",
        ONE,
        started("w1", "a b c d") + [ev("plant.blocked", "a", reason="locked"), ev("rollout.resumed", by="x")],
        Start(("a", "b")),
    ),
    # -- abort
    Case(
        "abort while plants run: wait for them",
        ONE,
        started("w1", "a b c d") + [ev("abort.requested", by="ann", reason="bad")],
        WaitRunning(("a", "b")),
        live=frozenset({"a", "b"}),
    ),
    Case(
        "abort once nothing runs",
        ONE,
        started("w1", "a b c d") + done("a") + [ev("abort.requested", by="ann", reason="bad")],
        Abort("ann", "bad"),
    ),
    Case(
        "abort of a paused rollout",
        TWO,
        started("w1", "a b")
        + finished("w1")
        + [ev("rollout.paused", wave="w2"), ev("abort.requested", by="ann", reason="bad")],
        Abort("ann", "bad"),
    ),
    Case(
        "abort after a kill: the half-way plant is made whole first",
        ONE,
        started("w1", "a b c d") + done("a")[:3] + [ev("abort.requested", by="ann", reason="bad")],
        Start(("a",)),
    ),
    Case(
        "aborted rollout has ended",
        ONE,
        [ev("abort.requested", by="a", reason="r"), ev("rollout.aborted")],
        Ended("aborted"),
    ),
    # -- resume from each kind of interrupted state (nothing live: the run was killed)
    Case("locked but not started", ONE, started("w1", "a b c d") + done("a")[:1], Start(("a", "b"))),
    Case("started mid-layer", ONE, started("w1", "a b c d") + done("a")[:4], Start(("a", "b"))),
    Case("rollback started", ONE, started("w1", "a b c d") + failed("a")[:5], Start(("a", "b"))),
    Case("outcome written, lock left", ONE, started("w1", "a b c d") + done("a")[:5], Start(("b", "c"))),
    Case(
        "wave finished",
        TWO,
        started("w1", "a b") + done("a") + done("b") + finished("w1") + [ev("approval.granted", wave="w2", by="x")],
        StartWave("w2", ("c", "d")),
    ),
    Case(
        "threshold crossed",
        ONE,
        started("w1", "a b c d") + failed("a") + [ev("wave.threshold", wave="w1", response="halt", reason="r")],
        Halt("w1", "r"),
    ),
    Case(
        "half-way plant outside its window is still made whole",
        spec(wave("w1", "a")),
        started("w1", "a") + done("a")[:4],
        Start(("a",)),
        now=at(2026, 6, 10, 23, 0),
        plants={"a": plant("UTC", NIGHTLY)},
    ),
    Case(
        "killed mid-bake: rounds go on",
        BAKE,
        started("w1", "a b")
        + done("a")
        + done("b")
        + [
            ev("wave.baking", wave="w1", seconds=100, until=T0.timestamp() + 100),
            ev("wave.rechecked", wave="w1", at=T0.timestamp()),
        ],
        Recheck("w1", ("a", "b")),
        now=T0 + dt.timedelta(seconds=50),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    plants = {p: case.plants.get(p, plant()) for p in case.spec.plants}
    got = decide(case.spec, fold(case.events), case.now, case.live, plants)
    assert got == case.expected, f"{case.id}: decided {got}, expected {case.expected}"


def test_enough_cases() -> None:
    assert len(CASES) >= 40, f"only {len(CASES)} cases"


def test_decide_is_pure() -> None:
    """Asked twice with the same input, the same answer; the state is not changed by asking."""
    state = fold(started("w1", "a b c d") + done("a"))
    before = repr(state)
    plants = {p: plant() for p in ONE.plants}
    first = decide(ONE, state, T0, frozenset(), plants)
    assert first == decide(ONE, state, T0, frozenset(), plants), "a second call decided otherwise"
    assert repr(state) == before, "decide changed the state it was given"
