"""The ``rollout`` command. The only place that prints or chooses exit codes.

Exit codes (the contract): 0 done and healthy; 1 a plant failed and was rolled back
cleanly; 2 bad input, nothing touched; 3 a rollback failed, a plant needs attention;
4 blocked. An unexpected internal error exits 70 with its traceback in a log file.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO, TypeVar, cast

import click
from rich.console import Console

from rollout import service
from rollout.cli.views import output, preview, progress, records
from rollout.config.project import Project
from rollout.core.clock import Clock, ShiftedClock, SystemClock
from rollout.core.events import EventSink
from rollout.engine.executor import Options, default_operator
from rollout.errors import ConfigError, Problem
from rollout.service.junit import junit_report
from rollout.service.orchestrator import RolloutResult
from rollout.state.journal import JournalError, LockedError, SchemaError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ATTENTION = 3
EXIT_BLOCKED = 4
EXIT_INTERNAL = 70

F = TypeVar("F", bound=Callable[..., object])


_directory_option = click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: found from the working folder upward).",
)
_plants_option = click.option(
    "--plant", "-p", "plants", multiple=True, metavar="PLANT", help="Only this plant (repeatable)."
)


def _common(func: F) -> F:
    """``-C DIR`` and ``--json``, which every verb takes."""
    func = click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for pipelines.")(func)
    return _directory_option(func)


def _release_option(func: F) -> F:
    return click.option(
        "--release",
        "-r",
        "release",
        default=None,
        metavar="REF",
        help="Tag, branch or commit of the code base (default: codebase.ref).",
    )(func)


def _project(directory: Path | None) -> Project:
    """The project from the verb's ``-C``, else the one before the verb, else the working folder."""
    if directory is None:
        directory = click.get_current_context().find_root().params.get("directory")
    return service.open_project(directory or Path.cwd())


class _Quiet(io.TextIOBase):
    """A stream that stops writing once its reader went away (``rollout deploy | head``).

    A closed pipe must never abort a deploy half way, nor change its exit code.
    """

    broken = False

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if not _Quiet.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                _Quiet.broken = True
        return len(text)

    def flush(self) -> None:
        if not _Quiet.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                _Quiet.broken = True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def _console(stderr: bool = False) -> Console:
    stream = _Quiet(sys.stderr if stderr else sys.stdout)
    # Off a terminal (CI logs, pipes) rich would assume 80 columns and squeeze tables.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(file=cast(IO[str], stream), highlight=False, width=width)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rollout")
@_directory_option
def cli(directory: Path | None) -> None:
    """Deploy one code base with per-plant overlays to many plants, in checked waves."""


@cli.command()
@_common
@_release_option
def validate(directory: Path | None, as_json: bool, release: str | None) -> int:
    """Check the project, inventories, overlays, playbooks and templates; touches no host.

    Every plant is rendered in memory at the release, so an undefined value or a
    forbidden overlay is found here, not during a deploy.
    """
    result = service.validate(_project(directory), release)
    preview.validation(_console(), result, as_json)
    return EXIT_OK


@cli.command()
@_common
@_release_option
def plan(directory: Path | None, as_json: bool, release: str | None) -> int:
    """The waves, plants and order that a deploy would take."""
    preview.plan(_console(), service.plan(_project(directory), release), as_json)
    return EXIT_OK


@cli.command()
@_common
@_release_option
@_plants_option
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the bundles (default: .rollout/bundles in the project).",
)
@click.option("--explain", is_flag=True, help="Show every value of --plant and which layer set it; write nothing.")
def render(
    directory: Path | None, as_json: bool, release: str | None, plants: tuple[str, ...], out: Path | None, explain: bool
) -> int:
    """Render bundles: one folder per plant and layer, with a manifest of file hashes."""
    project = _project(directory)
    if explain:
        if len(plants) != 1:
            raise click.UsageError("--explain needs exactly one --plant")
        preview.explained(_console(), plants[0], service.explain(project, release, plants[0]), as_json)
        return EXIT_OK
    target = out if out is not None else project.root / ".rollout" / "bundles"
    results = service.render(project, release, list(plants), target)
    preview.rendered(_console(), results, str(target), as_json)
    return EXIT_OK


@cli.command()
@_common
@_release_option
@click.option("--plant", "-p", "plant", required=True, metavar="PLANT", help="The plant to compare.")
@click.option("--against", "-a", default=None, metavar="REF", help="The release to compare with.")
def diff(directory: Path | None, as_json: bool, release: str | None, plant: str, against: str | None) -> int:
    """What would change on a plant: a unified diff of its rendered files."""
    result = service.diff(_project(directory), plant, release, against)
    preview.diffed(_console(), _console(stderr=True), result, as_json)
    return EXIT_OK


def _insecure_option(func: F) -> F:
    return click.option(
        "--insecure-skip-host-key-check",
        "insecure",
        is_flag=True,
        help="Do NOT verify SSH host keys (reported loudly, on every run). Never for real plants.",
    )(func)


