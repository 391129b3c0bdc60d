"""A rollout as it runs and as it ends: one line per event, the live view on a terminal, and the
outcome of each plant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json
from rollout.config.project import Project
from rollout.core.clock import local_time
from rollout.core.events import Event
from rollout.core.projection import PlantState, RolloutState

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from rollout.engine.executor import PlantResult
    from rollout.service.orchestrator import RolloutResult


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
    "agent.unreachable": "[yellow]in progress, agent unreachable[/] (silent since {silent})",
    "agent.reachable": "agent reachable again",
}


def event_line(console: Console, event: Event) -> None:
    """One line per step worth a person's eye; check attempts only when they fail."""
    text = event_text(event)
    if text is not None:
        console.print(text, highlight=False)


def event_text(event: Event) -> str | None:
    """The line (rich markup) ``event_line`` shows for ``event``, or None for a step not shown."""
    if event.kind == "check.result":
        outcome = event.detail.get("outcome")
        colour = "green" if outcome == "succeeded" else "red"
        where = event.host or "all hosts"
        attempts = event.detail.get("attempts")
        text = f"check {event.detail.get('check')} on {where}: [{colour}]{outcome}[/] after {attempts} attempt(s)"
    elif event.kind in _EVENT_TEXT:
        fields = {"release": event.release or "", **{k: _short(v) for k, v in event.detail.items()}}
        if event.kind == "agent.unreachable":
            fields["silent"] = local_time(float(event.detail.get("since") or event.time))
        try:
            text = _EVENT_TEXT[event.kind].format_map(fields)
        except KeyError:
            text = event.kind
    else:
        return None
    layer = f" {event.layer:<10}" if event.layer else " " * 11
    return f"{event.plant:<12}{layer} {text}"


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
    table = styled.table("plant", "outcome", "release", "reason", title="Plants")
    colours = {
        "updated": "green",
        "unchanged": "green",
        "rolled_back": "yellow",
        "preflight_failed": "yellow",
        "attention": "bold red",
    }
    for r in results:
        table.add_row(
            r.plant, styled.text(r.outcome, style=colours[r.outcome]), r.release or "-", styled.text(r.reason[:200])
        )
    console.print(table)


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
    table = styled.table("plant", "outcome", title=f"Rollout {result.id}: {result.state}")
    colours = {
        "updated": "green",
        "unchanged": "green",
        "skipped": "yellow",
        "rolled_back": "yellow",
        "preflight_failed": "yellow",
        "attention": "bold red",
    }
    for plant, outcome in result.plants.items():
        table.add_row(plant, styled.text(outcome, style=colours.get(outcome, "")))
    console.print(table)


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
        from rich.live import Live

        self.live = Live(console=styled.real(console), refresh_per_second=8, transient=False)

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
        table = styled.table("wave", "plant", *self.layers, "plant state", title="rollout", caption=self.last)
        for name in self.order:
            plant = self.state.plants.get(name) or PlantState(name)
            row = [styled.text(*_cell(plant, layer)) for layer in self.layers]
            text, style = _PHASE.get(plant.phase, (plant.phase, "cyan"))
            table.add_row(plant.wave or "", name, *row, styled.text(text, style=style))
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
