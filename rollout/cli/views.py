"""How results look: rich tables for people, one JSON object per line for pipelines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rollout.config.project import Project
from rollout.config.yamlfile import Path_, format_path
from rollout.core.events import Event
from rollout.core.plan import Plan
from rollout.core.projection import PlantState, RolloutState
from rollout.core.values import Source
from rollout.engine.executor import PlantResult
from rollout.errors import Problem
from rollout.service import Diff, HistoryEntry, HostStatus, Rendered, Validation
from rollout.service.orchestrator import RolloutResult
from rollout.state.journal import Lock, local_time


def emit_json(console: Console, records: Iterable[dict[str, Any]]) -> None:
    """One object per line, written raw: no wrapping, markup or colour can touch it."""
    for record in records:
        console.file.write(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n")
    console.file.flush()


def problems(console: Console, found: list[Problem], as_json: bool) -> None:
    if as_json:
        emit_json(console, ({"type": "error", **p.as_dict()} for p in found))
        return
    noun = "problem" if len(found) == 1 else "problems"
    console.print(f"[bold red]error:[/] {len(found)} {noun}", highlight=False)
    for problem in found:
        console.print(Text("  " + problem.render()), highlight=False, soft_wrap=True)


def _duration(seconds: float) -> str:
    if seconds == 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or f"{seconds:g}s"


def plan(console: Console, result: Plan, as_json: bool) -> None:
    if as_json:
        emit_json(console, result.records())
        return
    console.print(
        f"Plan for release [bold]{result.release}[/] ({result.commit[:12]}): "
        f"{result.plant_count} plants in {len(result.waves)} waves; layers {' -> '.join(result.layers)}",
        highlight=False,
    )
    waves = Table(
        "#", "wave", "plants", "parallel", "max failures", "then", "bake", "approval", "closed window", title="Waves"
    )
    for w in result.waves:
        waves.add_row(
            str(w.index + 1),
            w.name,
            str(len(w.plants)),
            str(w.parallelism),
            f"{w.max_failures} ({w.threshold})"
            if isinstance(w.threshold, str) and w.threshold.endswith("%")
            else str(w.max_failures),
            w.on_failure,
            _duration(w.bake_s),
            "required" if w.approval else "-",
            w.outside_window,
        )
    console.print(waves)
    plants = Table("wave", "order", "plant", "archetype", "time zone", "windows", "hosts", title="Plants in order")
    for w in result.waves:
        for order, p in enumerate(w.plants):
            plants.add_row(w.name, str(order + 1), p.name, p.archetype, p.timezone, p.windows, str(p.hosts))
    console.print(plants)


def validation(console: Console, result: Validation, as_json: bool) -> None:
    release = result.release
    if as_json:
        emit_json(console, ({"type": "customization", **c.as_dict()} for c in result.customizations))
        emit_json(
            console,
            [
                {
                    "type": "validated",
                    "ok": True,
                    "release": release.id,
                    "commit": release.commit,
                    "content_hash": release.content_hash,
                    "plants": len(result.project.plants),
                    "layers": [layer.name for layer in result.project.config.layers],
                    "waves": len(result.plan.waves),
                    "bundles": result.bundles,
                    "shared": result.shared,
                }
            ],
        )
        return
    table = Table(
        "plant",
        "archetype",
        "values changed",
        "files replaced",
        "files added",
        "departure",
        title="Customization per plant (what overlays change from the base)",
    )
    for c in result.customizations:
        by: dict[str, int] = {}
        for _, layer in c.changed_keys:
            kind = layer.split(":")[0]
            by[kind] = by.get(kind, 0) + 1
        keys = ", ".join(f"{n} by {k}" for k, n in sorted(by.items())) or "-"
        table.add_row(
            c.plant,
            c.archetype,
            keys,
            str(len(c.replaced_files)) if c.replaced_files else "-",
            str(len(c.added_files)) if c.added_files else "-",
            f"{c.departure:.0%}",
        )
    console.print(table)
    console.print(
        f"[green]valid[/]: release {release.id} ({release.commit[:12]}), {len(result.project.plants)} plants, "
        f"{len(result.project.config.layers)} layers, {len(result.plan.waves)} waves; "
        f"{result.bundles} bundles rendered ({result.shared} shared between plants with equal inputs)",
        highlight=False,
    )


def rendered(console: Console, results: list[Rendered], out: str | None, as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "bundle",
                    "plant": r.bundle.plant,
                    "layer": r.bundle.layer,
                    "release": r.bundle.release_id,
                    "commit": r.bundle.commit,
                    "files": len(r.bundle.files),
                    "bundle_hash": r.bundle.bundle_hash,
                    "inputs_hash": r.bundle.inputs_hash,
                    "overlay_hash": r.bundle.overlay_hash,
                    "written": r.written,
                    "path": f"{out}/{r.bundle.plant}/{r.bundle.layer}" if out else None,
                }
                for r in results
            ),
        )
        return
    table = Table(
        "plant", "layer", "files", "bytes", "bundle hash", "output", title=f"Bundles in {out}" if out else "Bundles"
    )
    for r in results:
        size = sum(len(f.content) for f in r.bundle.files)
        table.add_row(
            r.bundle.plant,
            r.bundle.layer,
            str(len(r.bundle.files)),
            str(size),
            r.bundle.bundle_hash[:16],
            "written" if r.written else "unchanged" if out else "-",
        )
    console.print(table)
    written = sum(r.written for r in results)
    if out:
        console.print(
            f"{len(results)} bundles, {written} written, {len(results) - written} unchanged, in {out}", highlight=False
        )


def explained(console: Console, plant: str, leaves: list[tuple[Path_, object, Source]], as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "value",
                    "plant": plant,
                    "key": format_path(p),
                    "value": v,
                    "set_by": s.layer,
                    "file": s.file,
                    "line": s.line,
                }
                for p, v, s in leaves
            ),
        )
        return
    table = Table("key", "value", "set by", "where", title=f"Values of plant {plant}")
    for path, value, source in leaves:
        style = "bold" if source.layer != "base" else ""
        where = f"{source.file}:{source.line}" if source.line else source.file
        table.add_row(
            format_path(path),
            Text(json.dumps(value, ensure_ascii=False, default=str)),
            Text(source.layer, style=style),
            where,
        )
    console.print(table)


def diffed(console: Console, err: Console, result: Diff, as_json: bool) -> None:
    """The diff itself on ``console`` (pipe it to patch tools); the summary on ``err``."""
    against = result.against.id if result.against else None
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "change",
                    "plant": result.plant,
                    "layer": c.layer,
                    "path": c.path,
                    "status": c.status,
                    "diff": c.text,
                }
                for c in result.changes
            ),
        )
        emit_json(
            console,
            [
                {
                    "type": "diff",
                    "plant": result.plant,
                    "release": result.release.id,
                    "against": against,
                    "changed": len(result.changes),
                }
            ],
        )
        return
    for change in result.changes:
        for line in change.text.splitlines():
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "cyan"
                if line.startswith("@@")
                else ""
            )
            console.print(Text(line, style=style), highlight=False, soft_wrap=True)
    basis = f"release {against}" if against else "nothing deployed (no --against given)"
    err.print(
        f"plant {result.plant}: {len(result.changes)} files differ between {basis} and release {result.release.id}",
        highlight=False,
        style="bold",
    )


_EVENT_TEXT = {
    "plant.started": "deploying {release}",
    "plant.preflight": "preflight",
    "plant.preflight_failed": "[red]preflight failed[/]: {reason}",
    "layer.staging": "staging {release} on {hosts}",
    "layer.activating": "switching to {release} ({action})",
    "layer.restarting": "restarting",
    "layer.failed": "[red]failed[/]: {reason}",
    "rollback.started": "[yellow]rolling back[/] {layers}",
    "rollback.layer": "[yellow]rolling back[/] to {to}",
    "plant.done": "[green]done[/] on {release}",
    "plant.rolled_back": "[yellow]rolled back[/]: {reason}",
    "plant.attention": "[bold red]NEEDS ATTENTION[/]: {reason}",
    "warning": "[bold red]warning[/]: {reason}",
}


def event_line(console: Console, event: Event) -> None:
    """One line per step worth a person's eye; check attempts only when they fail."""
    if event.kind == "check.result":
        outcome = event.detail.get("outcome")
        colour = "green" if outcome == "succeeded" else "red"
        where = event.host or "all hosts"
        attempts = event.detail.get("attempts")
        text = f"check {event.detail.get('check')} on {where}: [{colour}]{outcome}[/] after {attempts} attempt(s)"
    elif event.kind in _EVENT_TEXT:
        fields = {"release": event.release or "", **{k: _short(v) for k, v in event.detail.items()}}
        try:
            text = _EVENT_TEXT[event.kind].format_map(fields)
        except KeyError:
            text = event.kind
    else:
        return
    layer = f" {event.layer:<10}" if event.layer else " " * 11
    console.print(f"{event.plant:<12}{layer} {text}", highlight=False)


