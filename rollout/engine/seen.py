"""What the hosts said of themselves while an executor read them: the asset probe's answers and
each layer's release, for the asset records a deploy or a rollback leaves in the state."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rollout.config.inventory import Host
from rollout.config.models import LayerConfig
from rollout.config.project import Plant
from rollout.core.assets import HostAssets, Probe
from rollout.engine.layout import Running
from rollout.engine.records import Records


class Seen:
    """Kept per executor; threads of one fan-out note at once."""

    def __init__(self) -> None:
        self._probes: dict[tuple[str, str], Probe] = {}
        self._releases: dict[tuple[str, str, str], str | None] = {}
        self._guard = threading.Lock()

    def note(self, plant: str, layer: str, host: str, state: Running) -> None:
        with self._guard:
            self._releases[(plant, layer, host)] = state.release
            if state.assets is not None:
                self._probes[(plant, host)] = state.assets

    def assets(
        self,
        plant: Plant,
        layers: list[LayerConfig],
        hosts: Callable[[Plant, LayerConfig], tuple[Host, ...]],
        records: Records,
        now: float,
    ) -> tuple[HostAssets, ...]:
        """Each host of ``plant`` that answered an asset read: its OS and packages as it said,
        each layer's release as the executor last wrote it (``records``) or else read it."""
        with self._guard:
            probes = sorted((host, probe) for (name, host), probe in self._probes.items() if name == plant.name)
            read = dict(self._releases)
        found: list[HostAssets] = []
        for host, probe in probes:
            releases: dict[str, str | None] = {}
            for layer in layers:
                if any(h.name == host for h in hosts(plant, layer)):
                    written = records.written(plant.name, layer.name, host)
                    release = written.get("release") if written else read.get((plant.name, layer.name, host))
                    releases[layer.name] = None if release is None else str(release)
            found.append(HostAssets(plant.name, host, probe, releases, now))
        return tuple(found)
