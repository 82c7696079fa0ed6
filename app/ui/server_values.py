"""The server window's tables: authoritative values with revisions, and connected devices."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QIcon

from syncserver import DeviceInfo, ServerState

from .theme import Palette, icon_pixmap

__all__ = ["DevicesModel", "ServerValuesModel"]

Index = QModelIndex | QPersistentModelIndex


def _decode(raw: Any) -> Any:
    if isinstance(raw, msgspec.Raw):
        return msgspec.json.decode(bytes(raw))
    return raw


class _Table(QAbstractTableModel):
    """Rows under fixed column headers; subclasses fill ``_rows`` and ``data``."""

    HEADERS: tuple[str, ...] = ()
    _rows: Sequence[object]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class ServerValuesModel(_Table):
    """Every key the server holds: item, value, revision (newest write on top)."""

    HEADERS = ("Item", "Value", "Revision")

    def __init__(self, catalogue: Mapping[str, tuple[str, str]], parent: Any = None) -> None:
        super().__init__(parent)
        self._catalogue = catalogue  # item id -> (title, icon)
        self._rows: list[tuple[str, Any, int]] = []

    def set_state(self, state: ServerState) -> None:
        rows = sorted(
            ((entry.key, _decode(entry.value), entry.server_revision) for entry in state.values),
            key=lambda row: -row[2],
        )
        if rows == self._rows:
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key, value, revision = self._rows[index.row()]
        item_id = key.removeprefix("like/") if key.startswith("like/") else None
        title, icon = self._catalogue.get(item_id or "", (key, ""))
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return title
            if column == 1:
                if isinstance(value, bool):
                    return "♥ liked" if value else "♡ not liked"
                return repr(value)
            return str(revision)
        if role == Qt.ItemDataRole.DecorationRole and column == 0 and icon:
            return QIcon(icon_pixmap(icon, 20))
        if role == Qt.ItemDataRole.ForegroundRole and column == 1 and value is True:
            return Palette.failed.darker(105)
        if role == Qt.ItemDataRole.ForegroundRole and column == 2:
            return Palette.muted
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ToolTipRole:
            shown = (
                ("♥ liked" if value else "♡ not liked") if isinstance(value, bool) else repr(value)
            )
            return (
                f"{title}: the server holds {shown}, written at revision {revision}. "
                "Every device ends on this value."
            )
        return None


class DevicesModel(_Table):
    """Open connections: device name, address, requests received from it."""

    HEADERS = ("Device", "Address", "Requests")

    def __init__(self, device_name: Callable[[int | None], str], parent: Any = None) -> None:
        super().__init__(parent)
        self._device_name = device_name
        self._rows: list[DeviceInfo] = []

    def set_state(self, state: ServerState) -> None:
        rows = sorted(state.devices, key=lambda device: device.connection_id)
        if rows == self._rows:
            return
        if len(rows) == len(self._rows):
            self._rows = rows
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, 2))
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def clear(self) -> None:
        """No server, no connections (they come back with the restarted server)."""
        if self._rows:
            self.beginResetModel()
            self._rows = []
            self.endResetModel()

    def names(self) -> list[str]:
        return [self._label(device) for device in self._rows]

    def _label(self, device: DeviceInfo) -> str:
        if device.device_id is None:
            return "(no hello yet)"
        return self._device_name(device.device_id)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        device = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (self._label(device), device.remote, str(device.requests))[index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 2:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ForegroundRole and index.column() > 0:
            return Palette.muted
        return None
