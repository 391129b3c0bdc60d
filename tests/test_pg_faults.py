"""Faults and concurrency on the shared PostgreSQL state: real processes, a real server.

- Two operators (their own ``ROLLOUT_OPERATOR`` and ``HOME``) deploy overlapping plants at
  once: one is refused (exit 4) naming the holder; no plant is worked on by both.
- Twenty deploys of one plant at once: exactly one acts, nineteen are refused (exit 4).
- Plant IT's rollback of a plant a wave works on: refused (4), naming that rollout.
- The server restarted, or the run's backends terminated, in the middle of a rollout: it
  stops with exit 3 saying the state could not be used, or goes on recording every step;
  no host is ever switched without its step in the journal; ``rollout resume`` finishes it.
- The seeded kill -9 suite of ``test_faults`` on PostgreSQL, at fewer points.

Races are made deterministic by holding the winner with SIGSTOP (at a moment none of its
connections is inside a transaction, see ``PgState.hold``) until the losers have answered.
The hosts' own history files are the witness of who worked on what.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pgkit import (
    PgState,
    Proc,
    Procs,
    assert_hosts_agree_with_journal,
    by_plant,
    event,
    first_to,
    host_histories,
    journal_of,
    last_switch,
    migrated_state,
    new_entries,
    operator_env,
    restart,
    watchdog,
)
from test_faults import (
    FIXED_POINTS,
    SEED,
    STAGED,
    TWELVE,
    Run,
    assert_plants,
    at_count,
    kill_then_resume,
)
from test_faults import (
    event as fault_event,
)

from deploykit import DeployProject, PlantSpec, build, journal_complete
from pgserver import PgServer, running_server

ONE_WAVE = """  parallelism: 3
  max_failures: 6
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
TWO_BY_TWO = """  parallelism: 2
  max_failures: 6
  on_failure: continue
  waves:
    - name: all
      select: {remaining: true}
"""
CROWD = 20
PG_SEEDED_POINTS = 5
"""Seeded kill points on PostgreSQL, after the three fixed ones: eight in all."""
KILL_SUITE_LIMIT = 600
"""Seconds the whole kill -9 suite may take before its processes are killed (it takes ~2 min)."""
EIGHT = TWELVE[:8]
"""test_faults' plants p1..p8 (p4 fragile; every fixed point's plant among them), its waves:
a smaller last wave keeps eight kills and resumes within two minutes."""


