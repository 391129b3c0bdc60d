"""The command line: the only place, with the HTTP layer, that prints, exits and picks exit codes.

Each verb's module is imported when the verb runs (``rollout.cli.verbs``), not here."""

from rollout.cli.commands import main, run

__all__ = ["main", "run"]
