"""The queries and commands every interface (the CLI now, the console and the agent next) calls.

Nothing here prints or exits: results are data, failures are errors of ``rollout.errors``.

Each name is imported from its module when first used, not when this package is: a verb that
plans or shows help must not pay for the SSH, Ansible, database and web libraries the others need.
An import error still surfaces, at the first use of the name that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollout.service import notify
    from rollout.service.drift import HostDrift, verify_plants
    from rollout.service.history_queries import HistoryEntry, history, plant_locks, rollout_state, under_way
    from rollout.service.queries import Diff, Rendered, Validation, diff, explain, open_project, plan, render, validate
    from rollout.service.rehearsal import rehearse
    from rollout.service.rollbacks import locked_rollback, rollback
    from rollout.service.rollouts import abort, approve, resume_rollout, start_rollout
    from rollout.service.state import (
        JOURNAL_FILE,
        REHEARSAL_DIR,
        STATE_ENV,
        open_state,
        rehearsal_journal,
        settle_states,
        state_url,
    )
    from rollout.service.status_queries import HostStatus, RecordedStatus, recorded, status
    from rollout.service.watch import Update, follow, position
    from rollout.service.workorders import render_work

_WHERE = {
    "notify": "",
    "HistoryEntry": "rollout.service.history_queries",
    "history": "rollout.service.history_queries",
    "plant_locks": "rollout.service.history_queries",
    "rollout_state": "rollout.service.history_queries",
    "under_way": "rollout.service.history_queries",
    "HostStatus": "rollout.service.status_queries",
    "RecordedStatus": "rollout.service.status_queries",
    "recorded": "rollout.service.status_queries",
    "status": "rollout.service.status_queries",
    "HostDrift": "rollout.service.drift",
    "verify_plants": "rollout.service.drift",
    "Diff": "rollout.service.queries",
    "Rendered": "rollout.service.queries",
    "Validation": "rollout.service.queries",
    "diff": "rollout.service.queries",
    "explain": "rollout.service.queries",
    "open_project": "rollout.service.planning",
    "plan": "rollout.service.planning",
    "render": "rollout.service.queries",
    "validate": "rollout.service.queries",
    "rehearse": "rollout.service.rehearsal",
    "locked_rollback": "rollout.service.rollbacks",
    "rollback": "rollout.service.rollbacks",
    "abort": "rollout.service.rollouts",
    "approve": "rollout.service.rollouts",
    "resume_rollout": "rollout.service.rollouts",
    "start_rollout": "rollout.service.rollouts",
    "JOURNAL_FILE": "rollout.service.state",
    "REHEARSAL_DIR": "rollout.service.state",
    "STATE_ENV": "rollout.service.state",
    "open_state": "rollout.service.state",
    "rehearsal_journal": "rollout.service.state",
    "settle_states": "rollout.service.state",
    "state_url": "rollout.service.state",
    "Update": "rollout.service.watch",
    "follow": "rollout.service.watch",
    "position": "rollout.service.watch",
    "render_work": "rollout.service.workorders",
}
"""Each lazy name -> the module that defines it ("": the name is a submodule of this package)."""


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = (
        importlib.import_module(f"{__name__}.{name}") if not where else getattr(importlib.import_module(where), name)
    )
    globals()[name] = value  # once: later uses are plain attribute reads
    return value


__all__ = [
    "Diff",
    "HistoryEntry",
    "HostDrift",
    "HostStatus",
    "JOURNAL_FILE",
    "REHEARSAL_DIR",
    "STATE_ENV",
    "RecordedStatus",
    "Rendered",
    "Update",
    "Validation",
    "abort",
    "approve",
    "diff",
    "explain",
    "follow",
    "history",
    "locked_rollback",
    "notify",
    "open_project",
    "open_state",
    "settle_states",
    "plan",
    "plant_locks",
    "position",
    "rehearsal_journal",
    "rehearse",
    "recorded",
    "render",
    "render_work",
    "resume_rollout",
    "rollback",
    "rollout_state",
    "start_rollout",
    "state_url",
    "status",
    "under_way",
    "validate",
    "verify_plants",
]
