"""The device window's list model: one row per likeable item, read from ``LikesState``.

A new state replaces the rows only when the set of items changes; otherwise
just the rows that differ are reported, so a tap repaints one row of 1,000.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.link import Item, KeyStatus, LikesState, SyncPhase

from .status_text import badge_for

__all__ = ["FAILED_BADGE_SECONDS", "ItemListModel", "ItemRole"]

FAILED_BADGE_SECONDS = 6.0
"""How long "Failed · reloaded" stays: after a reload the item shows the server's
value, so once the user has seen the failure the badge says what is true now."""

Index = QModelIndex | QPersistentModelIndex


class ItemRole(IntEnum):
    ID = Qt.ItemDataRole.UserRole + 1
    ICON = Qt.ItemDataRole.UserRole + 2
    LIKED = Qt.ItemDataRole.UserRole + 3
    STATUS = Qt.ItemDataRole.UserRole + 4
    REVISION = Qt.ItemDataRole.UserRole + 5
    BY_DEVICE_NAME = Qt.ItemDataRole.UserRole + 6
    BADGE = Qt.ItemDataRole.UserRole + 7  # (label, colour) of the status badge


class ItemListModel(QAbstractListModel):
    """Items of one device's ``LikesState`` with their like, status and revision."""

    def __init__(self, device_name: Callable[[int], str], parent: Any = None) -> None:
        super().__init__(parent)
        self._device_name = device_name
        self._items: tuple[Item, ...] = ()
        self._statuses: dict[str, KeyStatus] = {}
        self._rows: dict[str, int] = {}
        self._failed_at: dict[str, float] = {}  # item id -> when its failure was first shown
        self._expired: set[str] = set()
        self._online = True

    # -- feeding ----------------------------------------------------------------

    def set_state(self, state: LikesState) -> None:
        items = tuple(state.items)
        statuses = dict(state.statuses)
        same_ids = len(items) == len(self._items) and all(
            a.id == b.id for a, b in zip(items, self._items, strict=True)
        )
        self._track_failures(statuses)
        if not same_ids:
            self.beginResetModel()
            self._items, self._statuses = items, statuses
            self._rows = {item.id: row for row, item in enumerate(items)}
            self.endResetModel()
            return
        old_items, old_statuses = self._items, self._statuses
        self._items, self._statuses = items, statuses
        changed = [
            row
            for row, item in enumerate(items)
            if (item is not old_items[row] and item != old_items[row])
            or statuses.get(item.id) != old_statuses.get(item.id)
        ]
        # One dataChanged per contiguous run keeps the view's repaint minimal.
        start = prev = None
        for row in [*changed, None]:
            if row is not None and prev is not None and row == prev + 1:
                prev = row
                continue
            if start is not None and prev is not None:
                self.dataChanged.emit(self.index(start), self.index(prev))
            start = prev = row

    def set_online(self, online: bool) -> None:
        """Whether the device is connected and caught up: only then can a badge say
        Synced (offline it says Last known)."""
        if online == self._online:
            return
        self._online = online
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1))

    def _track_failures(self, statuses: dict[str, KeyStatus]) -> None:
        now = time.monotonic()
        for item_id, status in statuses.items():
            if status.phase is SyncPhase.FAILED:
                if item_id not in self._failed_at:
                    self._failed_at[item_id] = now
            elif item_id in self._failed_at:
                del self._failed_at[item_id]
                self._expired.discard(item_id)

    def expire_failures(self, now: float | None = None, *, all_of_them: bool = False) -> int:
        """Stop showing failures older than :data:`FAILED_BADGE_SECONDS` (or every one,
        e.g. after a reconnect); returns how many rows changed."""
        now = time.monotonic() if now is None else now
        changed = 0
        for item_id, since in self._failed_at.items():
            if item_id in self._expired:
                continue
            if all_of_them or now - since >= FAILED_BADGE_SECONDS:
                self._expired.add(item_id)
                row = self._rows.get(item_id)
                if row is not None:
                    self.dataChanged.emit(self.index(row), self.index(row))
                    changed += 1
        return changed

    def has_failures(self) -> bool:
        return len(self._expired) < len(self._failed_at)

    def shown_status(self, item_id: str) -> KeyStatus | None:
        """The status the badge shows (a failure already seen reads as synced)."""
        status = self._statuses.get(item_id)
        if status is not None and item_id in self._expired and status.phase is SyncPhase.FAILED:
            return dataclasses.replace(status, phase=SyncPhase.SYNCED)
        return status

    def row_of(self, item_id: str) -> int:
        return self._rows.get(item_id, -1)

    def item_id(self, row: int) -> str | None:
        return self._items[row].id if 0 <= row < len(self._items) else None

    def titles(self) -> list[tuple[str, str]]:
        """(id, title) of every item, for the timeline's filter."""
        return [(item.id, item.title) for item in self._items]

    # -- QAbstractListModel -------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.title
        if role == ItemRole.ID:
            return item.id
        if role == ItemRole.ICON:
            return item.icon
        if role == ItemRole.LIKED:
            return item.liked
        status = self.shown_status(item.id)
        if role == ItemRole.STATUS:
            return status
        if role == ItemRole.REVISION:
            return 0 if status is None else status.server_revision
        if role == ItemRole.BY_DEVICE_NAME:
            return self._by_device_name(status)
        if role == ItemRole.BADGE:
            return badge_for(status, self._by_device_name(status), online=self._online)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.title}, {'liked' if item.liked else 'not liked'}"
        return None

    def _by_device_name(self, status: KeyStatus | None) -> str | None:
        if status is None or status.by_device is None:
            return None
        return self._device_name(status.by_device)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
