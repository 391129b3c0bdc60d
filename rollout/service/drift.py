"""``rollout status --verify``: every host's current release hashed against its manifest, and
recorded in the state (a record of kind "verify" with one ``host.verified`` event per host)
so the console marks drifted layers. Nothing here prints or exits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rollout.config.project import Plant, Project
from rollout.core.clock import Clock
from rollout.core.drift import Drift
from rollout.core.events import ROLLOUT, Event
from rollout.engine.connections import Connections, Options
from rollout.engine.fanout import fan_out
from rollout.engine.verify import Verified, parse_verify, verify
from rollout.service.orchestrator import new_rollout_id
from rollout.service.restore import Ran, recorded
from rollout.service.runners import reachable_plants
from rollout.service.state import open_state
from rollout.state.journal import Journal, RolloutRecord


@dataclass(frozen=True)
class HostDrift:
    """One host's layer: what its current release folder holds against its manifest, or why it was not read."""

    plant: str
    layer: str
    host: str
    verified: Verified | None
    error: str | None = None

    @property
    def drifted(self) -> bool:
        return self.verified is not None and self.verified.drift.drifted

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "drift", "plant": self.plant, "layer": self.layer, "host": self.host}
        if self.verified is None:
            return {**found, "error": self.error}
        release = {"release": self.verified.release, "release_dir": self.verified.release_dir}
        return {**found, **release, **self.verified.drift.as_dict()}


def verify_plants(
    project: Project,
    plants: list[str],
    options: Options,
    clock: Clock,
    journal: Journal | None = None,
    noted: Callable[[str], None] | None = None,
) -> list[HostDrift]:
    """Hash every host's current release of the chosen plants (all when none) and record the
    result; ``noted`` is told the id of the verify record once it is created."""
    chosen = reachable_plants(project, plants, "verify its hosts' files")
    journal = journal or open_state(project)
    names = [layer.name for layer in project.config.layers]
    rows = []
    for plant in chosen:
        ran = recorded(journal, plant.name, names)
        rows += [_expected(row, ran) for row in _verify_plant(project, plant, options)]
    rid = _record(journal, [p.name for p in chosen], rows, options.operator, clock)
    if noted is not None:
        noted(rid)
    return rows


def drift_summary(plant: str, rows: list[HostDrift]) -> str:
    """One line for a person: which hosts drifted and how, or that every host is as released."""
    drifted = [f"{r.host} ({r.layer}): {r.verified.drift.summary()}" for r in rows if r.drifted and r.verified]
    unread = [f"{r.host} ({r.layer}): {r.error}" for r in rows if r.verified is None]
    if not drifted and not unread:
        return f"{plant}: every host as released"
    parts = [f"{len(drifted)} drifted: " + "; ".join(drifted)] if drifted else []
    parts += [f"{len(unread)} not checked: " + "; ".join(unread)] if unread else []
    return f"{plant}: " + " · ".join(parts)


def _expected(row: HostDrift, ran: dict[str, Ran]) -> HostDrift:
    """A host with nothing installed where the state says its layer runs a release was wiped or
    replaced: all of that release is missing."""
    was = ran.get(row.layer)
    if row.verified is None or row.verified.release_dir is not None or was is None:
        return row
    why = f"nothing installed, but the state says it runs {was.release} (rollout restore brings it back)"
    return replace(row, verified=replace(row.verified, release=was.release, drift=Drift(unreadable=why)))


def _verify_plant(project: Project, plant: Plant, options: Options) -> list[HostDrift]:
    conns = Connections(project, plant, options)
    where = {
        (layer.name, host.name): (layer, host)
        for layer in project.config.layers
        for host in plant.inventory.group_hosts(layer.inventory_group)
    }

    def one(key: tuple[str, str]) -> Verified:
        layer, host = where[key]
        step = verify(conns.dir(host, layer), None, options.command_timeout)
        return parse_verify(conns.run(host, step).stdout)

    try:
        found = fan_out(list(where), one)
    finally:
        conns.close()
    found.raise_bugs()
    rows = [HostDrift(plant.name, layer, host, state) for (layer, host), state in found.succeeded.items()]
    rows += [HostDrift(plant.name, layer, host, None, str(error)) for (layer, host), error in found.failed.items()]
    order = list(where)
    return sorted(rows, key=lambda r: order.index((r.layer, r.host)))


def _record(journal: Journal, plants: list[str], rows: list[HostDrift], operator: str, clock: Clock) -> str:
    rid = "verify-" + new_rollout_id(clock.now())
    spec: dict[str, object] = {"kind": "verify", "plants": plants, "waves": []}
    journal.create(RolloutRecord(rid, "verify", None, None, time.time(), operator, spec))
    journal.append(rid, Event("rollout.created", ROLLOUT, detail={"by": operator, "reason": "verify"}))
    for row in rows:
        verified = row.verified
        detail = {"error": row.error} if verified is None else verified.drift.as_dict()
        release = verified.release if verified else None
        journal.append(rid, Event("host.verified", row.plant, row.layer, row.host, release, detail))
    outcomes = {p: "drifted" if any(r.drifted for r in rows if r.plant == p) else "verified" for p in plants}
    journal.append(rid, Event("rollout.finished", ROLLOUT, detail={"plants": outcomes}))
    return rid
