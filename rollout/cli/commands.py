"""The ``rollout`` command: its click group, what every verb shares (options, console, exit codes)
and ``run``, the one place that turns errors into exit codes. The verbs are in query_commands and
rollout_commands; importing ``rollout.cli`` registers them.

Exit codes (the contract): 0 done and healthy; 1 a plant failed and was rolled back
cleanly; 2 bad input, nothing touched; 3 a rollback failed, a plant needs attention;
4 blocked. An unexpected internal error exits 70 with its traceback in a log file.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO, TypeVar, cast

import click

from rollout.cli.verbs import Verbs
from rollout.cli.views import output, styled
from rollout.core.clock import Clock, ShiftedClock, SystemClock
from rollout.errors import ConfigError, Problem
from rollout.masking import mask
from rollout.state.errors import JournalError, LockedError, SchemaError

if TYPE_CHECKING:
    from rich.console import Console

    from rollout.config.project import Project
    from rollout.engine.connections import Options

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ATTENTION = 3
EXIT_BLOCKED = 4
EXIT_INTERNAL = 70
GC_THRESHOLD = 100_000
"""Allocations between young-generation collections (the default is 700)."""
SWITCH_INTERVAL_S = 0.0005
"""How long one thread may hold the interpreter while others wait for it (the default is 5 ms)."""

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


def _keep_vault_file(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    ctx.meta["vault_password_file"] = value


def vault_option(func: F) -> F:
    """``--vault-password-file``, for the verbs that render (``_project`` passes it on)."""
    return click.option(
        "--vault-password-file",
        type=click.Path(path_type=Path),  # read only if a value is encrypted: checked then, naming that value
        default=None,
        expose_value=False,
        callback=_keep_vault_file,
        help="Password of the values' !vault strings (default: $ROLLOUT_VAULT_PASSWORD_FILE).",
    )(func)


def _project(directory: Path | None, overlays: bool = True) -> Project:
    """The project from the verb's ``-C``, else the one before the verb, else the working folder;
    ``overlays=False`` for verbs that render nothing (their overlays are then not read)."""
    from rollout.service.planning import open_project  # the configuration's models: only verbs that load it

    ctx = click.get_current_context()
    if directory is None:
        directory = ctx.find_root().params.get("directory")
    return open_project(directory or Path.cwd(), ctx.meta.get("vault_password_file"), overlays)


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
    return styled.console(cast(IO[str], stream), width)


@click.group(cls=Verbs, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rollout")
@_directory_option
def cli(directory: Path | None) -> None:
    """Deploy one code base with per-plant overlays to many plants, in checked waves."""


def _insecure_option(func: F) -> F:
    return click.option(
        "--insecure-skip-host-key-check",
        "insecure",
        is_flag=True,
        help="Do NOT verify SSH host keys (reported loudly, on every run). Never for real plants.",
    )(func)


def _options(project: Project, insecure: bool, err: Console) -> Options:
    from rollout.engine.connections import default_operator  # only verbs that reach hosts get here
    from rollout.service.options import project_options

    if insecure:
        err.print(
            "[bold red]WARNING: SSH host keys are NOT verified (--insecure-skip-host-key-check); "
            "any machine answering at a plant's address will be trusted.[/]"
        )
    operator = os.environ.get("ROLLOUT_OPERATOR") or default_operator()
    return project_options(project, operator, insecure)


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


def _crash_log(exc: BaseException) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rollout"
    base.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = base / f"crash-{stamp}.log"
    path.write_text(mask("".join(traceback.format_exception(exc))))
    return path


def _report(as_json: bool, kind: str, message: str, err: Console) -> None:
    if as_json:
        output.emit_json(_console(), [{"type": "error", "kind": kind, "message": message}])
    else:
        err.print(f"[bold red]{kind}:[/] {message}", highlight=False)


def run(argv: list[str]) -> int:
    """Run the command line and return its exit code."""
    as_json = "--json" in argv
    err = _console(stderr=True)
    return _settled(_run(argv, as_json, err), as_json, err)


def _settled(code: int, as_json: bool, err: Console) -> int:
    """``code``, once what the verb wrote to an embedded state is on the disk: the process ends
    without closing it (``main``), so no close's checkpoint does that."""
    if "rollout.state.sqlite" not in sys.modules:  # no state opened: nothing to import for
        return code
    from rollout.service import settle_states

    problems = settle_states()
    for problem in problems:
        _report(as_json, "journal", problem, err)
    return EXIT_ATTENTION if problems and code == 0 else code


def _run(argv: list[str], as_json: bool, err: Console) -> int:
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
        err.print(f"internal error: {type(exc).__name__}: {mask(str(exc))}\nthe traceback is in {log}", soft_wrap=True)
        return EXIT_INTERNAL


def main() -> None:
    # A command is a short process that builds large, acyclic structures (ten thousand plants and
    # their plan): the default thresholds would rescan them over and over, a third of a plan's time.
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    # A rollout's threads (a plant each) and the server's workers mostly wait on the state and the
    # hosts; under the default 5 ms switch interval each one's return from a round trip queued
    # behind whichever thread held the interpreter (an event post's p99 at 7.6 s with the CPUs
    # half idle, docs/benchmarks.md §8). A shorter slice hands it back sooner.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # pydantic looks for plugins among every installed package's entry points when it builds the
    # first model (about 10 ms of a plan's start); rollout uses none. Set it empty to look again.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = run(sys.argv[1:])
    if _Quiet.broken:  # keep the interpreter's final flush from failing on the closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    # The process ends: the collector's last passes over all it built would only free memory the
    # system takes back anyway (0.1 s of a 20-plant deploy's 1.6 s). Exit handlers still run, and
    # the states are on the disk already (``_settled``), so no checkpoint at their close is missed.
    gc.freeze()
    sys.exit(code)
