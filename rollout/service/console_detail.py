"""The console's plant and rollout pages: one plant's hosts, layers, history and locks; one
rollout's waves, plants and failed checks, and what may be done with it now. Read from the
state; cut to what the asker may see. Nothing here prints or exits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rollout.config.project import Project
from rollout.core.access import Principal
from rollout.core.events import ROLLOUT, Event
from rollout.core.projection import ENDED, PlantState, RolloutState, WaveState, fold
from rollout.errors import ConfigError
from rollout.service.assets import AssetRow, query
from rollout.service.console import Filters, PlantRow, history_for, local_and_utc, network
from rollout.service.history_queries import HistoryEntry
from rollout.state.journal import Journal, Lock, RolloutRecord


@dataclass(frozen=True)
class HostRow:
    layer: str
    host: str
    address: str


@dataclass
class PlantPage:
    row: PlantRow
    hosts: list[HostRow]
    history: list[HistoryEntry]
    locks: list[Lock]
    releases: list[str]
    """Releases it ran, newest first: what plant IT may roll back to."""
    assets: list[AssetRow] = field(default_factory=list)
    """What each of its hosts is and runs, as last collected."""
    agent: str = ""
    """For an agent plant: when its agent was last heard from, and on which node."""


def plant_page(project: Project, journal: Journal, who: Principal, name: str) -> PlantPage:
    """The caller has checked that ``name`` is in reach."""
    plant = project.plant(name)
    rows = network(project, journal, Principal(who.name, "plant-it", (name,)), Filters()).rows  # this plant alone
    row = next(r for r in rows if r.name == name)
    hosts = [
        HostRow(layer.name, host.name, host.address)
        for layer in project.config.layers
        for host in plant.inventory.group_hosts(layer.inventory_group)
    ]
    entries = history_for(project, journal, who, name)
    locks = [lock for lock in journal.locks() if lock.plant == name]
    releases: list[str] = []
    for stored in reversed(journal.events(plant=name, kinds=("layer.activated",))):
        release = stored.event.release
        if release and release not in releases and "," not in release:
            releases.append(release)
    page = PlantPage(row, hosts, entries, locks, releases, query(project, [name], journal=journal))
    if plant.config.execution == "agent":
        page.agent = _agent_line(journal, name, row.timezone)
    return page


def _agent_line(journal: Journal, plant: str, zone: str) -> str:
    beat = journal.heartbeats().get(plant)
    if beat is None:
        return "run by its agent, which has never been heard from"
    try:
        node = str(json.loads(beat.detail).get("node") or "?")
    except ValueError:
        node = "?"
    return f"run by its agent ({beat.agent} on {node}), last heard {local_and_utc(beat.at, zone)}"


@dataclass(frozen=True)
class FailedCheck:
    plant: str
    layer: str
    host: str
    check: str
    outcome: str
    output: str


@dataclass
class WaveRow:
    name: str
    state: WaveState
    plants: list[PlantState]


@dataclass
class RolloutPage:
    record: RolloutRecord
    entry: HistoryEntry
    state: RolloutState
    waves: list[WaveRow]
    failed: list[FailedCheck]
    layers: list[str]
    actions: list[str] = field(default_factory=list)
    """What may be done with it now, by this asker: approve, resume, abort."""
    last_seq: int = 0


def rollout_page(project: Project, journal: Journal, who: Principal, rid: str) -> RolloutPage | None:
    """None when there is no such rollout or it is out of reach (the caller answers 404 for both)."""
    record = journal.rollout(rid)
    if record is None:
        return None
    entry = next((e for e in history_for(project, journal, who) if e.record.id == rid), None)
    if entry is None:
        return None
    stored = journal.events(rollout=rid)
    state = fold(e.event for e in stored)
    waves = [_wave(w, state, who) for w in record.spec.get("waves", [])]
    failed = _failed_checks([e.event for e in stored if e.event.plant == ROLLOUT or who.sees(e.event.plant)])
    page = RolloutPage(record, entry, state, waves, failed, [layer.name for layer in project.config.layers])
    page.actions = _actions(who, record, entry, state)
    page.last_seq = stored[-1].seq if stored else 0
    return page


def _wave(spec: dict[str, object], state: RolloutState, who: Principal) -> WaveRow:
    name = str(spec.get("name", ""))
    planned = [str(p) for p in spec.get("plants", []) or []]  # type: ignore[attr-defined]
    plants = [state.plants.get(p) or PlantState(p, wave=name) for p in who.visible(planned)]
    return WaveRow(name, state.waves.get(name) or WaveState(name, planned), plants)


def _failed_checks(events: list[Event]) -> list[FailedCheck]:
    """Every check that did not pass, with the output of its last attempt."""
    last_output: dict[tuple[str, str | None, str | None, str], str] = {}
    found: list[FailedCheck] = []
    for event in events:
        check = str(event.detail.get("check", ""))
        key = (event.plant, event.layer, event.host, check)
        if event.kind == "check.attempt":
            last_output[key] = str(event.detail.get("detail", ""))
        elif event.kind == "check.result" and event.detail.get("outcome") != "succeeded":
            outcome = str(event.detail.get("outcome", ""))
            host = event.host or "all hosts"
            found.append(FailedCheck(event.plant, event.layer or "", host, check, outcome, last_output.get(key, "")))
    return found


def _actions(who: Principal, record: RolloutRecord, entry: HistoryEntry, state: RolloutState) -> list[str]:
    if record.kind != "deploy" or entry.state in ENDED:
        return []
    actions: list[str] = []
    waiting = [w for w in state.waves.values() if w.approval_waiting and w.approval_granted is None]
    if entry.state == "paused" and waiting and who.may("approve"):
        actions.append("approve")
    if entry.state in ("interrupted", "paused") and not waiting and who.may("resume"):
        actions.append("resume")
    if who.may("abort"):
        actions.append("abort")
    return actions


def history_page(
    project: Project, journal: Journal, who: Principal, plant: str, kind: str, state: str
) -> list[HistoryEntry]:
    """Every rollout and rollback in reach, newest first, kept to ``plant``, ``kind`` and ``state``."""
    if plant and not who.sees(plant):
        raise ConfigError.one("plant", "not a plant in reach", expected="one of your plants")
    entries = history_for(project, journal, who, plant or None)
    return [e for e in entries if (not kind or e.record.kind == kind) and (not state or e.state == state)]