def _short(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def plant_results(console: Console, results: list[PlantResult], as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "plant",
                    "plant": r.plant,
                    "outcome": r.outcome,
                    "release": r.release,
                    "reason": r.reason,
                    "checks": len(r.checks),
                }
                for r in results
            ),
        )
        return
    table = Table("plant", "outcome", "release", "reason", title="Plants")
    colours = {
        "updated": "green",
        "unchanged": "green",
        "rolled_back": "yellow",
        "preflight_failed": "yellow",
        "attention": "bold red",
    }
    for r in results:
        table.add_row(r.plant, Text(r.outcome, style=colours[r.outcome]), r.release or "-", Text(r.reason[:200]))
    console.print(table)


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


def rollout_result(console: Console, result: RolloutResult, as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            [
                {
                    "type": "rollout",
                    "id": result.id,
                    "state": result.state,
                    "message": result.message,
                    "plants": result.plants,
                }
            ],
        )
        return
    table = Table("plant", "outcome", title=f"Rollout {result.id}: {result.state}")
    colours = {
        "updated": "green",
        "unchanged": "green",
        "skipped": "yellow",
        "rolled_back": "yellow",
        "preflight_failed": "yellow",
        "attention": "bold red",
    }
    for plant, outcome in result.plants.items():
        table.add_row(plant, Text(outcome, style=colours.get(outcome, "")))
    console.print(table)


