"""How journal records become table rows and back, and which rows a query of events selects:
the same for every SQL backend, whatever its placeholder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from rollout.core.events import Event
from rollout.state.journal import JournalEvent, RolloutRecord

EVENT_COLUMNS = "seq, rollout, time, kind, plant, layer, host, release, detail"


IN_CHUNK = 500
"""Values asked about in one statement's ``IN (...)`` list (both backends take far more parameters)."""


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in runs of ``IN_CHUNK``, one statement each."""
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def event_row(rollout: str, event: Event) -> tuple[Any, ...]:
    detail = json.dumps(event.detail, sort_keys=True, default=str)
    return (rollout, event.time, event.kind, event.plant, event.layer, event.host, event.release, detail)


def rollout_row(record: RolloutRecord) -> tuple[Any, ...]:
    spec = json.dumps(record.spec, sort_keys=True)
    return (record.id, record.kind, record.release, record.commit, record.created, record.operator, spec)


def to_record(row: tuple[Any, ...]) -> RolloutRecord:
    rid, kind, release, commit, created, operator, spec = row
    return RolloutRecord(rid, kind, release, commit, created, operator, json.loads(spec))


def to_events(rows: list[tuple[Any, ...]]) -> list[JournalEvent]:
    """Rows of ``EVENT_COLUMNS`` as journal events."""
    return [
        JournalEvent(seq, ro, Event(kind, plant, layer, host, release, json.loads(detail), when, seq, ro))
        for seq, ro, when, kind, plant, layer, host, release, detail in rows
    ]


def event_filter(
    rollout: str | None, plant: str | None, kinds: tuple[str, ...], after: int | None, mark: str, array: bool
) -> tuple[str, list[object]]:
    """The WHERE clause (empty when nothing is chosen) and its arguments. ``mark`` is the driver's
    placeholder; ``array``: the kinds go as one array argument (``= ANY``), else one each."""
    where: list[str] = []
    args: list[object] = []
    for test, value in (("rollout =", rollout), ("plant =", plant), ("seq >", after)):
        if value is not None:
            where.append(f"{test} {mark}")
            args.append(value)
    if kinds and array:
        where.append(f"kind = ANY({mark})")
        args.append(list(kinds))
    elif kinds:
        where.append(f"kind IN ({', '.join([mark] * len(kinds))})")
        args.extend(kinds)
    return (f"WHERE {' AND '.join(where)}" if where else ""), args