def _options(project: Project, insecure: bool, err: Console) -> Options:
    ssh = project.config.ssh
    configured = Path(ssh.known_hosts).expanduser()
    known_hosts: Path | None = configured if configured.is_absolute() else project.root / configured
    if insecure:
        err.print(
            "[bold red]WARNING: SSH host keys are NOT verified (--insecure-skip-host-key-check); "
            "any machine answering at a plant's address will be trusted.[/]"
        )
        known_hosts = None
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    return Options(known_hosts, ssh.connect_timeout, ssh.command_timeout, operator)


def _sink(console: Console, as_json: bool) -> EventSink:
    if as_json:
        return lambda event: output.emit_json(console, [event.as_dict()])
    return lambda event: progress.event_line(console, event)


_yes_option = click.option("--yes", "-y", is_flag=True, help="Non-interactive: plain lines, no live view.")
_junit_option = click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)


def _clock() -> Clock:
    """The machine's clock, or one that starts at ROLLOUT_NOW (ISO 8601) and goes on from there:
    rehearsals and tests of windows at any time of day, whose waits and bakes still end."""
    fixed = os.environ.get("ROLLOUT_NOW")
    if not fixed:
        return SystemClock()
    try:
        when = dt.datetime.fromisoformat(fixed)
    except ValueError:
        raise ConfigError.one(
            "ROLLOUT_NOW", "not a date and time", expected="ISO 8601, e.g. 2026-11-21T02:00:00+00:00", found=repr(fixed)
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return ShiftedClock(when)


def _rollout_exit(result: RolloutResult) -> int:
    if result.attention:
        return EXIT_ATTENTION
    if result.state in ("paused", "blocked", "aborted"):
        return EXIT_BLOCKED
    if result.failed or result.state == "halted":
        return EXIT_FAILED
    if "skipped" in result.plants.values():  # a plant's window stayed closed: the rollout is not complete
        return EXIT_BLOCKED
    return EXIT_OK


def _finish(project: Project, result: RolloutResult, as_json: bool, junit: Path | None, rehearsal: bool = False) -> int:
    console = _console()
    if junit is not None:
        junit_report(project, result.id, junit, rehearsal)
    progress.rollout_result(console, result, as_json)
    if result.message and not as_json:
        _console(stderr=True).print(result.message, highlight=False)
    return _rollout_exit(result)


@cli.command()
@_common
@_release_option
@_insecure_option
@_plants_option
@click.option("--wave", "waves", multiple=True, metavar="WAVE", help="Only this wave (repeatable).")
@click.option("--yes", "-y", is_flag=True, help="Non-interactive: no live view, plain lines (for pipelines).")
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)
@click.option("--approve-through", default=None, metavar="WAVE", help="Waves up to this one count as approved.")
@click.option("--force-window", is_flag=True, help="Deploy outside maintenance windows (recorded in the journal).")
@click.option("--rehearse", is_flag=True, help="Run it all on simulated copies of every plant; touch no real host.")
def deploy(
    directory: Path | None,
    as_json: bool,
    release: str | None,
    insecure: bool,
    plants: tuple[str, ...],
    waves: tuple[str, ...],
    yes: bool,
    junit: Path | None,
    approve_through: str | None,
    force_window: bool,
    rehearse: bool,
) -> int:
    """A staged rollout: waves in order, plants in parallel inside a wave, checks after every layer.

    A plant whose check fails is rolled back automatically to the release it had; a wave
    that fails more plants than its threshold halts the rollout or rolls it all back, as
    the strategy says. Every step is journaled first, so 'rollout resume' can go on.
    """
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    with _display(project, as_json, yes) as display:
        if rehearse:
            result = service.rehearse(project, release, list(waves), list(plants), options, display, _clock())
        else:
            result = service.start_rollout(
                project, release, list(waves), list(plants), options, display, _clock(), approve_through, force_window
            )
    return _finish(project, result, as_json, junit, rehearse)


@cli.command()
@_common
@_insecure_option
@click.argument("rollout_id", required=False, metavar="[ROLLOUT]")
@click.option("--yes", "-y", is_flag=True, help="Non-interactive: no live view, plain lines (for pipelines).")
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a JUnit XML report."
)
def resume(
    directory: Path | None, as_json: bool, insecure: bool, rollout_id: str | None, yes: bool, junit: Path | None
) -> int:
    """Go on with a rollout that was interrupted or paused (default: the latest one)."""
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    with _display(project, as_json, yes) as display:
        result = service.resume_rollout(project, rollout_id, options, display, _clock())
    return _finish(project, result, as_json, junit)


@cli.command()
@_common
@click.argument("rollout_id", metavar="ROLLOUT")
def approve(directory: Path | None, as_json: bool, rollout_id: str) -> int:
    """Let a paused rollout go on to its next wave (then: rollout resume ROLLOUT)."""
    project = _project(directory)
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    wave = service.approve(project, rollout_id, operator)
    if as_json:
        output.emit_json(_console(), [{"type": "approval", "rollout": rollout_id, "wave": wave, "by": operator}])
    else:
        _console().print(
            f"wave {wave} of rollout {rollout_id} approved by {operator}; now: rollout resume {rollout_id}"
        )
    return EXIT_OK


