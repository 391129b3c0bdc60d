"""What every plant's layers run and how they are, folded from the events of every rollout. Pure.

The console's network and plant pages read this: the state's own account, no host asked.
A layer's release is the one its last ``layer.activated`` switched it to (a rollback's
switch back included); its condition is the plant's last outcome, or "in progress" while
work on the plant has begun and not ended. A layer whose last ``rollout status --verify`` found
files changed on a host is "drifted" until that host is verified clean or the layer is switched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rollout.core.drift import Drift
from rollout.core.events import Event

CONDITIONS = ("healthy", "in progress", "rolled back", "drifted", "failed", "needs attention", "never deployed")
"""Each in words; the console gives each a colour too, never the colour alone."""

_OUTCOME = {
    "plant.done": "healthy",
    "plant.rolled_back": "rolled back",
    "plant.attention": "needs attention",
    "plant.preflight_failed": "failed",
}
_WORK = ("plant.started", "rollback.started", "layer.activating")
FOLDED = ("layer.activated", "host.verified", "agent.unreachable", "agent.reachable", *_WORK, *_OUTCOME)
"""The kinds ``fleet`` reads: a reader may ask the state for these alone."""


@dataclass
class LayerView:
    name: str
    release: str | None = None
    since: float | None = None
    """When it was switched to ``release``."""
    outcome: str = "never deployed"
    """What the last work on it came to."""
    changed: float | None = None
    """When ``condition`` began."""
    rollout: str | None = None
    """The rollout or rollback that last touched it."""
    drift: dict[str, str] = field(default_factory=dict)
    """Host -> its drift in words, as its last verification found (hosts found clean absent)."""
    commit: str | None = None
    """The commit its last switch recorded (None: not recorded, or switched to nothing)."""
    recorded: float | None = None
    """When the state last recorded it: a switch, or the outcome of work on it (a deploy that
    found it already at its release still read and checked it, so that confirms it too)."""
    verified: dict[str, float] = field(default_factory=dict)
    """Host -> when ``status --verify`` last hashed its files (clean or not): the host's own confirmation."""

    @property
    def condition(self) -> str:
        """Its outcome, or "drifted" when a host's files changed since (work under way comes first)."""
        return "drifted" if self.drift and self.outcome != "in progress" else self.outcome


@dataclass
class PlantView:
    name: str
    layers: dict[str, LayerView] = field(default_factory=dict)
    reason: str = ""
    """Why its last outcome was what it was (a failed check, a person's rollback)."""
    last_rollout: str | None = None
    working: set[str] = field(default_factory=set)
    """Layers the work under way touched (cleared by its outcome)."""
    agent_silent_since: float | None = None
    """The plant's agent has not been heard from since then, while work on the plant is under way."""
    verified: float | None = None
    """When its hosts' files were last checked against their manifests (``status --verify``)."""

    @property
    def drifted(self) -> list[tuple[str, str, str]]:
        """(host, layer, drift in words) of every host its last verification found drifted."""
        return [
            (host, layer.name, what) for layer in self.layers.values() for host, what in sorted(layer.drift.items())
        ]

    @property
    def condition(self) -> str:
        """The worst condition of its layers."""
        found = [layer.condition for layer in self.layers.values()]
        return max(found, key=_severity) if found else "never deployed"

    @property
    def release(self) -> str | None:
        """The one release all its layers run, else None."""
        releases = {layer.release for layer in self.layers.values()}
        return releases.pop() if len(releases) == 1 else None


def _severity(condition: str) -> int:
    order = ("healthy", "never deployed", "in progress", "rolled back", "drifted", "failed", "needs attention")
    return order.index(condition) if condition in order else len(order)


def fleet(plants: dict[str, list[str]], events: Iterable[Event]) -> dict[str, PlantView]:
    """Every plant of ``plants`` (name -> its layers, in order) as the events in ``seq`` order tell."""
    views = {name: PlantView(name, {lay: LayerView(lay) for lay in layers}) for name, layers in plants.items()}
    for event in events:
        view = views.get(event.plant)
        if view is not None:
            _apply(view, event)
    return views


def _apply(view: PlantView, event: Event) -> None:
    if event.kind == "agent.unreachable":
        view.agent_silent_since = float(event.detail.get("since") or event.time)
    elif event.kind == "agent.reachable" or event.kind in _OUTCOME:
        view.agent_silent_since = None
    if event.kind == "layer.activated" and event.layer in view.layers:
        layer = view.layers[event.layer]
        if layer.release != event.release:
            layer.release, layer.since = event.release, event.time
        commit = event.detail.get("commit")
        layer.commit = None if commit is None else str(commit)
        layer.recorded = event.time
        layer.drift.clear()  # the switch replaced the folder that drifted, or left it
        view.working.add(layer.name)
        _mark(layer, "in progress", event)
    elif event.kind == "host.verified" and event.layer in view.layers and event.host:
        view.verified = event.time
        _verified(view.layers[event.layer], event.host, event)
    elif event.kind in _WORK:
        named = event.detail.get("layers") if event.kind == "rollback.started" else None
        for layer in view.layers.values():
            if (not named or layer.name in named) and layer.release is not None:
                view.working.add(layer.name)
                _mark(layer, "in progress", event)
    elif event.kind in _OUTCOME:
        view.reason = str(event.detail.get("reason") or "")
        view.last_rollout = event.rollout
        # The outcome is the state of the layers the work touched; a plant-IT rollback of the
        # upper layers leaves the lower ones as they were. A deploy's outcome covers them all.
        scope = set(view.layers) if event.kind == "plant.done" or not view.working else view.working
        for layer in view.layers.values():
            if layer.name in scope and (layer.release is not None or event.kind != "plant.done"):
                _mark(layer, _OUTCOME[event.kind], event)
        view.working = set()


def _verified(layer: LayerView, host: str, event: Event) -> None:
    if "error" in event.detail:
        return  # not reached: what it held is not known, so the last word stands
    was = layer.condition
    layer.verified[host] = event.time
    drift = Drift.from_dict(event.detail)
    if drift.drifted:
        layer.drift[host] = drift.summary()
    else:
        layer.drift.pop(host, None)
    if layer.condition != was:
        layer.changed = event.time


def _mark(layer: LayerView, condition: str, event: Event) -> None:
    layer.recorded = event.time
    if layer.outcome != condition:
        was = layer.condition
        layer.outcome = condition
        if layer.condition != was:
            layer.changed = event.time
    layer.rollout = event.rollout or layer.rollout
