"""A device window: who it is, whether it is online, its items and its timeline."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.link import ConnectionStatus, LikesState

from .bridge import DeviceBridge
from .item_list import ItemListView
from .item_model import ItemListModel
from .theme import mono_font
from .timeline import TimelineEntry, TimelineModel, TimelineView
from .widgets import Avatar, Pill, StatTile

__all__ = ["DeviceWindow", "status_text"]


def status_text(status: ConnectionStatus, now: float | None = None) -> tuple[str, str]:
    """The connection pill's words and tone."""
    if status.state == "online":
        return "Online", "good"
    if status.state == "connecting":
        return "Connecting…", "warn"
    left = status.seconds_until_retry(now)
    if left is None:
        return "Offline", "bad"
    return f"Offline · retry in {left:.0f} s" if left >= 1 else "Offline · retrying…", "bad"


class DeviceWindow(QWidget):
    """One device, drawn from its :class:`DeviceBridge`.

    ``closeRequested`` fires when the user closes the window; the owner closes
    the session (asynchronously) and the state stays persisted for next time.
    """

    closeRequested = Signal(object)
    newDeviceRequested = Signal()

    def __init__(self, bridge: DeviceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("deviceWindow")
        self.setWindowTitle(f"{bridge.name} — optisync")
        self.resize(440, 760)

        # -- header: avatar, name, id, connection ------------------------------------
        self.avatar = Avatar(bridge.name[-1:].upper())
        self.name_label = QLabel(bridge.name)
        self.name_label.setObjectName("windowTitle")
        self.id_label = QLabel(f"device id {bridge.device_id}")
        self.id_label.setObjectName("subtle")
        self.id_label.setFont(mono_font(8.0))
        self.id_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.connection = Pill()
        self.connection.setAccessibleName("Connection status")
        names = QVBoxLayout()
        names.setSpacing(1)
        names.addWidget(self.name_label)
        names.addWidget(self.id_label)
        header = QHBoxLayout()
        header.setSpacing(12)
        header.addWidget(self.avatar)
        header.addLayout(names, 1)
        header.addWidget(self.connection, 0, Qt.AlignmentFlag.AlignVCenter)

        # -- counters: how much coalescing saved ------------------------------------------
        self.liked_tile = StatTile("liked")
        self.taps_tile = StatTile("taps")
        self.requests_tile = StatTile("requests sent")
        self.ratio_tile = StatTile("taps per request")
        stats = QHBoxLayout()
        stats.setSpacing(8)
        for tile in (self.liked_tile, self.taps_tile, self.requests_tile, self.ratio_tile):
            stats.addWidget(tile, 1)

        # -- items ----------------------------------------------------------------------
        self.model = ItemListModel(bridge.device_name, self)
        self.list = ItemListView(self.model)
        self.list.toggleRequested.connect(bridge.toggle_like)
        items_title = QLabel("Items")
        items_title.setObjectName("sectionTitle")
        self.items_hint = QLabel("click a heart, or press space")
        self.items_hint.setObjectName("subtle")
        items_header = QHBoxLayout()
        items_header.addWidget(items_title)
        items_header.addStretch(1)
        items_header.addWidget(self.items_hint)
        items_box = QWidget()
        items_layout = QVBoxLayout(items_box)
        items_layout.setContentsMargins(0, 0, 0, 0)
        items_layout.setSpacing(6)
        items_layout.addLayout(items_header)
        items_layout.addWidget(self.list, 1)

        # -- timeline ---------------------------------------------------------------------
        self.timeline_model = TimelineModel(self._title_of, self)
        self.timeline = TimelineView(self.timeline_model)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("deviceSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(items_box)
        splitter.addWidget(self.timeline)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        card = QFrame()
        card.setObjectName("headerCard")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(14, 12, 14, 12)
        card_layout.setSpacing(12)
        card_layout.addLayout(header)
        card_layout.addLayout(stats)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 14, 14, 14)
        layout.setSpacing(12)
        layout.addWidget(card)
        layout.addWidget(splitter, 1)

        self._countdown = QTimer(self)
        self._countdown.setInterval(250)
        self._countdown.timeout.connect(self._show_status)

        bridge.stateChanged.connect(self._on_state)
        bridge.statusChanged.connect(self._on_status)
        bridge.countersChanged.connect(self._on_counters)
        bridge.eventLogged.connect(self._on_event)
        QShortcut(QKeySequence.StandardKey.New, self, self.newDeviceRequested.emit)
        QShortcut(QKeySequence.StandardKey.Close, self, self.close)

        self._on_state(bridge.state)
        self.timeline.set_items(self.model.titles())
        self._on_status(bridge.status)
        self.list.setCurrentIndex(self.model.index(0))

    # -- bridge → widgets --------------------------------------------------------------

    def _title_of(self, item_id: str) -> str:
        row = self.model.row_of(item_id)
        return str(self.model.index(row).data()) if row >= 0 else item_id

    def _on_state(self, state: LikesState) -> None:
        count_before = self.model.rowCount()
        self.model.set_state(state)
        if self.model.rowCount() != count_before:
            self.timeline.set_items(self.model.titles())
        self.liked_tile.set_value(str(sum(1 for item in state.items if item.liked)))
        self._on_counters(state.taps, state.requests)

    def _on_counters(self, taps: int, requests: int) -> None:
        self.taps_tile.set_value(str(taps))
        self.requests_tile.set_value(str(requests))
        self.ratio_tile.set_value(f"{taps / requests:.1f}×" if requests else "–")

    def _on_status(self, status: ConnectionStatus) -> None:
        self._show_status()
        if status.state == "offline" and status.retry_at is not None:
            self._countdown.start()
        else:
            self._countdown.stop()
        self.connection.setToolTip(status.url or "")

    def _show_status(self) -> None:
        text, tone = status_text(self.bridge.status, time.monotonic())
        self.connection.set(text, tone)

    def _on_event(self, entry: TimelineEntry) -> None:
        self.timeline_model.add(entry)

    # -- window -------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self._countdown.stop()
        self.closeRequested.emit(self)
        super().closeEvent(event)
