"""What every host is and runs, to the patch level: collected as deploys and rollbacks read the
hosts (and on demand by ``collect``), kept in the state, and asked of it. Nothing here prints
or exits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollout.config.project import Project
from rollout.core.assets import HostAssets, carried, older_than, stale, to_json
from rollout.core.clock import Clock, SystemClock
from rollout.core.events import discard
from rollout.engine.executor import Executor, Options
from rollout.errors import ConfigError
from rollout.service.runners import reachable_plants
from rollout.service.state import open_state
from rollout.state.journal import Journal, JournalError
from rollout.transports.base import TransportError


@dataclass(frozen=True)
class AssetRow:
    """One host's record as the state has it, and whether it is older than ``assets.max_age``."""

    record: HostAssets
    stale: bool
    package: str | None = None
    """With ``--package``: the version of that package on the host."""

    @property
    def collected_at(self) -> str:
        return dt.datetime.fromtimestamp(self.record.collected, dt.UTC).isoformat(timespec="seconds")

    def as_dict(self, packages: bool = True) -> dict[str, Any]:
        """The host as JSON (the CLI's --json and the API); ``packages``: with its whole list."""
        data = to_json(self.record)
        data["package_count"] = len(self.record.probe.packages)
        if not packages:
            del data["packages"]
        data.update(type="assets", collected=self.collected_at, stale=self.stale)
        if self.package is not None:
            data["version"] = self.package
        return data


@dataclass(frozen=True)
class Collected:
    records: tuple[HostAssets, ...]
    unreachable: dict[str, str]
    """"plant/host" -> why it did not answer (its record in the state is left as it was)."""


def keep(journal: Journal, records: Sequence[HostAssets]) -> str | None:
    """Store what a deploy or a rollback found; a failure is returned as a warning, never raised,
    since the hosts' own work is done by now and must not be reported as failed for this.

    A host that sent no packages (its database's stamp unchanged) keeps the package list of
    its record in the state, with the new collection time and releases."""
    try:
        journal.put_assets(_whole(journal, records))
    except JournalError as exc:
        return f"the asset records of {len(records)} host(s) were not kept: {exc}"
    return None


def _whole(journal: Journal, records: Sequence[HostAssets]) -> list[HostAssets]:
    """``records`` with the packages of those that sent none taken from the state; one whose
    record there no longer has its stamp is left out (its list is unknown here, and the
    record in the state, newer than the stamp sent, stays as it is)."""
    plants = sorted({r.plant for r in records if r.probe.unchanged})
    previous = {(r.plant, r.host): r for name in plants for r in journal.assets(name)}
    whole = (carried(r, previous.get((r.plant, r.host))) for r in records)
    return [r for r in whole if r is not None]


def stamps(journal: Journal, plant: str) -> dict[str, str]:
    """Host -> the package database's stamp of the plant's last asset record of it (what a
    deploy sends, so that a host whose packages did not change sends none). A state that
    cannot be read gives none: the hosts then send their whole lists."""
    try:
        return {r.host: r.probe.stamp for r in journal.assets(plant) if r.probe.stamp}
    except JournalError:
        return {}


def collect(project: Project, plants: list[str], options: Options, journal: Journal | None = None) -> Collected:
    """Ask every host of the chosen plants (all by default) what it is and runs, and keep it."""
    chosen = reachable_plants(project, plants, "collect its assets")
    executor = Executor(project, options, discard)
    unreachable: dict[str, str] = {}
    for plant in chosen:
        found = executor.read(plant, assets=True)
        found.raise_bugs()
        for (_, host), error in sorted(found.failed.items()):
            reason = error.reason if isinstance(error, TransportError) else str(error)
            unreachable.setdefault(f"{plant.name}/{host}", reason)
    records = tuple(r for plant in chosen for r in executor.assets_of(plant))
    (journal or open_state(project)).put_assets(records)
    return Collected(records, unreachable)


def query(
    project: Project,
    plants: list[str],
    package: str | None = None,
    older: str | None = None,
    journal: Journal | None = None,
    clock: Clock | None = None,
) -> list[AssetRow]:
    """The hosts' records, by plant and host; ``package``: only hosts that have it (with
    ``older``, only those whose version of it is older than that, in Debian's order)."""
    if older is not None and package is None:
        raise ConfigError.one("--older-than", "needs --package", expected="--package NAME --older-than VERSION")
    for name in plants:
        project.plant(name)  # an unknown plant is bad input, not an empty answer
    journal = journal or open_state(project)
    records = [r for name in plants for r in journal.assets(name)] if plants else journal.assets()
    now = (clock or SystemClock()).now()
    max_age = dt.timedelta(seconds=project.config.assets.max_age)
    rows: list[AssetRow] = []
    for record in records:
        version = record.probe.packages.get(package) if package else None
        if package and (version is None or (older is not None and not older_than(version, older))):
            continue
        rows.append(AssetRow(record, stale(record, now, max_age), version))
    return rows
