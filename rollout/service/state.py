"""Where the state lives for a project, and opening it. Nothing here prints or exits."""

from __future__ import annotations

from rollout.config.project import Project
from rollout.state.journal import SqliteJournal

JOURNAL_FILE = ".rollout/state.db"


def journal_for(project: Project) -> SqliteJournal:
    return SqliteJournal(project.root / JOURNAL_FILE)


REHEARSAL_DIR = ".rollout/rehearsal"


def rehearsal_journal(project: Project) -> SqliteJournal:
    return SqliteJournal(project.root / REHEARSAL_DIR / "state.db")
