"""The device's timeline: the core's sync events in plain words, newest first.

:func:`describe` turns one ``SyncEvent`` into a :class:`TimelineEntry`;
:class:`TimelineModel` keeps the newest entries and :class:`TimelineView`
shows them with a filter by item.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.sync import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushHeld,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)

from .theme import Palette, mono_font

__all__ = [
    "TimelineEntry",
    "TimelineModel",
    "TimelineView",
    "describe",
    "item_id_of",
    "value_words",
]

Index = QModelIndex | QPersistentModelIndex
MAX_ENTRIES = 500

KIND_COLORS: dict[str, QColor] = {
    "tap": Palette.accent,
    "sent": Palette.saving,
    "follow-up": Palette.follow_up,
    "ack": Palette.synced,
    "own-push": Palette.synced.darker(125),
    "done": Palette.synced,
    "push": Palette.overridden,
    "echo": Palette.muted,
    "stale": Palette.faint,
    "failed": Palette.failed,
    "waiting": Palette.saving,
    "link": Palette.muted,
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the timeline."""

    at: float
    item_id: str | None
    kind: str
    text: str
    repeats: int = 1  # folded copies of the same connection news (backoff cycles)

    @property
    def words(self) -> str:
        return self.text if self.repeats == 1 else f"{self.text} (×{self.repeats})"


def item_id_of(key: Hashable) -> str | None:
    """The item a sync key is about (keys are ``like/<item-id>``)."""
    if isinstance(key, str) and key.startswith("like/"):
        return key.removeprefix("like/")
    return None


def value_words(value: Any) -> str:
    """A value in words: "♥ liked" / "♡ not liked" for likes."""
    return _value(value)


def _value(value: Any) -> str:
    value = getattr(value, "value", value)  # an ack carries the value it confirms
    if isinstance(value, bool):
        return "♥ liked" if value else "♡ not liked"
    return repr(value)


def describe(
    event: SyncEvent,
    device_name: Callable[[int], str],
    own_device_id: int | None = None,
    *,
    online: bool = True,
) -> TimelineEntry:
    """Plain words for what the core decided.

    ``own_device_id`` turns this device's own writes into "your write";
    ``online`` False words a request as waiting for the connection.
    """
    kind, text = _words(event, device_name, own_device_id, online)
    return TimelineEntry(time.time(), item_id_of(event.key), kind, text[:1].upper() + text[1:])


def _words(
    event: SyncEvent, device_name: Callable[[int], str], own: int | None, online: bool
) -> tuple[str, str]:
    match event:
        case OptimisticApplied(value=value) if not online:
            return (
                "waiting",
                f"You tapped: showing {_value(value)} now; offline, so it waits and is sent "
                "when the connection is back",
            )
        case OptimisticApplied(value=value, coalesced=True):
            return (
                "tap",
                f"You tapped: showing {_value(value)} now; a request is in flight, "
                "so this waits for its answer",
            )
        case OptimisticApplied(value=value):
            return (
                "tap",
                f"You tapped: showing {_value(value)} now (local rev {event.local_revision})",
            )
        case RequestSent(value=value) if not online:
            return (
                "waiting",
                f"Offline: {_value(value)} (local rev {event.local_revision}) waits and is "
                "sent when the connection is back",
            )
        case RequestSent(value=value, follow_up=True):
            return (
                "follow-up",
                f"Sent a follow-up with the newest value {_value(value)} "
                f"(local rev {event.local_revision})",
            )
        case RequestSent(value=value):
            return "sent", f"Sent {_value(value)} to the server (local rev {event.local_revision})"
        case FollowUpScheduled(value=value, sent_local_revision=sent):
            return (
                "follow-up",
                f"The server stored local rev {sent}, but you changed it since: "
                f"a follow-up will send {_value(value)}",
            )
        case ResponseApplied(response=response):
            return (
                "ack",
                f"Ack: the server stored your write at rev {event.server_revision} "
                f"({_value(response)}) and answered your request",
            )
        case StaleResponseIgnored(response_revision=revision):
            return (
                "stale",
                f"Ignored the ack at rev {revision}: a newer write (rev {event.server_revision}) "
                "arrived first by push, and the newest write wins",
            )
        case PushApplied(from_device_id=origin) if own is not None and origin == own:
            return (
                "own-push",
                f"Push of your own write, stored at rev {event.server_revision}: the server "
                "pushes every write to every device, the writer too (the ack answers the "
                "request itself)",
            )
        case PushApplied(from_device_id=origin):
            return (
                "push",
                f"{device_name(origin)} wrote this at rev {event.server_revision}: applied here",
            )
        case PushHeld(from_device_id=origin):
            return (
                "push",
                f"{device_name(origin)} wrote this at rev {event.server_revision} while your "
                "request is out: held back until its ack shows which write is newer",
            )
        case PushIgnoredStale(push_revision=revision, from_device_id=origin) if (
            revision == event.server_revision and own is not None and origin == own
        ):
            return (
                "stale",
                f"The push of your write at rev {revision} came after its ack: "
                "already known, ignored",
            )
        case PushIgnoredStale(push_revision=revision, from_device_id=origin) if (
            revision == event.server_revision
        ):
            return (
                "stale",
                f"A second copy of {device_name(origin)}'s write at rev {revision} arrived late "
                "(a catch-up brought it first): already applied, ignored",
            )
        case PushIgnoredStale(push_revision=revision, from_device_id=origin):
            who = "your" if own is not None and origin == own else f"{device_name(origin)}'s"
            return (
                "stale",
                f"Ignored an older push ({who} write at rev {revision}): "
                f"already at rev {event.server_revision}",
            )
        case SelfEchoAcknowledged(push_local_revision=local):
            return (
                "echo",
                f"The echo of your earlier request (local rev {local}) at rev "
                f"{event.server_revision}: noted, not re-applied, your newer change follows",
            )
        case SyncFinished(requests=requests):
            plural = "request" if requests == 1 else "requests"
            return "done", f"In sync after {requests} {plural}"
        case SyncFailed(error=error):
            return "failed", f"Failed ({error}); showing the server's value again"
    return "link", type(event).__name__


