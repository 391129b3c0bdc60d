"""What a webhook is told, as data: which journal events are notifications, their bodies in each
format, and when a failed delivery is tried again. Pure: no I/O, no clock.

Only the six moments a person acts on are told (``NOTIFY_EVENTS``); the events of every layer
and check stay in the journal, where ``rollout status`` and the console show them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from rollout.config.models.notify import NotifyEvent
from rollout.core.events import ROLLOUT, Event, FinishedPayload

NOTICE_OF: dict[str, NotifyEvent] = {
    "approval.waiting": "approval_needed",
    "plant.rolled_back": "rolled_back",
    "plant.attention": "needs_attention",
    "rollout.halted": "halted",
    "rollout.aborted": "aborted",
    "rollout.finished": "finished",
}
"""The journal event each notification kind is told for."""
TOLD: tuple[str, ...] = tuple(NOTICE_OF)

BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0
MAX_ATTEMPTS = 8
"""A delivery is tried at most this often (over about four minutes) before it is ``failed``."""


@dataclass(frozen=True)
class Notice:
    """One notification: what happened, to which rollout and plant, why, and when."""

    kind: NotifyEvent
    project: str
    rollout: str
    seq: int
    time: float
    plant: str | None = None
    release: str | None = None
    reason: str = ""
    wave: str | None = None
    by: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)
    """For ``finished``: each plant's outcome."""


def notice(event: Event, project: str, rollout: str, seq: int, release: str | None) -> Notice | None:
    """The notification ``event`` (journaled at ``seq`` in ``rollout``) is, or None for the
    events nobody is told of."""
    told = NOTICE_OF.get(event.kind)
    if told is None:
        return None
    payload = event.payload  # validated as the journal read it
    plants = payload.plants if isinstance(payload, FinishedPayload) else None
    return Notice(
        told,
        project,
        rollout,
        seq,
        event.time,
        plant=None if event.plant == ROLLOUT else event.plant,
        release=release,
        reason=payload.reason or "",
        wave=payload.wave,
        by=payload.by or "",
        outcomes=dict(plants or {}),
    )


def iso(seconds: float) -> str:
    """A stored time as ISO 8601 in UTC, as receivers parse it."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")


def headline(n: Notice) -> str:
    """One line for people: what happened and what to do."""
    release = f" (release {n.release})" if n.release else ""
    why = f": {n.reason}" if n.reason else ""
    if n.kind == "approval_needed":
        return f"rollout {n.rollout}{release} waits for approval of wave {n.wave}: rollout approve {n.rollout}"
    if n.kind == "rolled_back":
        return f"plant {n.plant} was rolled back in rollout {n.rollout}{release}{why}"
    if n.kind == "needs_attention":
        return f"plant {n.plant} NEEDS ATTENTION after rollout {n.rollout}{release}{why}"
    if n.kind == "halted":
        return f"rollout {n.rollout}{release} halted{why}"
    if n.kind == "aborted":
        by = f" by {n.by}" if n.by else ""
        return f"rollout {n.rollout}{release} was aborted{by}{why}"
    return f"rollout {n.rollout}{release} finished: {summary(n.outcomes)}"


def summary(outcomes: dict[str, str]) -> str:
    """``2 updated, 1 rolled_back``: how many plants ended each way."""
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no plant"


_COLOUR = {"finished": "2EB886", "approval_needed": "DAA038", "aborted": "DAA038"}
"""A MessageCard's stripe: green done, amber waiting for a person or stopped by one, red otherwise."""


def body(n: Notice, form: str) -> dict[str, Any]:
    """The JSON body of ``n`` in a webhook's ``format``: ``json``, ``slack`` or ``teams``."""
    title = f"{n.project}: {headline(n)}"
    if form == "slack":
        return {"text": _slack_escaped(title)}
    if form == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": f"{n.project}: {n.kind.replace('_', ' ')} ({n.rollout})",
            "themeColor": _COLOUR.get(n.kind, "D00000"),
            "title": f"{n.project}: {n.kind.replace('_', ' ')}",
            "text": headline(n),
        }
    return {
        "event": n.kind,
        "project": n.project,
        "rollout": n.rollout,
        "plant": n.plant,
        "release": n.release,
        "reason": n.reason,
        "wave": n.wave,
        "by": n.by,
        "outcomes": n.outcomes,
        "time": iso(n.time),
        "seq": n.seq,
        "text": headline(n),
    }


def _slack_escaped(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions: a reason is shown, never followed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next try after ``attempts`` failed ones (2, 4, 8 ... at most 5 minutes),
    or None when that was the last try allowed."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(0, attempts - 1))
