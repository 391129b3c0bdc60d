"""What every backend's leases keep beyond ``state_contract``: fencing numbers, and one winner.

A backend's test class subclasses ``LeaseContract`` next to ``StateContract``; the same
``backend`` fixture serves both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from state_contract import SPAWN, START, WAIT, Backend, reap, spawn

from rollout.core.clock import ManualClock
from rollout.state.journal import LockedError
from rollout.state.url import open_url, parse_state_url

CONTENDERS = 20


def contend(url: str, plant: str, owner: str, go: Any, out: Any, stop: Any) -> None:
    """A child: open the state, try for the lease with the others at once, report, then hold on
    until told to stop (a winner that exited would leave a dead holder's lease to take over)."""
    journal = open_url(parse_state_url(url, Path("/")))
    go.wait(WAIT)
    try:
        lock = journal.acquire(plant, owner, "contending", 3600.0, owner)
    except LockedError as exc:
        out.put((owner, "refused", exc.lock.owner))
    else:
        out.put((owner, "won", lock.fence))
    stop.wait(WAIT)


class LeaseContract:
    """The tests; a subclass provides the ``backend`` fixture."""

    def test_the_fence_grows_with_each_new_holder_and_never_for_the_same_one(self, backend: Backend) -> None:
        clock = ManualClock(START)
        mine, theirs = backend.open(clock), backend.open(clock)
        first = mine.acquire("p1", "r1", "deploy", 60.0)
        again = mine.acquire("p1", "r1", "deploy again", 60.0)
        mine.renew(["p1"], "r1", 60.0)
        assert first.fence >= 1 and again.fence == first.fence, f"re-entrant acquire moved the fence: {again}"
        assert [lk.fence for lk in theirs.locks()] == [first.fence], "a renewal moved the fence"
        assert mine.holding(again) and theirs.holding(again)
        clock.advance(61)
        assert not mine.holding(again), "an expired lease still counts as held"
        taken = theirs.acquire("p1", "r2", "deploy", 60.0)
        assert taken.fence > first.fence, f"a take-over kept the fence: {first.fence} then {taken.fence}"
        assert not mine.holding(again) and theirs.holding(taken), "the taken-over holder still holds"
        theirs.release("p1", "r2")
        assert not theirs.holding(taken), "a released lease still counts as held"
        later = mine.acquire("p1", "r3", "deploy", 60.0)
        assert later.fence > taken.fence, "the fence went back after a release: an old holder could act again"
        other = mine.acquire("p2", "r3", "deploy", 60.0)
        assert other.fence >= 1 and mine.holding(other) and mine.holding(later)

    def test_of_twenty_processes_acquiring_one_plant_exactly_one_wins(self, backend: Backend) -> None:
        go, out, stop = SPAWN.Barrier(CONTENDERS), SPAWN.Queue(), SPAWN.Event()
        owners = [f"r{i}" for i in range(CONTENDERS)]
        children = [spawn(contend, backend.url, "p1", owner, go, out, stop) for owner in owners]
        try:
            results = [out.get(timeout=WAIT) for _ in owners]
            winners = [owner for owner, outcome, _ in results if outcome == "won"]
            assert len(winners) == 1, f"winners: {winners} of {results}"
            refused_by = {holder for _, outcome, holder in results if outcome == "refused"}
            assert refused_by == set(winners), f"refusals named {refused_by}, the winner is {winners}"
            assert [lk.owner for lk in backend.open().locks()] == winners
        finally:
            stop.set()
            reap(children)
