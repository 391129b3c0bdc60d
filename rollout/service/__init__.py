"""The queries and commands every interface (the CLI now, the console and the agent next) calls.

Nothing here prints or exits: results are data, failures are errors of ``rollout.errors``.
"""

from rollout.service import notify
from rollout.service.drift import HostDrift, verify_plants
from rollout.service.history import HistoryEntry, history, plant_locks, rollout_state, under_way
from rollout.service.queries import Diff, Rendered, Validation, diff, explain, open_project, plan, render, validate
from rollout.service.rehearsal import rehearse
from rollout.service.rollbacks import locked_rollback, rollback
from rollout.service.rollouts import abort, approve, resume_rollout, start_rollout
from rollout.service.state import JOURNAL_FILE, REHEARSAL_DIR, STATE_ENV, open_state, rehearsal_journal, state_url
from rollout.service.status import HostStatus, status
from rollout.service.watch import Update, follow, position
from rollout.service.workorders import render_work

__all__ = [
    "Diff",
    "HistoryEntry",
    "HostDrift",
    "HostStatus",
    "JOURNAL_FILE",
    "REHEARSAL_DIR",
    "STATE_ENV",
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
    "plan",
    "plant_locks",
    "position",
    "rehearsal_journal",
    "rehearse",
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
