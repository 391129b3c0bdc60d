"""The command line: the only place, with the HTTP layer, that prints, exits and picks exit codes."""

from rollout.cli import (  # noqa: F401 (importing them registers their verbs on cli)
    agent_commands,
    asset_commands,
    query_commands,
    restore_commands,
    rollout_commands,
    state_commands,
    web_commands,
)
from rollout.cli.commands import main, run

__all__ = ["main", "run"]