class TimelineModel(QAbstractListModel):
    """The newest :data:`MAX_ENTRIES` entries, newest first."""

    ItemIdRole = Qt.ItemDataRole.UserRole + 1
    KindRole = Qt.ItemDataRole.UserRole + 2
    TimeRole = Qt.ItemDataRole.UserRole + 3
    TitleRole = Qt.ItemDataRole.UserRole + 4
    TextRole = Qt.ItemDataRole.UserRole + 5

    def __init__(self, title_of: Callable[[str], str], parent: Any = None) -> None:
        super().__init__(parent)
        self._entries: list[TimelineEntry] = []
        self._title_of = title_of

    def add(self, entry: TimelineEntry) -> None:
        """Put ``entry`` on top; connection news repeating one of the (at most two)
        connection entries on top, as Offline/Connecting do while the device retries,
        is folded into that entry, which moves up with a count."""
        if entry.kind == "link":
            for row, older in enumerate(self._entries[:2]):
                if older.kind != "link":
                    break
                if older.text == entry.text:
                    self.beginRemoveRows(QModelIndex(), row, row)
                    del self._entries[row]
                    self.endRemoveRows()
                    entry = replace(entry, repeats=older.repeats + 1)
                    break
        if len(self._entries) >= MAX_ENTRIES:
            last = len(self._entries) - 1
            self.beginRemoveRows(QModelIndex(), last, last)
            self._entries.pop()
            self.endRemoveRows()
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._entries.insert(0, entry)
        self.endInsertRows()

    def entries(self) -> list[TimelineEntry]:
        return list(self._entries)

    def clear(self) -> None:
        self.beginResetModel()
        self._entries.clear()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if entry.item_id is None:
                return entry.words
            return f"{self._title_of(entry.item_id)}: {entry.words}"
        if role == Qt.ItemDataRole.ToolTipRole:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.at))
            return f"{stamp} · {self.data(index)}"
        if role == self.ItemIdRole:
            return entry.item_id
        if role == self.KindRole:
            return entry.kind
        if role == self.TimeRole:
            return entry.at
        if role == self.TitleRole:
            return "Connection" if entry.item_id is None else self._title_of(entry.item_id)
        if role == self.TextRole:
            return entry.words
        return None


