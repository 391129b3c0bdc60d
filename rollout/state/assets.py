"""What the state keeps of every host: its latest asset record (``rollout.core.assets``), one per
(plant, host), replaced by each collection. Rows keep the record as compact JSON text, as events
keep their details; ``collected`` is a column of its own so staleness needs no JSON."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from rollout.core.assets import HostAssets, from_json, to_json

ASSET_COLUMNS = "plant, host, collected, record"


class AssetStore(ABC):
    """The asset part of the state; ``Journal`` inherits it. Each call is one transaction."""

    @abstractmethod
    def put_assets(self, records: Sequence[HostAssets]) -> None:
        """Keep ``records``, each replacing what its (plant, host) had; all of them or none."""

    @abstractmethod
    def assets(self, plant: str | None = None) -> list[HostAssets]:
        """Every host's latest record (of ``plant`` only, when given), by plant then host."""


def asset_row(record: HostAssets) -> tuple[str, str, float, str]:
    text = json.dumps(to_json(record), separators=(",", ":"), ensure_ascii=False)
    return record.plant, record.host, record.collected, text


def to_assets(rows: Iterable[tuple[Any, ...]]) -> list[HostAssets]:
    return [from_json(json.loads(row[3])) for row in rows]
