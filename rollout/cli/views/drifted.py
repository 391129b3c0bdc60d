"""What ``rollout status --verify`` shows: each host's current release against its manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from rollout.service.drift import HostDrift


def verified(console: Console, rows: list[HostDrift], as_json: bool) -> None:
    if as_json:
        emit_json(console, (r.as_dict() for r in rows))
        return
    table = styled.table("plant", "layer", "host", "release", "files", title="Files against their manifests")
    for row in rows:
        table.add_row(row.plant, row.layer, row.host, *_cells(row))
    console.print(table)
    drifted = sum(r.drifted for r in rows)
    if drifted:
        console.print(f"{drifted} of {len(rows)} hosts' layers drifted from their release", highlight=False)


def _cells(row: HostDrift) -> tuple[str, Text]:
    state = row.verified
    if state is None:
        return "-", styled.text(f"unreachable: {row.error}", style="red")
    if state.drift.drifted:
        what = state.release or state.release_dir or "-"
        return what, styled.text(f"drifted: {state.drift.summary(limit=10)}", style="bold red")
    if state.release_dir is None:
        return "nothing", styled.text("nothing installed")
    return state.release or state.release_dir, styled.text("as released", style="green")
