"""What the console's pages and the JSON API show, cut to what the asker may see.

Every reader takes the ``Principal`` of the request and returns only plants in its reach:
a scoped user's lists never name another plant, and its rollouts show its plants alone.
Read from the state only; no host is asked. Nothing here prints or exits.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from rollout.config.project import Project
from rollout.core.access import Principal
from rollout.core.events import ROLLOUT, Event
from rollout.core.fleet import PlantView, fleet
from rollout.core.plan import make_plan
from rollout.errors import ConfigError
from rollout.service.history_queries import HistoryEntry, history
from rollout.service.recorder import is_run_lease
from rollout.state.journal import Journal, JournalEvent, Lock


@dataclass(frozen=True)
class Filters:
    archetype: str = ""
    tag: str = ""
    wave: str = ""
    state: str = ""


@dataclass
class PlantRow:
    name: str
    archetype: str
    tags: tuple[str, ...]
    wave: str
    timezone: str
    view: PlantView
    lock: Lock | None = None

    @property
    def condition(self) -> str:
        return "locked" if self.lock is not None and self.view.condition != "in progress" else self.view.condition

    @property
    def note(self) -> str:
        """What the condition alone does not say: an agent plant whose agent the centre cannot hear."""
        since = self.view.agent_silent_since
        if since is None or self.view.condition != "in progress":
            return ""
        return f"agent unreachable since {local_and_utc(since, self.timezone)}"


@dataclass
class Network:
    rows: list[PlantRow]
    layers: list[str]
    releases: list[tuple[str, int]]
    """(release, plants that run it on every layer), most plants first."""
    total: int
    under_way: list[HistoryEntry]
    choices: dict[str, list[str]] = field(default_factory=dict)
    """The values each filter can take, among the plants in reach."""


def waves_of(project: Project) -> dict[str, str]:
    """Each plant's wave, as the strategy assigns it (empty when the strategy does not plan)."""
    try:
        plan = make_plan(project, "", "")
    except ConfigError:
        return {}
    return {p.name: w.name for w in plan.waves for p in w.plants}


def network(project: Project, journal: Journal, who: Principal, filters: Filters) -> Network:
    names = who.visible(sorted(project.plants))
    layers = [layer.name for layer in project.config.layers]
    views = fleet({n: layers for n in names}, (e.event for e in _scoped_events(journal, names)))
    waves, locks = waves_of(project), _live_locks(journal)
    rows = [_row(project, views[n], waves.get(n, ""), locks.get(n)) for n in names]
    counts = Counter(r.view.release for r in rows if r.view.release and r.view.condition != "never deployed")
    choices = {
        "archetype": sorted({r.archetype for r in rows}),
        "tag": sorted({t for r in rows for t in r.tags}),
        "wave": [w.name for w in project.config.strategy.waves if any(r.wave == w.name for r in rows)],
        "state": sorted({r.condition for r in rows}),
    }
    kept = [r for r in rows if _matches(r, filters)]
    running = [e for e in history(project, None, journal) if e.state not in ("finished", "halted", "aborted")]
    under_way = [_cut(e, who) for e in running if who.may_see_rollout(_plants_of(e))]
    return Network(kept, layers, counts.most_common(), len(rows), under_way, choices)


def _row(project: Project, view: PlantView, wave: str, lock: Lock | None) -> PlantRow:
    config = project.plants[view.name].config
    return PlantRow(view.name, config.archetype, tuple(config.tags), wave, config.timezone, view, lock)


def _matches(row: PlantRow, f: Filters) -> bool:
    return (
        (not f.archetype or row.archetype == f.archetype)
        and (not f.tag or f.tag in row.tags)
        and (not f.wave or row.wave == f.wave)
        and (not f.state or row.condition == f.state)
    )


def _scoped_events(journal: Journal, names: list[str]) -> list[JournalEvent]:
    if len(names) > 50:  # one read of everything beats a query per plant
        wanted = set(names)
        return [e for e in journal.events() if e.event.plant in wanted]
    found = [e for n in names for e in journal.events(plant=n)]
    return sorted(found, key=lambda e: e.seq)


def _live_locks(journal: Journal) -> dict[str, Lock]:
    now = time.time()
    return {lock.plant: lock for lock in journal.locks() if not is_run_lease(lock) and not lock.stale(now)}


def _plants_of(entry: HistoryEntry) -> list[str]:
    spec = entry.record.spec
    planned = [p for w in spec.get("waves", []) for p in w.get("plants", [])]
    return planned + ([str(spec["plant"])] if spec.get("plant") else []) + list(entry.outcomes)


def _cut(entry: HistoryEntry, who: Principal) -> HistoryEntry:
    """The entry with the outcomes of plants out of reach taken out."""
    if not who.scoped:
        return entry
    return replace(entry, outcomes={p: o for p, o in entry.outcomes.items() if who.sees(p)})


def history_for(project: Project, journal: Journal, who: Principal, plant: str | None = None) -> list[HistoryEntry]:
    """Every rollout and rollback in reach (of ``plant`` where given), newest first."""
    entries = history(project, plant, journal)
    return [_cut(e, who) for e in reversed(entries) if who.may_see_rollout(_plants_of(e))]


def events_for(
    journal: Journal, who: Principal, after: int, rollout: str | None = None, limit: int = 500
) -> list[Event]:
    """The events after ``after`` in reach, at most ``limit``. A scoped user gets its plants'
    events and the bare kind of its rollouts' own events: their details name other plants."""
    found: list[Event] = []
    visible_rollouts: dict[str, bool] = {}
    for stored in journal.events_after(after, rollout):
        event = stored.event
        if event.plant != ROLLOUT:
            keep = who.sees(event.plant)
        else:
            if stored.rollout not in visible_rollouts:
                visible_rollouts[stored.rollout] = _rollout_visible(journal, who, stored.rollout)
            keep = visible_rollouts[stored.rollout]
            if keep and who.scoped:
                event = Event(event.kind, ROLLOUT, time=event.time)
        if keep:
            found.append(_stamped(event, stored))
            if len(found) >= limit:
                break
    return found


def _stamped(event: Event, stored: JournalEvent) -> Event:
    return Event(
        event.kind,
        event.plant,
        event.layer,
        event.host,
        event.release,
        event.detail,
        event.time,
        stored.seq,
        stored.rollout,
    )


def _rollout_visible(journal: Journal, who: Principal, rollout: str) -> bool:
    if not who.scoped:
        return True
    record = journal.rollout(rollout)
    if record is None:
        return False
    spec: dict[str, Any] = record.spec
    planned = [p for w in spec.get("waves", []) for p in w.get("plants", [])] + [str(spec.get("plant") or "")]
    return any(who.sees(p) for p in planned if p)


def local_and_utc(stamp: float | None, zone: str) -> str:
    """A time as a person on that plant's floor reads it, with UTC beside it."""
    if stamp is None:
        return "never"
    when = dt.datetime.fromtimestamp(stamp, dt.UTC)
    try:
        local = when.astimezone(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local = when
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({when:%H:%M} UTC)"
