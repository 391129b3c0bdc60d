"""``rollout agent``: runs on a plant's execution node, takes the plant's work orders from the
centre and executes them there. It stops on SIGTERM or Ctrl-C after the order it is running."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from rollout.cli.commands import EXIT_BAD_INPUT, EXIT_OK, _console, cli
from rollout.errors import ConfigError


def _default_work_dir(plant: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "rollout-agent" / plant


@cli.command()
@click.option("--plant", "-p", required=True, metavar="PLANT", help="The plant this node is in.")
@click.option("--server", required=True, metavar="URL", help="The console's URL, e.g. https://rollout.example:8470.")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The agent's token.")
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path), help="CA certificates for HTTPS (PEM).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), help="Outbox, blobs and the kit.")
@click.option("--known-hosts", type=click.Path(dir_okay=False, path_type=Path), help="Host keys of the plant's hosts.")
@click.option(
    "--insecure-skip-host-key-check", "insecure", is_flag=True, help="Do NOT verify SSH host keys (never in a plant)."
)
@click.option("--poll", default=20.0, show_default=True, type=click.FloatRange(1.0, 30.0), help="Long-poll seconds.")
def agent(
    plant: str,
    server: str,
    token_file: Path,
    ca_file: Path | None,
    work_dir: Path | None,
    known_hosts: Path | None,
    insecure: bool,
    poll: float,
) -> int:
    """Run this plant's work orders here, connecting out to the centre (the plant needs no inbound route)."""
    from dataclasses import replace

    from rollout.agent.client import Refused, Untrusted
    from rollout.agent.settings import settings
    from rollout.agent.worker import Agent

    found = settings(plant, server, token_file, work_dir or _default_work_dir(plant), ca_file, known_hosts, insecure)
    found = replace(found, poll_s=poll)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s rollout-agent %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long poll says nothing
    stop = threading.Event()

    def stopping(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("rollout.agent").info("stopping after the order under way (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    if insecure:
        _console(stderr=True).print("[bold red]WARNING: SSH host keys are NOT verified[/]", highlight=False)
    try:
        Agent(found, stop).run()
    except Refused as exc:
        raise ConfigError.one(
            str(token_file), f"the centre refuses this token: {exc}", location="--token-file",
            expected="an active token of role agent for this plant",
        ) from None  # fmt: skip
    except Untrusted as exc:
        raise ConfigError.one(
            str(ca_file or "(system CAs)"), str(exc), location="--ca-file",
            expected="the CA certificate (PEM) that signed the console's certificate",
        ) from None  # fmt: skip
    return EXIT_OK if stop.is_set() else EXIT_BAD_INPUT
