"""The server window's tables: authoritative values with revisions, and connected devices."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QFont, QFontMetrics, QIcon, QPainter, QPen
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from syncserver import DeviceInfo, ServerState

from .space_colors import space_tone
from .theme import Palette, icon_pixmap

__all__ = [
    "DevicesModel",
    "ServerValuesModel",
    "SpaceChipDelegate",
    "SpacesRole",
    "space_order",
]

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


SpacesRole = Qt.ItemDataRole.UserRole + 1
"""The space names of a row (a list), painted as chips by :class:`SpaceChipDelegate`."""


def space_order(spaces: Sequence[str], known: Sequence[str]) -> list[str]:
    """``spaces`` grouped as the demo lists them (``known`` first), then by name."""
    rank = {space: i for i, space in enumerate(known)}
    return sorted(set(spaces), key=lambda space: (rank.get(space, len(rank)), space))


class ServerValuesModel(_Table):
    """Every register the server holds, grouped by space: space, item, value, revision
    (the newest write of each space on top)."""

    HEADERS = ("Space", "Item", "Value", "Revision")
    SPACE, ITEM, VALUE, REVISION = range(4)
    SPACE_COLUMN = SPACE

    def __init__(
        self,
        catalogue: Mapping[str, tuple[str, str]],
        parent: Any = None,
        *,
        spaces: Sequence[str] = (),
    ) -> None:
        super().__init__(parent)
        self._catalogue = catalogue  # item id -> (title, icon)
        self._known = tuple(spaces)  # the demo's own spaces, listed first
        self._rows: list[tuple[str, str, Any, int]] = []

    def set_state(self, state: ServerState) -> None:
        order = space_order([entry.space for entry in state.values], self._known)
        rank = {space: i for i, space in enumerate(order)}
        rows = sorted(
            (
                (entry.space, entry.key, _decode(entry.value), entry.server_revision)
                for entry in state.values
            ),
            key=lambda row: (rank[row[0]], -row[3]),
        )
        if rows == self._rows:
            return
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def spaces(self) -> list[str]:
        """The spaces that have registers, in the order the table groups them."""
        return list(dict.fromkeys(row[0] for row in self._rows))

    def rows_of(self, space: str) -> list[tuple[str, Any, int]]:
        """(key, value, revision) of every register of ``space``, newest first."""
        return [(key, value, rev) for sp, key, value, rev in self._rows if sp == space]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        space, key, value, revision = self._rows[index.row()]
        item_id = key.removeprefix("like/") if key.startswith("like/") else None
        title, icon = self._catalogue.get(item_id or "", (key, ""))
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.SPACE:
                return space
            if column == self.ITEM:
                return title
            if column == self.VALUE:
                if isinstance(value, bool):
                    return "♥ liked" if value else "♡ not liked"
                return repr(value)
            return str(revision)
        if role == SpacesRole and column == self.SPACE:
            return [space]
        if role == Qt.ItemDataRole.DecorationRole and column == self.ITEM and icon:
            return QIcon(icon_pixmap(icon, 20))
        if role == Qt.ItemDataRole.ForegroundRole and column == self.VALUE and value is True:
            return Palette.failed.darker(105)
        if role == Qt.ItemDataRole.ForegroundRole and column == self.REVISION:
            return Palette.muted
        if role == Qt.ItemDataRole.TextAlignmentRole and column == self.REVISION:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ToolTipRole:
            shown = (
                ("♥ liked" if value else "♡ not liked") if isinstance(value, bool) else repr(value)
            )
            return (
                f"{title} in space {space!r}: the server holds {shown}, written at revision "
                f"{revision}. Every device in {space!r} ends on this value; devices in other "
                "spaces have values of their own."
            )
        return None


class DevicesModel(_Table):
    """Open connections: device name, its spaces, address, requests received from it."""

    HEADERS = ("Device", "Spaces", "Address", "Requests")
    SPACE_COLUMN = 1

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
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, 3))
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
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            spaces = ", ".join(device.spaces)
            return (self._label(device), spaces, device.remote, str(device.requests))[column]
        if role == SpacesRole and column == 1:
            return list(device.spaces)
        if role == Qt.ItemDataRole.ToolTipRole and column == 1:
            joined = ", ".join(repr(space) for space in device.spaces) or "none yet"
            return f"Spaces this connection joined: {joined}. It gets pushes of these only."
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ForegroundRole and column > 1:
            return Palette.muted
        return None


class SpaceChipDelegate(QStyledItemDelegate):
    """Paints a cell's :data:`SpacesRole` names as small chips in their space colours."""

    MAX_CHIP = 120

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        spaces = index.data(SpacesRole)
        if not isinstance(spaces, list):
            super().paint(painter, option, index)
            return
        # The row's background (alternating colours), without the text.
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)
        plain.text = ""
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(option.font)
        font.setPointSizeF(max(6.5, font.pointSizeF() - 1.5))
        font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(font)
        metrics = QFontMetrics(font)
        rect: QRect = option.rect
        x = rect.left() + 6
        height = metrics.height() + 4
        top = rect.top() + (rect.height() - height) // 2
        for space in spaces:
            text = metrics.elidedText(str(space), Qt.TextElideMode.ElideRight, self.MAX_CHIP)
            width = metrics.horizontalAdvance(text) + 14
            if x + width > rect.right() - 2:
                break
            tone = space_tone(str(space))
            chip = QRectF(x, top, width, height)
            painter.setPen(QPen(tone.accent, 1.0))
            painter.setBrush(tone.fill)
            painter.drawRoundedRect(chip.adjusted(0.5, 0.5, -0.5, -0.5), height / 2, height / 2)
            painter.setPen(tone.ink)
            painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, text)
            x += width + 4
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        hint = super().sizeHint(option, index)
        spaces = index.data(SpacesRole)
        if isinstance(spaces, list):
            font = QFont(option.font)
            font.setPointSizeF(max(6.5, font.pointSizeF() - 1.5))
            font.setWeight(QFont.Weight.DemiBold)
            metrics = QFontMetrics(font)
            widths = [
                min(metrics.horizontalAdvance(str(space)), self.MAX_CHIP) + 18 for space in spaces
            ]
            hint.setWidth(max(hint.width(), sum(widths) + 8))
        return hint
