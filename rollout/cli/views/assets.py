"""What every host is and runs, as the state has it: a table, JSON lines or CSV."""

from __future__ import annotations

import csv
import datetime as dt
from typing import TYPE_CHECKING

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json
from rollout.service.assets import AssetRow, Collected

if TYPE_CHECKING:
    from rich.console import Console

CSV_COLUMNS = ("plant", "host", "os", "os_version", "kernel", "arch", "package", "version", "collected", "stale")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def show(console: Console, rows: list[AssetRow], package: str | None, as_json: bool, as_csv: bool) -> None:
    if as_json:
        emit_json(console, (r.as_dict() for r in rows))
    elif as_csv:
        _csv(console, rows, package)
    else:
        _table(console, rows, package)


def _csv(console: Console, rows: list[AssetRow], package: str | None) -> None:
    """One line per host and package (with ``package``: that one only)."""
    out = csv.writer(console.file, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for row in rows:
        r, p = row.record, row.record.probe
        chosen = {package: row.package or ""} if package else dict(sorted(p.packages.items()))
        for name, version in chosen.items():
            stale = "stale" if row.stale else ""
            out.writerow(
                (r.plant, r.host, p.os_name, p.os_version, p.kernel, p.arch, name, version, _iso(r.collected), stale)
            )
    console.file.flush()


def _table(console: Console, rows: list[AssetRow], package: str | None) -> None:
    if not rows:
        kept = "deploys, rollbacks and 'rollout assets collect' keep them"
        console.print(f"no host has {package} as asked" if package else f"no asset records yet: {kept}")
        return
    title = f"Hosts with {package}" if package else "What every host is and runs"
    table = styled.table(
        "plant", "host", "os", "kernel", "arch", package or "packages", "releases", "collected", title=title
    )
    for row in rows:
        r, p = row.record, row.record.probe
        releases = ", ".join(f"{layer} {release or 'nothing'}" for layer, release in r.releases.items())
        when = (
            styled.text(f"{_iso(r.collected)} (stale)", style="yellow") if row.stale else styled.text(_iso(r.collected))
        )
        count = row.package if package else str(len(p.packages))
        table.add_row(r.plant, r.host, f"{p.os_name} {p.os_version}".strip(), p.kernel, p.arch, count, releases, when)
    console.print(table)


def collected(console: Console, result: Collected, as_json: bool) -> None:
    if as_json:
        emit_json(
            console, ({**AssetRow(r, False).as_dict(packages=False), "type": "collected"} for r in result.records)
        )
        emit_json(console, ({"type": "unreachable", "host": h, "error": e} for h, e in result.unreachable.items()))
        return
    console.print(f"collected the assets of {len(result.records)} host(s)")
    for host, error in result.unreachable.items():
        console.print(styled.text(f"{host}: unreachable, its record was left as it was: {error}", style="red"))
