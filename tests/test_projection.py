"""Typed events round trip through JSON, and one fold turns a rollout's events into its state."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from rollout.core.events import PAYLOADS, ROLLOUT, Event, EventKind, Payload, ThresholdPayload
from rollout.core.projection import fold
from rollout.core.spec import RolloutSpec, SpecError, WaveSpec

KINDS = list(get_args(EventKind))
SAMPLE: dict[str, dict[str, Any]] = {
    "rollout.created": {"release": "v2", "by": "ann"},
    "rollout.finished": {"plants": {"a": "updated"}},
    "wave.started": {"wave": "w1", "plants": ["a", "b"]},
    "wave.threshold": {"wave": "w1", "response": "rollback_all", "reason": "2 failed"},
    "plant.before": {"before": [{"layer": "edge", "host": "h1", "release": "v1"}]},
    "plant.done": {"changed": True},
    "check.result": {"check": "http", "outcome": "succeeded", "attempts": 2},
    "abort.requested": {"by": "ann", "reason": "bad sensor data"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips(kind: str) -> None:
    detail = SAMPLE.get(kind, {"reason": "why", "extra_key_of_a_later_version": 1})
    event = Event(kind, "a" if kind.startswith("plant") else ROLLOUT, "edge", "h1", "v2", detail, 12.5, 7, "r1")  # type: ignore[arg-type]
    back = Event.from_dict(json.loads(json.dumps(event.as_dict())))
    assert back == event, f"{kind}: {event} came back as {back}"
    payload = back.payload
    assert isinstance(payload, PAYLOADS.get(kind, Payload)), f"{kind}: payload {type(payload).__name__}"
    for key, value in detail.items():
        assert payload.model_dump()[key] == value, f"{kind}: payload lost {key}: {payload!r}"


def test_typed_payload_fields() -> None:
    event = Event("wave.threshold", ROLLOUT, detail={"wave": "w1", "response": "halt", "reason": "r"})
    payload = event.payload
    assert isinstance(payload, ThresholdPayload), repr(payload)
    assert (payload.wave, payload.response, payload.reason) == ("w1", "halt", "r"), repr(payload)


@pytest.mark.parametrize(
    "record",
    [{"kind": "no.such.kind", "plant": ""}, {"plant": "a"}, {"kind": "plant.done", "detail": {"changed": "maybe?"}}],
)
def test_foreign_records_are_refused(record: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Event.from_dict(record)


def test_old_journal_event_without_optional_fields_loads() -> None:
    event = Event.from_dict({"kind": "plant.done", "plant": "a", "time": 1.0})
    assert event.detail == {} and event.payload.reason is None, repr(event)


def ev(kind: str, plant: str = ROLLOUT, layer: str | None = None, **detail: Any) -> Event:
    return Event(kind, plant, layer=layer, detail=detail, time=100.0)  # type: ignore[arg-type]


DEPLOYED = [
    ev("rollout.created", by="ann"),
    ev("wave.started", wave="w1", plants=["a", "b"]),
    ev("plant.locked", "a"),
    ev("plant.before", "a", before=[]),
    ev("plant.started", "a"),
    ev("layer.activated", "a", "edge"),
    ev("layer.activated", "a", "ingest"),
    ev("plant.done", "a", changed=True),
    ev("plant.unlocked", "a"),
    ev("plant.locked", "b"),
    ev("plant.started", "b"),
    ev("layer.failed", "b", "edge", reason="check failed"),
    ev("rollback.started", "b"),
]


def test_fold_plants_mid_run() -> None:
    state = fold(DEPLOYED)
    a, b = state.plants["a"], state.plants["b"]
    assert (a.outcome, a.ended, a.layers_done, a.wave) == ("updated", True, ["edge", "ingest"], "w1"), repr(a)
    assert (b.outcome, b.in_flight, b.rollback_started, b.failed_layers) == (
        None,
        True,
        True,
        {"edge": "check failed"},
    ), repr(b)
    assert b.phase == "rolling back", b.phase
    assert state.status == "running" and state.open_locks == 1, (state.status, state.open_locks)
    assert state.created_by == "ann"


@pytest.mark.parametrize(
    ("tail", "status"),
    [
        ([ev("plant.rolled_back", "b", reason="x"), ev("plant.unlocked", "b")], "interrupted"),
        ([ev("plant.rolled_back", "b"), ev("plant.unlocked", "b"), ev("rollout.finished")], "finished"),
        ([ev("plant.rolled_back", "b"), ev("plant.unlocked", "b"), ev("rollout.halted", reason="r")], "halted"),
        ([ev("plant.rolled_back", "b"), ev("plant.unlocked", "b"), ev("rollout.paused", wave="w2")], "paused"),
        (
            [
                ev("plant.rolled_back", "b"),
                ev("plant.unlocked", "b"),
                ev("rollout.paused", wave="w2"),
                ev("approval.granted", wave="w2", by="x"),
            ],
            "interrupted",
        ),
        ([ev("abort.requested", by="ann", reason="r")], "running"),
        (
            [
                ev("plant.rolled_back", "b"),
                ev("plant.unlocked", "b"),
                ev("abort.requested", by="ann", reason="r"),
                ev("rollout.aborted", by="ann", reason="r"),
            ],
            "aborted",
        ),
    ],
)
def test_fold_status(tail: list[Event], status: str) -> None:
    state = fold(DEPLOYED + tail)
    assert state.status == status, f"{[e.kind for e in tail]}: {state.status}"


def test_fold_abort_request_keeps_who_and_why() -> None:
    state = fold([*DEPLOYED, ev("abort.requested", by="ann@h", reason="sensor data wrong")])
    assert state.abort is not None and (state.abort.by, state.abort.reason) == ("ann@h", "sensor data wrong")


def test_fold_waves() -> None:
    state = fold(
        [
            ev("wave.started", wave="w1", plants=["a"]),
            ev("wave.threshold", wave="w1", response="rollback_all", reason="r"),
            ev("approval.waiting", wave="w2"),
            ev("approval.granted", wave="w2", by="bob"),
            ev("wave.baking", wave="w3", seconds=30, until=500.0),
            ev("wave.rechecked", wave="w3", at=450.0),
        ]
    )
    w1, w2, w3 = state.waves["w1"], state.waves["w2"], state.waves["w3"]
    assert w1.started and w1.threshold == ("rollback_all", "r"), repr(w1)
    assert w2.approval_waiting and w2.approval_granted == "bob", repr(w2)
    assert (w3.bake_until, w3.last_recheck) == (500.0, 450.0), repr(w3)


@pytest.mark.parametrize(
    ("events", "reasons"),
    [
        ([ev("rollout.created", by="ann", reason="gateway misbehaves")], "gateway misbehaves"),
        ([ev("rollout.created", by="ann")], ""),
        (
            [
                ev("rollout.created", by="ann"),
                ev("approval.granted", wave="early", by="bob", reason="canary is fine"),
                ev("approval.granted", wave="rest", by="cy"),  # an approval of an older journal: no reason
            ],
            "approved early by bob: canary is fine; approved rest by cy",
        ),
        (
            [ev("rollout.created"), ev("abort.requested", by="dan", reason="bad data"), ev("rollout.aborted")],
            "bad data",
        ),
        (
            [
                ev("approval.granted", wave="rest", by="bob", reason="ok"),
                ev("abort.requested", by="dan", reason="bad data"),
                ev("rollout.aborted"),
            ],
            "approved rest by bob: ok; aborted by dan: bad data",
        ),
        ([ev("abort.requested", by="dan", reason="bad data")], ""),  # asked, not (yet) aborted
    ],
)
def test_reasons_of_a_rollout(events: list[Event], reasons: str) -> None:
    assert fold(events).reasons() == reasons


def test_incremental_fold_equals_whole_fold() -> None:
    whole = fold(DEPLOYED)
    step = fold([])
    for event in DEPLOYED:
        step.apply(event)
    assert repr(step) == repr(whole)


def test_a_bake_failure_reopens_a_done_plant_until_it_is_put_back() -> None:
    state = fold([*DEPLOYED[:9], ev("plant.bake_failed", "a", reason="down")])
    assert not state.plants["a"].ended and state.plants["a"].bake_failed == "down", repr(state.plants["a"])
    state.apply(ev("plant.rolled_back", "a", reason="failed during bake"))
    assert state.plants["a"].outcome == "rolled_back" and state.failures(["a", "b"]) == 1


OLD_SPEC = {  # as plan_spec stored it before the typed models
    "kind": "deploy",
    "release": "v2",
    "commit": "c" * 40,
    "max_window_wait_s": 3600,
    "approve_through": None,
    "force_window": False,
    "waves": [
        {
            "name": "pilot",
            "plants": ["a"],
            "parallelism": 1,
            "max_failures": 0,
            "on_failure": "halt",
            "bake_s": 0,
            "approval": False,
            "outside_window": "wait",
        }
    ],
}


def test_spec_reads_old_records_and_round_trips() -> None:
    spec = RolloutSpec.from_json(OLD_SPEC)
    assert spec.waves == (WaveSpec("pilot", ("a",), 1, 0, "halt", 0.0, False, "wait"),), repr(spec)
    assert RolloutSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.to_json() == {
        **OLD_SPEC,
        "max_window_wait_s": 3600.0,
        "waves": [
            {
                **OLD_SPEC["waves"][0],
                "bake_s": 0.0,
                "max_starts_per_minute": None,
                "abort_failed_pct": None,
                "abort_min_finished": 0,
            }
        ],
    }


def test_spec_of_a_rollback_record_has_no_waves() -> None:
    assert RolloutSpec.from_json({"kind": "rollback"}).plants == []


@pytest.mark.parametrize(
    "bad",
    [
        {"waves": [{"plants": ["a"]}]},
        {"waves": [{"name": "w", "plants": ["a"], "on_failure": "explode"}]},
        {"waves": 3},
    ],
)
def test_spec_refuses_damaged_records(bad: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        RolloutSpec.from_json(bad)