class Lab:
    """One test's project, database and processes."""

    def __init__(self, tmp_path: Path, server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.server = server
        self.monkeypatch = monkeypatch
        self.dps: list[DeployProject] = []
        self.states: list[PgState] = []
        self.procs = Procs({})

    def make(self, plants: int | list[PlantSpec], strategy: str) -> tuple[DeployProject, PgState]:
        dp = build(self.tmp, "local", None, plants, light=True, strategy=strategy)
        self.dps.append(dp)
        state = migrated_state(self.server, dp.root)
        self.states.append(state)
        # This process reads the state on connections of its own name; the processes under
        # test are given ``state.url(label)`` each.
        self.monkeypatch.setenv("ROLLOUT_STATE", state.plain_url)
        self.procs.env = {"ROLLOUT_STATE": state.url()}
        return dp, state

    def deploy(self, dp: DeployProject, state: PgState, release: str, label: str, *plants: str, **env: str) -> Proc:
        """``rollout deploy --json`` of ``release`` (on ``plants``) as ``label``'s own process."""
        chosen = [arg for plant in plants for arg in ("--plant", plant)]
        return self.procs.start(
            "deploy",
            "-C",
            dp.root,
            "--release",
            release,
            *chosen,
            "--yes",
            "--json",
            env={"ROLLOUT_STATE": state.url(label), **env},
            name=f"{label}: deploy {release} {' '.join(plants)}",
        )

    def done(self, proc: Proc, expected: int = 0) -> None:
        code = proc.finish()
        assert code == expected, f"{proc.name} exited {code}, expected {expected}: {proc.err[-3000:]}; {proc.seen()}"

    def close(self) -> None:
        self.procs.stop_all()
        for dp in self.dps:
            dp.stop_services()
        for state in self.states:
            state.close()


@pytest.fixture
def lab(tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    made = Lab(tmp_path, pg_server, monkeypatch)
    yield made
    made.close()


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgServer]:
    """A server of this module's own, for the tests that restart it."""
    with running_server() as server:
        yield server


@pytest.fixture
def own_lab(tmp_path: Path, own_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    made = Lab(tmp_path, own_server, monkeypatch)
    yield made
    made.close()


def holder_named(proc: Proc, plant: str, rollout: str, operator: str) -> None:
    """The refusal names the plant, the rollout that holds it and its operator."""
    text = proc.err
    wanted = f"plant {plant} is locked by rollout {rollout} "
    assert wanted in text and f"of {operator} on machine" in text, f"{proc.name}: the refusal {text!r} lacks {wanted!r}"
    assert "Traceback" not in text, text


def test_two_operators_on_overlapping_plants_one_is_refused_naming_the_holder(lab: Lab) -> None:
    dp, state = lab.make(5, ONE_WAVE)
    lab.done(lab.deploy(dp, state, "v1", "ci"))
    before = host_histories(dp)
    people = {"ann": ("ann@eng-1", "v2", ("p1", "p2", "p3")), "bob": ("bob@eng-2", "many", ("p3", "p4", "p5"))}
    runs = {
        who: lab.deploy(dp, state, release, who, *plants, **operator_env(lab.tmp / f"home-{who}", operator))
        for who, (operator, release, plants) in people.items()
    }
    # Both go at once; whoever locks the shared plant first is held there until the other answered.
    first = first_to(list(runs.values()), event("plant.locked", "p3"))
    assert first is not None, f"neither locked p3: {[(r.name, r.seen()) for r in runs.values()]}"
    winner = next(who for who, run in runs.items() if run is first)
    loser = "bob" if winner == "ann" else "ann"
    state.hold(first, winner)
    try:
        lab.done(runs[loser], 4)
    finally:
        first.go_on()
    lab.done(first, 0)
    holder_named(runs[loser], "p3", str(first.rollout_id()), people[winner][0])
    gained = by_plant(new_entries(before, host_histories(dp)))
    operators = {plant: {by for _, _, _, by in entries} for plant, entries in gained.items()}
    both = [plant for plant, who in operators.items() if len(who) > 1]
    assert not both, f"worked on by both operators: {both}: {gained}"
    assert operators.get("p3") == {people[winner][0]}, f"p3 should be {winner}'s alone: {gained.get('p3')}"
    for plant in people[winner][2]:
        dp.assert_whole(plant, people[winner][1])
    # The loser may have got past its first look at the locks (both looked before either locked)
    # and done its own plants before the lock of p3 stopped it: those are whole on its release.
    for plant in people[loser][2]:
        if plant != "p3" and plant in gained:
            dp.assert_whole(plant, people[loser][1])
    loser_rollout = runs[loser].rollout_id()
    if loser_rollout is not None:  # it got past the first look and was stopped at the lock itself
        started = {e.event.plant for e in journal_of(dp).events(rollout=loser_rollout, kinds=("plant.started",))}
        assert "p3" not in started, f"{loser}'s rollout {loser_rollout} started p3"
    assert not [lock.plant for lock in journal_of(dp).locks()], "a lock was left behind"


def test_twenty_deploys_of_one_plant_at_once_exactly_one_acts(lab: Lab) -> None:
    dp, state = lab.make(2, ONE_WAVE)
    ci = lab.deploy(dp, state, "v1", "ci")
    lab.done(ci)
    before = host_histories(dp)
    crowd = [lab.deploy(dp, state, "v2", f"c{i:02d}", "p1", ROLLOUT_OPERATOR=f"op-{i:02d}@crowd") for i in range(CROWD)]
    first = first_to(crowd, event("plant.locked", "p1"))
    assert first is not None, f"none of {CROWD} locked p1: {[p.err[-300:] for p in crowd]}"
    index = crowd.index(first)
    state.hold(first, f"c{index:02d}")
    try:
        codes = {proc.name: proc.finish() for proc in crowd if proc is not first}
    finally:
        first.go_on()
    assert first.finish() == 0, f"the one that locked p1 exited otherwise: {first.err[-3000:]}"
    others = {name: code for name, code in codes.items() if code != 4}
    assert not others, f"not refused with 4: {others}: {[p.err[-500:] for p in crowd if p.name in others]}"
    holder = str(first.rollout_id())
    for proc in crowd:
        if proc is not first:
            holder_named(proc, "p1", holder, f"op-{index:02d}@crowd")
    gained = by_plant(new_entries(before, host_histories(dp)))
    assert set(gained) == {"p1"}, f"hosts other than p1's changed: {gained}"
    per_host = {
        key: [(action, release, by) for k, action, release, by in gained["p1"] if k == key]
        for key in {k for k, *_ in gained["p1"]}
    }
    assert len(per_host) == 2 and all(len(v) == 1 for v in per_host.values()), f"not one switch per host: {per_host}"
    assert {by for *_, by in gained["p1"]} == {f"op-{index:02d}@crowd"}, gained
    dp.assert_whole("p1", "v2")
    acted = [
        r.id
        for r in journal_of(dp).rollouts()
        if journal_of(dp).events(rollout=r.id, plant="p1", kinds=("plant.started",))
    ]
    assert acted == [ci.rollout_id(), holder], f"rollouts that started p1: {acted}, expected v1's and {holder}"


def test_plant_it_rollback_of_a_plant_a_wave_works_on_is_refused_naming_the_rollout(lab: Lab) -> None:
    dp, state = lab.make(3, TWO_BY_TWO)
    lab.done(lab.deploy(dp, state, "v1", "ci"))
    run = lab.deploy(dp, state, "v2", "wave", ROLLOUT_OPERATOR="rae@release")
    assert run.until(event("plant.locked", "p2")), f"the run ended before it locked p2: {run.seen()}"
    rollout_id = str(run.rollout_id())
    state.hold(run, "wave")
    try:
        plant_it = lab.procs.start(
            "rollback",
            "-C",
            dp.root,
            "--plant",
            "p2",
            "--json",
            env={"ROLLOUT_STATE": state.url("plant-it"), **operator_env(lab.tmp / "home-it", "ivo@plant-p2")},
            name="plant IT: rollback p2",
        )
        code = plant_it.finish()
    finally:
        run.go_on()
    assert code == 4, f"plant IT's rollback exited {code}: {plant_it.err}; {plant_it.seen()}"
    holder_named(plant_it, "p2", rollout_id, "rae@release")
    lab.done(run, 0)
    journal = journal_of(dp)
    assert [r.id for r in journal.rollouts() if r.kind == "rollback"] == [], "the refused rollback was recorded"
    for plant in ("p1", "p2", "p3"):
        dp.assert_whole(plant, "v2")
    rolled = [
        entry for entries in host_histories(dp).values() for entry in entries if entry.get("action") == "rollback"
    ]
    assert not rolled, f"a host was rolled back: {rolled}"
    journal_complete(dp)


# -- the server itself fails -------------------------------------------------------------


def break_state(state: PgState, fault: str) -> str:
    """Restart the server, or end the run's backends; what was done, for messages."""
    if fault == "restart":
        restart(state.server)
        return "the server was restarted"
    ended = state.terminate_backends("run")
    assert ended, "the run had no connection to terminate"
    return f"backends {ended} were terminated"


@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_the_state_lost_mid_rollout_no_host_switched_unrecorded_and_resume_finishes(own_lab: Lab, fault: str) -> None:
    dp, state = own_lab.make(6, TWO_BY_TWO)
    plants = [f"p{i}" for i in range(1, 7)]
    own_lab.done(own_lab.deploy(dp, state, "v1", "ci"))
    run = own_lab.deploy(dp, state, "v2", "run")
    assert run.until(event("layer.activating", "p2")), f"the run ended first: {run.seen()}"
    state.hold(run, "run")
    try:
        what = break_state(state, fault)
    finally:
        run.go_on()
    code = run.finish()
    context = f"{what} while the run was held after layer.activating of p2"
    seen = f"exit {code}: {run.err[-2000:]}; last events {run.seen()}"
    assert "Traceback" not in run.err and "internal error" not in run.err, f"{context}: {seen}"
    # With --json everything, errors too, is a JSON line on stdout: the library never prints.
    assert run.stderr == "", f"{context}: something printed to stderr: {run.stderr!r}"
    assert_hosts_agree_with_journal(dp, plants, context)
    if code == 3:  # stopped before its next step: says why, and resume finishes it
        assert "cannot write the state" in run.err or "cannot read the state" in run.err, f"{context}: {seen}"
        assert "the connection to the server was lost" in run.err, f"{context}: {seen}"
        finished = {e.get("plant") for e in run.events if e.get("kind") == "plant.done"}
        assert len(finished) < len(plants), f"{context}: it said it stopped, yet finished every plant: {seen}"
        resumed = own_lab.procs.start(
            "resume", "-C", dp.root, "--yes", "--json", env={"ROLLOUT_STATE": state.url("resume")}
        )
        own_lab.done(resumed, 0)
    else:  # the pool's fresh connection wrote the next step: then every step was recorded
        assert code == 0, f"{context}: neither stopped (3) nor finished (0): {seen}"
    assert_hosts_agree_with_journal(dp, plants, f"{context}, at the end")
    for plant in plants:
        dp.assert_whole(plant, "v2")
        assert last_switch(dp, plant) == {"edge": "v2", "ingest": "v2"}, f"{context}: {plant}"
    journal_complete(dp)


# -- the seeded kill -9 suite on PostgreSQL ---------------------------------------------


def test_kill_9_at_fixed_and_seeded_points_on_postgresql_then_resume(lab: Lab, rollout: Callable[..., Any]) -> None:
    """``test_faults``' kill -9 suite with its assertions (``kill_then_resume``), its fixed points
    and five seeded ones, on eight of its plants."""
    dp, _ = lab.make(EIGHT, STAGED)
    with watchdog(KILL_SUITE_LIMIT, "the kill -9 suite on postgresql"):
        kill_suite(dp, rollout)


def kill_suite(dp: DeployProject, rollout: Callable[..., Any]) -> None:
    """The body: test_faults' ``Run`` inherits ``ROLLOUT_STATE`` (the database) from this process."""
    # The first deploy proves the path and counts its events (test_faults runs two more to
    # count; their runs are as long within a few events). Seeded points stay within 80 % of
    # that count, so every run reaches its point.
    first = Run(dp, "v1")
    code, err = first.finish()
    assert code == 0, err
    length = len(first.events)
    state = {spec.name: "v1" for spec in EIGHT}
    assert_plants(dp, state, "after the first deploy")
    for release, kind, plant in FIXED_POINTS:
        context = f"postgresql, fixed point: deploy {release} killed right after {kind} of {plant}"
        state = kill_then_resume(dp, rollout, release, lambda _, k=kind, p=plant: fault_event(k, p), state, context)
    rng = random.Random(SEED)
    cycle = ["bad-fragile", "v1", "bad-fragile", "v2"]
    for point in range(PG_SEEDED_POINTS):
        release = cycle[point % len(cycle)]
        at = rng.randint(1, int(length * 0.8))
        context = f"postgresql, seed {SEED}, point {point}: deploy {release} killed after event {at} of ~{length}"
        state = kill_then_resume(dp, rollout, release, lambda run, at=at: at_count(run, at), state, context)