class _ItemFilter(QSortFilterProxyModel):
    """Keeps one item's entries (and connection entries), or everything."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._item_id: str | None = None

    def set_item(self, item_id: str | None) -> None:
        self.beginFilterChange()
        self._item_id = item_id
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent: Index) -> bool:
        if self._item_id is None:
            return True
        source = self.sourceModel().index(row, 0, parent)
        found = source.data(TimelineModel.ItemIdRole)
        return found is None or found == self._item_id


class _EntryDelegate(QStyledItemDelegate):
    """Two lines: time, a coloured kind chip and the item; then the sentence."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._heights: dict[tuple[str, int], int] = {}
        self._time_font = mono_font(8.0)
        self._chip_font = QFont()
        self._chip_font.setPointSizeF(7.0)
        self._chip_font.setWeight(QFont.Weight.Bold)
        self._title_font = QFont()
        self._title_font.setPointSizeF(9.0)
        self._title_font.setWeight(QFont.Weight.DemiBold)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        """Tall enough for the whole sentence, wrapped to the list's width."""
        # The viewport's width, not option.rect's: Qt passes different rects when it
        # lays rows out and when it asks for one row, and the heights must agree.
        view = self.parent()
        full = view.viewport().width() if isinstance(view, QListView) else option.rect.width()
        width = max(120, full - 24)
        text = str(index.data(TimelineModel.TextRole))
        key = (text, width)
        height = self._heights.get(key)
        if height is None:
            bounds = QFontMetrics(option.font).boundingRect(
                QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap, text
            )
            height = self._heights[key] = max(18, bounds.height())
            if len(self._heights) > 5000:
                self._heights.clear()
        return QSize(200, 24 + height + 4)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rect: QRect = option.rect
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Palette.line)
        painter.drawLine(rect.left() + 10, rect.bottom(), rect.right() - 10, rect.bottom())
        top = QRect(rect.left(), rect.top() + 3, rect.width(), 18)

        kind = str(index.data(TimelineModel.KindRole))
        color = KIND_COLORS.get(kind, Palette.muted)
        chip = QRect(top.left() + 10, top.top() + 1, 64, 16)
        tint = QColor(color)
        tint.setAlpha(30)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(tint)
        painter.drawRoundedRect(chip, 8, 8)
        painter.setFont(self._chip_font)
        painter.setPen(color.darker(120))
        painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, kind.replace("-", " ").upper())

        stamp = float(index.data(TimelineModel.TimeRole))
        clock = time.strftime("%H:%M:%S", time.localtime(stamp))
        clock += f".{int(stamp * 1000) % 1000:03d}"
        painter.setFont(self._time_font)
        painter.setPen(Palette.faint)
        time_width = QFontMetrics(self._time_font).horizontalAdvance(clock) + 4
        time_rect = QRect(top.right() - 10 - time_width, top.top(), time_width, top.height())
        painter.drawText(
            time_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, clock
        )

        title_rect = QRect(chip.right() + 8, top.top(), time_rect.left() - chip.right() - 16, 18)
        painter.setFont(self._title_font)
        painter.setPen(Palette.text)
        title = QFontMetrics(self._title_font).elidedText(
            str(index.data(TimelineModel.TitleRole)),
            Qt.TextElideMode.ElideRight,
            title_rect.width(),
        )
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignVCenter, title)

        text_rect = QRect(
            rect.left() + 12, top.bottom() + 3, rect.width() - 24, rect.bottom() - top.bottom() - 4
        )
        painter.setFont(option.font)
        painter.setPen(Palette.muted)
        painter.drawText(
            text_rect,
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            | int(Qt.TextFlag.TextWordWrap),
            str(index.data(TimelineModel.TextRole)),
        )
        painter.restore()


class TimelineView(QWidget):
    """Title, item filter and the entry list."""

    def __init__(self, model: TimelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("timeline")
        self._filter = _ItemFilter(self)
        self._filter.setSourceModel(model)
        title = QLabel("Timeline")
        title.setObjectName("sectionTitle")
        self.combo = QComboBox()
        self.combo.setObjectName("timelineFilter")
        self.combo.setAccessibleName("Filter the timeline by item")
        self.combo.setToolTip("Show every item's entries, or one item's (connection news stays)")
        self.combo.addItem("All items", None)
        self.combo.currentIndexChanged.connect(self._on_filter)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("smallButton")
        self.clear_button.setToolTip("Clear timeline: remove every entry (Ctrl+L)")
        self.clear_button.clicked.connect(model.clear)
        title.setToolTip(
            "What this device's sync core decided, newest first: taps, requests, acks, "
            "pushes. Hover an entry for its time."
        )
        self.list = QListView()
        self.list.setObjectName("timelineList")
        self.list.setModel(self._filter)
        self.list.setItemDelegate(_EntryDelegate(self.list))
        # Rows grow to show a whole sentence; relaid out when the width changes.
        self.list.setUniformItemSizes(False)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.list.setSelectionMode(QListView.SelectionMode.NoSelection)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.combo)
        header.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(header)
        layout.addWidget(self.list, 1)

    def set_items(self, titles: list[tuple[str, str]]) -> None:
        """Offer each item in the filter (the current choice is kept)."""
        current = self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("All items", None)
        for item_id, title in titles:
            self.combo.addItem(title, item_id)
        found = self.combo.findData(current)
        self.combo.setCurrentIndex(max(0, found))
        self.combo.blockSignals(False)

    def filter_to(self, item_id: str | None) -> None:
        found = self.combo.findData(item_id)
        self.combo.setCurrentIndex(max(0, found))

    def visible_rows(self) -> int:
        return self._filter.rowCount()

    def _on_filter(self, _index: int) -> None:
        self._filter.set_item(self.combo.currentData())
        self.list.scrollToTop()  # the newest entries are at the top