@cli.command()
@_common
@click.argument("rollout_id", metavar="ROLLOUT")
@click.option("--reason", default="", metavar="TEXT", help="Why (recorded with who asked).")
def abort(directory: Path | None, as_json: bool, rollout_id: str, reason: str) -> int:
    """Stop a rollout at its next safe point: no new plant starts, plants in flight end whole."""
    project = _project(directory)
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    state = service.abort(project, rollout_id, operator, reason)
    if as_json:
        output.emit_json(_console(), [{"type": "abort", "rollout": rollout_id, "state": state, "by": operator}])
    elif state == "aborted":
        _console().print(f"rollout {rollout_id} aborted by {operator}", highlight=False)
    else:
        _console().print(
            f"abort of rollout {rollout_id} requested by {operator}: it stops at its next safe point", highlight=False
        )
    return EXIT_OK


@cli.command()
@_common
@_plants_option
def history(directory: Path | None, as_json: bool, plants: tuple[str, ...]) -> int:
    """Past rollouts and rollbacks: who, when, what, and how each plant came out."""
    project = _project(directory)
    plant = plants[0] if plants else None
    records.history(_console(), service.history(project, plant), as_json)
    return EXIT_OK


@cli.command()
@_common
@_insecure_option
@click.option("--plant", "-p", "plant", required=True, metavar="PLANT", help="The plant to roll back.")
@click.option(
    "--to", "to", default=None, metavar="REF", help="The release to go to (default: what each host ran before)."
)
@click.option("--layer", "layer", default=None, metavar="LAYER", help="Only this layer and the layers above it.")
def rollback(
    directory: Path | None, as_json: bool, insecure: bool, plant: str, to: str | None, layer: str | None
) -> int:
    """Roll a plant (or one layer and those above it) back now, with the same checks."""
    project = _project(directory)
    console = _console()
    options = _options(project, insecure, _console(stderr=True))
    result = service.locked_rollback(project, plant, to, layer, options, _sink(console, as_json), _clock())
    progress.plant_results(console, [result], as_json)
    return _ROLLBACK_EXIT.get(result.outcome, EXIT_INTERNAL)


_ROLLBACK_EXIT = {"rolled_back": EXIT_OK, "preflight_failed": EXIT_FAILED, "attention": EXIT_ATTENTION}
"""A host that did not answer changed nothing (1); a rollback that failed half way needs a person (3)."""


@cli.command()
@_common
@_insecure_option
@_plants_option
def status(directory: Path | None, as_json: bool, insecure: bool, plants: tuple[str, ...]) -> int:
    """What runs on every host of every layer, as the hosts themselves record it."""
    project = _project(directory)
    options = _options(project, insecure, _console(stderr=True))
    console = _console()
    records.status(console, service.status(project, list(plants), options), as_json)
    records.under_way(console, service.under_way(project), service.plant_locks(project), as_json)
    return EXIT_OK


def _crash_log(exc: BaseException) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rollout"
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = base / f"crash-{stamp}.log"
    path.write_text("".join(traceback.format_exception(exc)))
    return path


def _report(as_json: bool, kind: str, message: str, err: Console) -> None:
    if as_json:
        output.emit_json(_console(), [{"type": "error", "kind": kind, "message": message}])
    else:
        err.print(f"[bold red]{kind}:[/] {message}", highlight=False)


@contextmanager
def _display(project: Project, as_json: bool, yes: bool) -> Iterator[EventSink]:
    """Events as JSON lines, as plain lines, or as a live table on a terminal."""
    console = _console()
    if as_json or yes or not console.is_terminal:
        yield _sink(console, as_json)
        return
    with progress.LiveView(console, project) as live:
        yield live.update


def run(argv: list[str]) -> int:
    """Run the command line and return its exit code."""
    as_json = "--json" in argv
    err = _console(stderr=True)
    try:
        code = cli.main(args=argv, prog_name="rollout", standalone_mode=False)
        return int(code or 0)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if as_json:
            output.problems(_console(), [Problem("(command line)", message=exc.format_message())], True)
        else:
            exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except ConfigError as exc:
        output.problems(_console() if as_json else err, exc.problems, as_json)
        return EXIT_BAD_INPUT
    except LockedError as exc:
        _report(as_json, "blocked", str(exc), err)
        return EXIT_BLOCKED
    except SchemaError as exc:  # nothing stopped half-way: this rollout is older than the state
        _report(as_json, "state", str(exc), err)
        return EXIT_ATTENTION
    except JournalError as exc:
        _report(as_json, "journal", f"{exc} (the rollout stopped; see 'rollout status' once the journal is back)", err)
        return EXIT_ATTENTION
    except Exception as exc:  # the one place an unexpected error is caught: log it, never spill it
        log = _crash_log(exc)
        err.print(f"internal error: {type(exc).__name__}: {exc}\nthe traceback is in {log}")
        return EXIT_INTERNAL


def main() -> None:
    code = run(sys.argv[1:])
    if _Quiet.broken:  # keep the interpreter's final flush from failing on the closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)
