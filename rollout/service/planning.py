"""Opening a project and planning a deploy: what ``rollout plan`` needs, and nothing that renders.
Nothing here prints or exits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rollout.config.project import Project, find_project, load_project
from rollout.config.secrets import Vault
from rollout.core.plan import Plan, make_plan


def open_project(start: Path, vault_password_file: Path | None = None, overlays: bool = True) -> Project:
    """Find (from ``start`` upward) and load the project; ``!vault`` values decrypt with the password
    in ``vault_password_file`` (default: ``$ROLLOUT_VAULT_PASSWORD_FILE``), read only if one is used.
    Without ``overlays`` (a verb that renders nothing) they are not read."""
    project = load_project(find_project(start), overlays)
    return replace(project, vault=Vault.from_option(vault_password_file))


def plan(project: Project, ref: str | None) -> Plan:
    """The waves, plants and order a deploy of ``ref`` (default: the code base's ref) would take."""
    release = project.release(ref)
    return make_plan(project, release.id, release.commit)
