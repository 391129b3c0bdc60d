"""What runs and ran where: every host's release as the state records it (with its age) or as the
host itself says, rollouts under way with their locks, and past rollouts from the journal."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json
from rollout.core.clock import local_time

if TYPE_CHECKING:
    from rich.console import Console

    from rollout.service import HistoryEntry, HostStatus, RecordedStatus
    from rollout.state.journal import Lock

_CONDITION_STYLE = {"healthy": "green", "in progress": "cyan", "never deployed": "dim"}


def recorded(console: Console, rows: list[RecordedStatus], now: float, as_json: bool) -> None:
    """The state's account of every (layer, host), each with when it was last recorded."""
    if as_json:
        emit_json(console, (_recorded_record(r, now) for r in rows))
        return
    table = styled.table(
        "plant", "layer", "host", "release", "commit", "since", "state", "recorded",
        title="What runs where, as the state records it",
        caption="no host was asked; rollout status --live asks them",
    )  # fmt: skip
    for row in rows:
        condition = row.condition if row.drift is None else f"{row.condition}: {row.drift}"
        table.add_row(
            row.plant,
            row.layer,
            row.host,
            row.release or "nothing",
            (row.commit or "-")[:12],
            _when(row.since),
            styled.text(condition, style=_CONDITION_STYLE.get(row.condition, "bold red")),
            _freshness(row.recorded, now),
        )
    console.print(table)


def _recorded_record(row: RecordedStatus, now: float) -> dict[str, Any]:
    return {
        "type": "host",
        "source": "state",
        "plant": row.plant,
        "layer": row.layer,
        "host": row.host,
        "release": row.release,
        "commit": row.commit,
        "since": _stamp(row.since),
        "condition": row.condition,
        "rollout": row.rollout,
        "drift": row.drift,
        "recorded": _stamp(row.recorded),
        "age_s": None if row.recorded is None else round(max(0.0, now - row.recorded), 3),
    }


def _stamp(seconds: float | None) -> str | None:
    """ISO 8601 in UTC, as the asset records give their times."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _when(seconds: float | None) -> str:
    return "-" if seconds is None else _iso(seconds) + " UTC"


def _freshness(seconds: float | None, now: float) -> str:
    """When it was recorded and how long ago, in the largest unit that fits."""
    if seconds is None:
        return "never"
    age = max(0.0, now - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= size:
            return f"{_when(seconds)} ({int(age // size)}{unit} ago)"
    return f"{_when(seconds)} ({int(age)}s ago)"


def status(console: Console, rows: list[HostStatus], now: float, as_json: bool) -> None:
    """What every (layer, host) says of itself, asked just now (``status --live``)."""
    if as_json:
        emit_json(console, (_status_record(r, now) for r in rows))
        return
    table = styled.table(
        "plant", "layer", "host", "release", "bundle", "since", "by", "state", title="What runs where, as the hosts say"
    )
    for row in rows:
        state = row.running
        if state is None:
            table.add_row(
                row.plant,
                row.layer,
                row.host,
                "-",
                "-",
                "-",
                "-",
                styled.text(f"unreachable: {row.error}", style="red"),
            )
            continue
        record = state.record
        condition = (
            styled.text(f"needs attention: {state.attention}", style="bold red")
            if state.attention
            else styled.text("record and link disagree", style="red")
            if not state.whole
            else styled.text("restart owed: a run stopped before it", style="yellow")
            if state.restart_owed
            else styled.text("ok", style="green")
        )
        table.add_row(
            row.plant,
            row.layer,
            row.host,
            state.release or "nothing",
            (state.bundle_hash or "-")[:12],
            str(record.get("at", "-")),
            str(record.get("by", "-")),
            condition,
        )
    console.print(table)


def _status_record(row: HostStatus, now: float) -> dict[str, Any]:
    state = row.running
    base: dict[str, Any] = {
        "type": "host",
        "source": "live",
        "plant": row.plant,
        "layer": row.layer,
        "host": row.host,
        "recorded": _stamp(now),  # asked just now
        "age_s": 0.0,
    }
    if state is None:
        return {**base, "reachable": False, "error": row.error}
    return {
        **base,
        "reachable": True,
        "release": state.release,
        "commit": state.commit,
        "bundle_hash": state.bundle_hash,
        "release_dir": state.release_dir,
        "since": state.record.get("at"),
        "by": state.record.get("by"),
        "whole": state.whole,
        "attention": state.attention,
        "restart_owed": state.restart_owed,
        "staged": list(state.staged),
    }


def history(console: Console, entries: list[HistoryEntry], as_json: bool) -> None:
    if as_json:
        emit_json(console, (e.as_dict() for e in entries))
        return
    table = styled.table(
        "rollout", "kind", "release", "by", "started (UTC)", "state", "plants", "reason", title="History"
    )
    for e in entries:
        counts: dict[str, int] = {}
        for outcome in e.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "-"
        table.add_row(
            e.record.id,
            e.record.kind,
            e.release or "-",
            e.record.operator,
            _iso(e.record.created),
            e.state,
            summary,
            styled.text(e.reason or "-"),  # people's words: shown as written, never read as markup
        )
    console.print(table)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def under_way(console: Console, entries: list[HistoryEntry], locks: list[Lock], as_json: bool) -> None:
    if as_json:
        emit_json(console, (e.as_dict() for e in entries))
        emit_json(
            console,
            (
                {
                    "type": "lock",
                    "plant": lock.plant,
                    "owner": lock.owner,
                    "purpose": lock.purpose,
                    "operator": lock.operator,
                    "acquired": local_time(lock.acquired),
                    "expires": local_time(lock.expires),
                    "pid": lock.pid,
                    "hostname": lock.hostname,
                }
                for lock in locks
            ),
        )
        return
    if entries:
        table = styled.table("rollout", "release", "state", "by", "plants done", title="Rollouts under way")
        for e in entries:
            table.add_row(e.record.id, e.release or "-", e.state, e.record.operator, str(len(e.outcomes)))
        console.print(table)
    for lock in locks:
        console.print(f"lock: {lock.plant} held by {lock.describe()}", highlight=False, soft_wrap=True)
