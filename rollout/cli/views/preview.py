"""What a deploy would do, shown before any host is touched: validation, plan, rendered bundles,
a plant's values and where each was set, and the diff of a plant's files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rollout.cli.views import styled
from rollout.cli.views.output import emit_json
from rollout.config.yamlfile import Path_, format_path
from rollout.core.plan import Plan
from rollout.core.values import Source

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from rollout.service import Diff, Rendered, Validation


def _duration(seconds: float) -> str:
    if seconds == 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or f"{seconds:g}s"


def plan(console: Console, result: Plan, as_json: bool) -> None:
    if as_json:
        emit_json(console, result.records())
        return
    console.print(
        f"Plan for release [bold]{result.release}[/] ({result.commit[:12]}): "
        f"{result.plant_count} plants in {len(result.waves)} waves; layers {' -> '.join(result.layers)}",
        highlight=False,
    )
    waves = styled.table(
        "#", "wave", "plants", "parallel", "max failures", "then", "bake", "approval", "closed window", title="Waves"
    )
    for w in result.waves:
        waves.add_row(
            str(w.index + 1),
            w.name,
            str(len(w.plants)),
            str(w.parallelism),
            f"{w.max_failures} ({w.threshold})"
            if isinstance(w.threshold, str) and w.threshold.endswith("%")
            else str(w.max_failures),
            w.on_failure,
            _duration(w.bake_s),
            "required" if w.approval else "-",
            w.outside_window,
        )
    console.print(waves)
    plants = styled.table(
        "wave", "order", "plant", "archetype", "time zone", "windows", "hosts", title="Plants in order"
    )
    for w in result.waves:
        for order, p in enumerate(w.plants):
            plants.add_row(w.name, str(order + 1), p.name, p.archetype, p.timezone, p.windows, str(p.hosts))
    console.print(plants)


def validation(console: Console, result: Validation, as_json: bool) -> None:
    release = result.release
    if as_json:
        emit_json(console, ({"type": "customization", **c.as_dict()} for c in result.customizations))
        emit_json(
            console,
            [
                {
                    "type": "validated",
                    "ok": True,
                    "release": release.id,
                    "commit": release.commit,
                    "content_hash": release.content_hash,
                    "plants": len(result.project.plants),
                    "layers": [layer.name for layer in result.project.config.layers],
                    "waves": len(result.plan.waves),
                    "bundles": result.bundles,
                    "shared": result.shared,
                }
            ],
        )
        return
    console.print(_customization_table(result))
    console.print(
        f"[green]valid[/]: release {release.id} ({release.commit[:12]}), {len(result.project.plants)} plants, "
        f"{len(result.project.config.layers)} layers, {len(result.plan.waves)} waves; "
        f"{result.bundles} bundles rendered ({result.shared} shared between plants with equal inputs)",
        highlight=False,
    )


def _customization_table(result: Validation) -> Table:
    """What overlays change from the base, per plant."""
    table = styled.table(
        "plant",
        "archetype",
        "values changed",
        "files replaced",
        "files added",
        "departure",
        title="Customization per plant (what overlays change from the base)",
    )
    for c in result.customizations:
        by: dict[str, int] = {}
        for _, layer in c.changed_keys:
            kind = layer.split(":")[0]
            by[kind] = by.get(kind, 0) + 1
        keys = ", ".join(f"{n} by {k}" for k, n in sorted(by.items())) or "-"
        table.add_row(
            c.plant,
            c.archetype,
            keys,
            str(len(c.replaced_files)) if c.replaced_files else "-",
            str(len(c.added_files)) if c.added_files else "-",
            f"{c.departure:.0%}",
        )
    return table


def rendered(console: Console, results: list[Rendered], out: str | None, as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "bundle",
                    "plant": r.bundle.plant,
                    "layer": r.bundle.layer,
                    "release": r.bundle.release_id,
                    "commit": r.bundle.commit,
                    "files": len(r.bundle.files),
                    "bundle_hash": r.bundle.bundle_hash,
                    "inputs_hash": r.bundle.inputs_hash,
                    "overlay_hash": r.bundle.overlay_hash,
                    "written": r.written,
                    "path": f"{out}/{r.bundle.plant}/{r.bundle.layer}" if out else None,
                }
                for r in results
            ),
        )
        return
    table = styled.table(
        "plant", "layer", "files", "bytes", "bundle hash", "output", title=f"Bundles in {out}" if out else "Bundles"
    )
    for r in results:
        size = sum(len(f.content) for f in r.bundle.files)
        table.add_row(
            r.bundle.plant,
            r.bundle.layer,
            str(len(r.bundle.files)),
            str(size),
            r.bundle.bundle_hash[:16],
            "written" if r.written else "unchanged" if out else "-",
        )
    console.print(table)
    written = sum(r.written for r in results)
    if out:
        console.print(
            f"{len(results)} bundles, {written} written, {len(results) - written} unchanged, in {out}", highlight=False
        )


def explained(console: Console, plant: str, leaves: list[tuple[Path_, object, Source]], as_json: bool) -> None:
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "value",
                    "plant": plant,
                    "key": format_path(p),
                    "value": v,
                    "set_by": s.layer,
                    "file": s.file,
                    "line": s.line,
                }
                for p, v, s in leaves
            ),
        )
        return
    table = styled.table("key", "value", "set by", "where", title=f"Values of plant {plant}")
    for path, value, source in leaves:
        style = "bold" if source.layer != "base" else ""
        where = f"{source.file}:{source.line}" if source.line else source.file
        table.add_row(
            format_path(path),
            styled.text(json.dumps(value, ensure_ascii=False, default=str)),
            styled.text(source.layer, style=style),
            where,
        )
    console.print(table)


def diffed(console: Console, err: Console, result: Diff, as_json: bool) -> None:
    """The diff itself on ``console`` (pipe it to patch tools); the summary on ``err``."""
    against = result.against.id if result.against else None
    if as_json:
        emit_json(
            console,
            (
                {
                    "type": "change",
                    "plant": result.plant,
                    "layer": c.layer,
                    "path": c.path,
                    "status": c.status,
                    "diff": c.text,
                }
                for c in result.changes
            ),
        )
        emit_json(
            console,
            [
                {
                    "type": "diff",
                    "plant": result.plant,
                    "release": result.release.id,
                    "against": against,
                    "changed": len(result.changes),
                }
            ],
        )
        return
    for change in result.changes:
        for line in change.text.splitlines():
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "cyan"
                if line.startswith("@@")
                else ""
            )
            console.print(styled.text(line, style=style), highlight=False, soft_wrap=True)
    basis = f"release {against}" if against else "nothing deployed (no --against given)"
    err.print(
        f"plant {result.plant}: {len(result.changes)} files differ between {basis} and release {result.release.id}",
        highlight=False,
        style="bold",
    )
