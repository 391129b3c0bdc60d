"""The asset part of the SQLite state (``rollout.state.assets``), on the journal's transactions."""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from rollout.core.assets import HostAssets
from rollout.state.assets import ASSET_COLUMNS, AssetStore, asset_row, to_assets

_PUT = (
    f"INSERT INTO assets ({ASSET_COLUMNS}) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (plant, host) DO UPDATE SET collected = excluded.collected, record = excluded.record"
)


class SqliteAssets(AssetStore):
    """``AssetStore`` on the journal's connections; ``SqliteJournal`` mixes it in."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; SQLite's errors become ``JournalError``."""

    @abstractmethod
    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query; SQLite's errors become ``JournalError``."""

    def put_assets(self, records: Sequence[HostAssets]) -> None:
        if not records:
            return
        with self._writing() as db:
            db.executemany(_PUT, [asset_row(r) for r in records])

    def assets(self, plant: str | None = None) -> list[HostAssets]:
        where, args = ("WHERE plant = ?", (plant,)) if plant is not None else ("", ())
        return to_assets(self._read(f"SELECT {ASSET_COLUMNS} FROM assets {where} ORDER BY plant, host", args))
