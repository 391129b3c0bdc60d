"""The asset part of the PostgreSQL state (``rollout.state.assets``), on the journal's pool."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from psycopg import Connection

from rollout.core.assets import HostAssets
from rollout.state.assets import ASSET_COLUMNS, AssetStore, asset_row, to_assets

_PUT = (
    f"INSERT INTO rollout.assets ({ASSET_COLUMNS}) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (plant, host) DO UPDATE SET collected = excluded.collected, record = excluded.record"
)


class PostgresAssets(AssetStore):
    """``AssetStore`` on the journal's pool; ``PostgresJournal`` mixes it in."""

    @abstractmethod
    def _tx(self, action: str) -> AbstractContextManager[Connection[Any]]:
        """A connection inside one transaction; driver errors become ``JournalError``."""

    @abstractmethod
    def _rows(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """The rows of one query; driver errors become ``JournalError``."""

    def put_assets(self, records: Sequence[HostAssets]) -> None:
        if not records:
            return
        with self._tx("write") as db, db.cursor() as cursor:
            cursor.executemany(_PUT, [asset_row(r) for r in records])

    def assets(self, plant: str | None = None) -> list[HostAssets]:
        where, args = ("WHERE plant = %s", (plant,)) if plant is not None else ("", ())
        return to_assets(self._rows(f"SELECT {ASSET_COLUMNS} FROM rollout.assets {where} ORDER BY plant, host", args))
