"""What runs and ran where: every host's release as the host records it, rollouts under way with
their locks, and past rollouts from the journal."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollout.cli.views.output import emit_json
from rollout.service import HistoryEntry, HostStatus
from rollout.state.journal import Lock, local_time


def status(console: Console, rows: list[HostStatus], as_json: bool) -> None:
    if as_json:
        emit_json(console, (_status_record(r) for r in rows))
        return
    table = Table("plant", "layer", "host", "release", "bundle", "since", "by", "state", title="What runs where")
    for row in rows:
        state = row.running
        if state is None:
            table.add_row(
                row.plant, row.layer, row.host, "-", "-", "-", "-", Text(f"unreachable: {row.error}", style="red")
            )
            continue
        record = state.record
        condition = (
            Text(f"needs attention: {state.attention}", style="bold red")
            if state.attention
            else Text("ok", style="green")
            if state.whole
            else Text("record and link disagree", style="red")
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


def _status_record(row: HostStatus) -> dict[str, Any]:
    state = row.running
    base: dict[str, Any] = {"type": "host", "plant": row.plant, "layer": row.layer, "host": row.host}
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
        "staged": list(state.staged),
    }


def history(console: Console, entries: list[HistoryEntry], as_json: bool) -> None:
    if as_json:
        emit_json(console, (e.as_dict() for e in entries))
        return
    table = Table("rollout", "kind", "release", "by", "started (UTC)", "state", "plants", "reason", title="History")
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
            Text(e.reason or "-"),  # people's words: shown as written, never read as markup
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
        table = Table("rollout", "release", "state", "by", "plants done", title="Rollouts under way")
        for e in entries:
            table.add_row(e.record.id, e.release or "-", e.state, e.record.operator, str(len(e.outcomes)))
        console.print(table)
    for lock in locks:
        console.print(f"lock: {lock.plant} held by {lock.describe()}", highlight=False, soft_wrap=True)
