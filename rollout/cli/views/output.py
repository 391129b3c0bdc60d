"""Writing to the console what every verb may write: JSON lines, raw, and a list of problems."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rollout.cli.views import styled
from rollout.errors import Problem

if TYPE_CHECKING:
    from rich.console import Console


def emit_json(console: Console, records: Iterable[dict[str, Any]]) -> None:
    """One object per line, written raw: no wrapping, markup or colour can touch it."""
    for record in records:
        console.file.write(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n")
    console.file.flush()


def problems(console: Console, found: list[Problem], as_json: bool) -> None:
    if as_json:
        emit_json(console, ({"type": "error", **p.as_dict()} for p in found))
        return
    noun = "problem" if len(found) == 1 else "problems"
    console.print(f"[bold red]error:[/] {len(found)} {noun}", highlight=False)
    for problem in found:
        console.print(styled.text("  " + problem.render()), highlight=False, soft_wrap=True)
