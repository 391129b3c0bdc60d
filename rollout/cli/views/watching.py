"""``status --watch``: each new event of the rollouts under way on a line of its own, led by its
rollout's id (rollouts run side by side), or as the JSON object ``deploy --json`` writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json
from rollout.cli.views.progress import event_text
from rollout.core.events import PLANT_DONE, ROLLOUT, Event
from rollout.core.projection import RolloutState

if TYPE_CHECKING:
    from rich.console import Console

    from rollout.service import Update

_ROLLOUT_TEXT = {
    "rollout.created": "created by {by}, deploying {release}",
    "rollout.resumed": "resumed by {by}",
    "wave.started": "wave {wave} started: {plants}",
    "wave.finished": "wave {wave} finished",
    "approval.waiting": "[yellow]waits for approval[/] of wave {wave}",
    "approval.granted": "wave {wave} approved by {by}",
    "abort.requested": "[yellow]abort asked[/] by {by}: {reason}",
}
_ENDS = {
    "rollout.finished": "[green]finished[/]",
    "rollout.halted": "[red]halted[/]",
    "rollout.aborted": "[yellow]aborted[/]",
    "rollout.paused": "[yellow]paused[/]",
}


def update(console: Console, item: Update, as_json: bool) -> None:
    """One line for a new event worth a person's eye (every event with ``as_json``)."""
    event = item.event.event
    if as_json:
        emit_json(console, [event.as_dict()])
        return
    text = _rollout_text(event, item.state) if event.plant == ROLLOUT else event_text(event)
    if text is None:
        return
    if event.kind in PLANT_DONE:
        text += f"  ({_done(item.state)})"
    console.print(f"{styled.escape(item.event.rollout)}  {text}", highlight=False)


def _rollout_text(event: Event, state: RolloutState) -> str | None:
    if event.kind in _ENDS:
        return f"{'':<23} {_ENDS[event.kind]}: {_done(state)}"
    if event.kind not in _ROLLOUT_TEXT:
        return None
    fields = {"release": event.release or "", **{k: _words(v) for k, v in event.detail.items()}}
    try:
        text = _ROLLOUT_TEXT[event.kind].format_map(fields)
    except KeyError:
        text = event.kind
    return f"{'':<23} {text}"


def _done(state: RolloutState) -> str:
    """How far the rollout is, from its folded state: plants done of those its waves reached."""
    outcomes = state.outcomes()
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    told = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    return f"{len(outcomes)} of {len(state.plants)} plants done" + (f": {told}" if told else "")


def _words(value: object) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return styled.escape(text)
