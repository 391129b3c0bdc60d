"""The verbs of ``rollout`` and where each lives: a verb's module (and what it imports) is loaded
when that verb runs, so ``rollout --help`` and ``rollout plan`` do not pay for the SSH, Ansible,
rendering, database and web libraries that other verbs need."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class Verb:
    module: str
    summary: str
    """The first sentence of its help, as ``rollout --help`` lists it (tests/test_cli.py keeps it
    equal to the verb's own)."""


_Q, _R = "rollout.cli.query_commands", "rollout.cli.rollout_commands"
VERBS: dict[str, Verb] = {
    "agent": Verb(
        "rollout.cli.agent_commands",
        "Run this plant's work orders here, connecting out to the centre (the plant needs no inbound route).",
    ),
    "abort": Verb(_R, "Stop a rollout at its next safe point: no new plant starts, plants in flight end whole."),
    "approve": Verb(_R, "Let a paused rollout go on to its next wave (then: rollout resume ROLLOUT)."),
    "assets": Verb(
        "rollout.cli.asset_commands",
        "What every host is and runs (OS, kernel, architecture, packages and versions, the solution's release "
        "per layer), as deploys, rollbacks and 'assets collect' last found it.",
    ),
    "deploy": Verb(_R, "A staged rollout: waves in order, plants in parallel inside a wave, checks after every layer."),
    "diff": Verb(_Q, "What would change on a plant: a unified diff of its rendered files."),
    "history": Verb(_Q, "Past rollouts and rollbacks: who, when, what, and how each plant came out."),
    "plan": Verb(_Q, "The waves, plants and order that a deploy would take."),
    "render": Verb(_Q, "Render bundles: one folder per plant and layer, with a manifest of file hashes."),
    "restore": Verb(
        "rollout.cli.restore_commands",
        "Bring a replaced or wiped host (or a rebuilt plant) back to the release the state says it ran.",
    ),
    "resume": Verb(_R, "Go on with a rollout that was interrupted or paused (default: the latest one)."),
    "rollback": Verb(_R, "Roll a plant (or one layer and those above it) back now, with the same checks."),
    "serve": Verb(
        "rollout.cli.web_commands", "The web console and the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json)."
    ),
    "state": Verb(
        "rollout.cli.state_commands", "The state itself: create or upgrade its schema, copy an SQLite journal into it."
    ),
    "status": Verb(_Q, "What runs on every host of every layer, as the state records it, with when it was recorded."),
    "user": Verb(
        "rollout.cli.web_commands",
        "Who may use the console and the API: add (prints a one-time token), revoke, list.",
    ),
    "validate": Verb(_Q, "Check the project, inventories, overlays, playbooks and templates; touches no host."),
}


class Verbs(click.Group):
    """A group whose verbs are registered by their modules, each imported when its verb is asked for.

    An import error of a verb's module is not caught: it fails that verb, loudly (exit 70 and
    a crash log), as it did when every module was imported up front."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in VERBS:
            importlib.import_module(VERBS[cmd_name].module)  # its decorators register the verb here
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verbs and their summaries, from the table: listing them imports none."""
        limit = formatter.width - 6 - max(len(name) for name in VERBS)
        # A bare command of the same help shortens it exactly as the real one would.
        rows = [
            (name, click.Command(name, help=VERBS[name].summary).get_short_help_str(limit)) for name in sorted(VERBS)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