def _entry_record(e: HistoryEntry) -> dict[str, Any]:
    return {
        "type": "rollout",
        "id": e.record.id,
        "kind": e.record.kind,
        "release": e.release,
        "commit": e.record.commit,
        "by": e.record.operator,
        "started": _iso(e.record.created),
        "ended": _iso(e.ended) if e.ended else None,
        "state": e.state,
        "note": e.note,
        "plants": e.outcomes,
    }


def history(console: Console, entries: list[HistoryEntry], as_json: bool) -> None:
    if as_json:
        emit_json(console, (_entry_record(e) for e in entries))
        return
    table = Table("rollout", "kind", "release", "by", "started (UTC)", "state", "plants", title="History")
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
        )
    console.print(table)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


_STEP = {
    "layer.staging": ("staging", "cyan"),
    "layer.activating": ("switching", "cyan"),
    "layer.restarting": ("restarting", "cyan"),
    "layer.checking": ("checking", "cyan"),
    "rollback.layer": ("rolling back", "yellow"),
}
"""What the live view shows of the layer a plant is working on, by its last step."""


class LiveView:
    """Waves x plants x layers, redrawn in place on a terminal as events arrive: the view folds
    the events into the rollout's state (the one projection) and draws that."""

    def __init__(self, console: Console, project: Project) -> None:
        self.console = console
        self.layers = [layer.name for layer in project.config.layers]
        self.state = RolloutState()
        self.order: list[str] = []
        self.last = ""
        self.live = Live(console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table())
        self.live.__exit__(None, None, None)

    def update(self, event: Event) -> None:
        self.state.apply(event)
        for plant in [*event.detail.get("plants", [])] if event.kind == "wave.started" else [event.plant]:
            if plant and plant not in self.order:
                self.order.append(str(plant))
        self.last = f"{event.plant or 'rollout'}: {event.kind}"
        self.live.update(self._table())

    def _table(self) -> Table:
        table = Table("wave", "plant", *self.layers, "plant state", title="rollout", caption=self.last)
        for name in self.order:
            plant = self.state.plants.get(name) or PlantState(name)
            row = [Text(*_cell(plant, layer)) for layer in self.layers]
            text, style = _PHASE.get(plant.phase, (plant.phase, "cyan"))
            table.add_row(plant.wave or "", name, *row, Text(text, style=style))
        return table


def _cell(plant: PlantState, layer: str) -> tuple[str, str]:
    if plant.layer == layer and plant.in_flight and plant.step in _STEP:
        return _STEP[plant.step]
    if layer in plant.failed_layers:
        return "FAILED", "bold red"
    if layer in plant.layers_passed or layer in plant.layers_done:
        return "ok", "green"
    return "-", "dim"


_PHASE = {
    "pending": ("waiting", "dim"),
    "locked": ("working", "cyan"),
    "updated": ("done", "green"),
    "unchanged": ("done (unchanged)", "green"),
    "rolled_back": ("rolled back", "yellow"),
    "attention": ("NEEDS ATTENTION", "bold red"),
    "preflight_failed": ("preflight failed", "yellow"),
    "skipped": ("skipped (window)", "yellow"),
    "blocked": ("blocked (locked)", "red"),
}
"""How the live view words a plant's phase; one not named here (in flight, waiting for a window) as is."""


def under_way(console: Console, entries: list[HistoryEntry], locks: list[Lock], as_json: bool) -> None:
    if as_json:
        emit_json(console, (_entry_record(e) for e in entries))
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
        console.print(f"lock: {lock.plant} held by {lock.describe()}", highlight=False)
