"""A device window: who it is, whether it is online, its items and its timeline."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.link import ConnectionStatus, LikesState

from .bridge import DeviceBridge, TapStats
from .item_list import ItemListView
from .item_model import ItemListModel, ItemRole
from .menus import WindowMenu
from .theme import mono_font
from .timeline import TimelineEntry, TimelineModel, TimelineView
from .widgets import Avatar, Pill, SpaceChip, StatTile

__all__ = ["DeviceWindow", "status_text"]


def status_text(status: ConnectionStatus, now: float | None = None) -> tuple[str, str]:
    """The connection pill's words and tone (a countdown while waiting to retry)."""
    if status.state == "online":
        return "Online", "good"
    if status.state == "connecting":
        return "Connecting…", "warn"
    left = status.seconds_until_retry(now)
    if left is None:
        return "Offline", "bad"
    if left >= 10:
        return f"Offline · retry in {left:.0f} s", "bad"
    if left >= 0.05:
        return f"Offline · retry in {left:.1f} s", "bad"
    return "Offline · retrying…", "bad"


ITEMS_HINT = "click a heart, or press space or Enter"
LIST_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)

STATUS_TIPS = {
    "good": "Connected to {url} and caught up in space {space!r}: every push of this space "
    "arrives as it happens.",
    "warn": "Connecting to {url}… Taps are shown at once and sent once connected.",
    "bad": "No connection to the server. Taps are kept (and saved on disk) and sent "
    "when the connection is back; the device retries with growing, jittered delays.",
}


class DeviceWindow(QWidget):
    """One device, drawn from its :class:`DeviceBridge`.

    ``closeRequested`` fires when the user closes the window; the owner closes
    the session (asynchronously) and the state stays persisted for next time.
    """

    closeRequested = Signal(object)
    newDeviceRequested = Signal()
    quitRequested = Signal()
    diagramRequested = Signal()
    helpRequested = Signal()

    def __init__(self, bridge: DeviceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("deviceWindow")
        self.setWindowTitle(f"{bridge.name} · {bridge.space} — optisync")
        self.resize(440, 760)

        # -- header: avatar, name, id, connection ------------------------------------
        self.avatar = Avatar(bridge.name[-1:].upper(), space=bridge.space)
        self.avatar.setToolTip(
            f"{bridge.name}: one device in space {bridge.space!r}, with its own connection and "
            "state (devices of one space share a colour)"
        )
        self.name_label = QLabel(bridge.name)
        self.name_label.setObjectName("windowTitle")
        self.id_label = QLabel(f"id {bridge.device_id}")
        self.id_label.setObjectName("subtle")
        self.id_label.setFont(mono_font(8.0))
        self.id_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.id_label.setToolTip(
            "The device id this device sends with every write; kept in its state file, so a "
            "reopened device is the same device"
        )
        self.connection = Pill(min_text="Connecting…")
        self.connection.setAccessibleName("Connection status")
        self.space_chip = SpaceChip(bridge.space)
        title_row = QHBoxLayout()
        title_row.setSpacing(6)
        title_row.addWidget(self.name_label)
        title_row.addWidget(self.space_chip, 0, Qt.AlignmentFlag.AlignVCenter)
        title_row.addStretch(1)
        # The connection badge shares the id's line, not the name's: when it widens
        # ("Offline · retry in 9 s") it takes room from the gap after the id, never
        # from the space chip.
        id_row = QHBoxLayout()
        id_row.setSpacing(10)
        id_row.addWidget(self.id_label)
        id_row.addStretch(1)
        id_row.addWidget(self.connection, 0, Qt.AlignmentFlag.AlignVCenter)
        names = QVBoxLayout()
        names.setSpacing(3)
        names.addLayout(title_row)
        names.addLayout(id_row)
        header = QHBoxLayout()
        header.setSpacing(10)
        header.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignVCenter)
        header.addLayout(names, 1)

        # -- counters: how much coalescing saved ------------------------------------------
        self.liked_tile = StatTile("liked")
        self.liked_tile.setToolTip("How many items this device shows as liked")
        self.taps_tile = StatTile("taps")
        self.taps_tile.setToolTip("Heart clicks (and Space presses) since the last reset")
        self.requests_tile = StatTile("requests")
        self.ratio_tile = StatTile("per request")
        self.ratio_tile.setToolTip(
            "Taps per request that carried them: rapid taps on one item share a request "
            "(10 quick taps: 2 requests, 5.0×). Reset to measure one burst."
        )
        self.reset_button = QPushButton("Reset")
        self.reset_button.setObjectName("smallButton")
        self.reset_button.setToolTip("Reset stats: count taps and requests from zero (Ctrl+R)")
        self.reset_button.clicked.connect(self.reset_stats)
        stats = QHBoxLayout()
        stats.setSpacing(6)
        for tile in (self.liked_tile, self.taps_tile, self.requests_tile, self.ratio_tile):
            stats.addWidget(tile, 1)
        stats.addWidget(self.reset_button, 0, Qt.AlignmentFlag.AlignVCenter)

        # -- items ----------------------------------------------------------------------
        self.model = ItemListModel(bridge.device_name, self)
        self.list = ItemListView(self.model)
        self.list.toggleRequested.connect(bridge.toggle_like)
        self.list.setToolTip("")
        items_title = QLabel("Items")
        items_title.setObjectName("sectionTitle")
        self.search = QLineEdit()
        self.search.setObjectName("itemFilter")
        self.search.setPlaceholderText("Filter items (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Filter items by name")
        self.search.setToolTip("Show only the items whose name contains this text")
        self.search.textChanged.connect(self.filter_items)
        # Up/Down (and Page Up/Down) in the filter box move the list's current row,
        # Enter toggles it, so typing, choosing and liking need no Tab.
        self.search.installEventFilter(self)
        self.items_hint = QLabel(ITEMS_HINT)
        self.items_hint.setObjectName("subtle")
        items_header = QHBoxLayout()
        items_header.addWidget(items_title)
        items_header.addWidget(self.search, 1)
        items_box = QWidget()
        items_layout = QVBoxLayout(items_box)
        items_layout.setContentsMargins(0, 0, 0, 0)
        items_layout.setSpacing(6)
        items_layout.addLayout(items_header)
        items_layout.addWidget(self.list, 1)
        items_layout.addWidget(self.items_hint)

        # -- timeline ---------------------------------------------------------------------
        self.timeline_model = TimelineModel(self._title_of, self)
        self.timeline = TimelineView(self.timeline_model)

        self.splitter = splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("deviceSplitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(items_box)
        splitter.addWidget(self.timeline)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        card = QFrame()
        card.setObjectName("headerCard")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(12, 12, 12, 12)
        card_layout.setSpacing(12)
        card_layout.addLayout(header)
        card_layout.addLayout(stats)

        self.menu = WindowMenu(
            self,
            close_label="&Close device",
            device=True,
            toggle_timeline=self.timeline.setVisible,
            reset_stats=self.reset_stats,
            clear_timeline=self.clear_timeline,
        )
        self.menu.addDeviceRequested.connect(self.newDeviceRequested.emit)
        self.menu.quitRequested.connect(self.quitRequested.emit)
        self.menu.diagramRequested.connect(self.diagramRequested.emit)
        self.menu.helpRequested.connect(self.helpRequested.emit)

        layout = QVBoxLayout(self)
        layout.setMenuBar(self.menu.bar)
        layout.setContentsMargins(12, 8, 12, 12)
        layout.setSpacing(10)
        layout.addWidget(card)
        layout.addWidget(splitter, 1)

        self._countdown = QTimer(self)
        self._countdown.setInterval(100)
        self._countdown.timeout.connect(self._show_status)
        self._failures = QTimer(self)
        self._failures.setInterval(500)
        self._failures.timeout.connect(self._expire_failures)

        bridge.stateChanged.connect(self._on_state)
        bridge.statusChanged.connect(self._on_status)
        bridge.statsChanged.connect(self._on_stats)
        bridge.eventLogged.connect(self._on_event)
        QShortcut(QKeySequence.StandardKey.Find, self, self._focus_search)

        self._on_state(bridge.state)
        self._on_stats(bridge.stats)
        self.timeline.set_items(self.model.titles())
        self._on_status(bridge.status)
        self.list.setCurrentIndex(self.model.index(0))

    # -- actions ----------------------------------------------------------------------

    def reset_stats(self) -> None:
        self.bridge.reset_stats()

    def clear_timeline(self) -> None:
        self.timeline_model.clear()

    def filter_items(self, text: str) -> None:
        """Hide the rows whose title does not contain ``text`` (case-insensitive)."""
        needle = text.strip().casefold()
        shown = 0
        for row in range(self.model.rowCount()):
            title = str(self.model.index(row).data()).casefold()
            hidden = bool(needle) and needle not in title
            if self.list.isRowHidden(row) != hidden:
                self.list.setRowHidden(row, hidden)
            shown += not hidden
        self.items_hint.setText(
            f"{shown} of {self.model.rowCount()} items · ↑↓ choose, Enter toggles"
            if needle
            else ITEMS_HINT
        )
        current = self.list.currentIndex()
        if current.isValid() and self.list.isRowHidden(current.row()):
            # Space must never toggle an item the filter hides: focus the first shown one.
            first = next(
                (row for row in range(self.model.rowCount()) if not self.list.isRowHidden(row)),
                None,
            )
            self.list.setCurrentIndex(
                self.model.index(first) if first is not None else self.model.index(-1)
            )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in LIST_KEYS:
                QApplication.sendEvent(self.list, event)
                return True
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                current = self.list.currentIndex()
                if current.isValid() and not self.list.isRowHidden(current.row()):
                    self.list.toggleRequested.emit(str(current.data(ItemRole.ID)))
                return True
        return super().eventFilter(watched, event)

    def visible_items(self) -> int:
        return sum(not self.list.isRowHidden(row) for row in range(self.model.rowCount()))

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # -- bridge → widgets --------------------------------------------------------------

    def _title_of(self, item_id: str) -> str:
        row = self.model.row_of(item_id)
        return str(self.model.index(row).data()) if row >= 0 else item_id

    def _on_state(self, state: LikesState) -> None:
        count_before = self.model.rowCount()
        self.model.set_state(state)
        if self.model.rowCount() != count_before:
            self.timeline.set_items(self.model.titles())
            if self.search.text():
                self.filter_items(self.search.text())
        self.liked_tile.set_value(str(sum(1 for item in state.items if item.liked)))
        if self.model.has_failures() and not self._failures.isActive():
            self._failures.start()

    def _on_stats(self, stats: TapStats) -> None:
        self.taps_tile.set_value(str(stats.taps))
        self.requests_tile.set_value(str(stats.requests))
        ratio = stats.ratio
        self.ratio_tile.set_value(f"{ratio:.1f}×" if ratio is not None else "–")
        resent = (
            f" {stats.resends} of them re-sent a choice not yet confirmed." if stats.resends else ""
        )
        self.requests_tile.setToolTip(
            "Requests this device sent to the server since the last reset." + resent + " A "
            "re-sent choice (one not yet confirmed, saved by an earlier run or made while "
            "offline) counts as a request but carries no tap, so it does not count in "
            "taps per request."
        )

    def _expire_failures(self) -> None:
        self.model.expire_failures()
        if not self.model.has_failures():
            self._failures.stop()

    def _on_status(self, status: ConnectionStatus) -> None:
        self.id_label.setText(f"id {self.bridge.device_id}")  # a claimed id is renewed offline
        self._show_status()
        self.model.set_online(status.state == "online")
        if status.state == "offline" and status.retry_at is not None:
            self._countdown.start()
        else:
            self._countdown.stop()
        if status.state == "online":
            # Back online: a failure shown before is old news (the server's value is shown).
            self.model.expire_failures(all_of_them=True)

    def _show_status(self) -> None:
        text, tone = status_text(self.bridge.status, time.monotonic())
        tip = STATUS_TIPS[tone].format(
            url=self.bridge.status.url or "the server", space=self.bridge.space
        )
        # Narrow windows drop the reason first, then "Offline" (the red says it); the
        # tooltip always has every word.
        shorter = [text]
        if text.startswith("Offline · retry in "):
            shorter.append("Retry in " + text.removeprefix("Offline · retry in "))
        if reason := self.bridge.status.reason:
            text = f"{text} · {reason}"
            tip = f"{text}.\n{tip}"
        self.connection.set(text, tone, *shorter)
        self.connection.setToolTip(tip)

    def _on_event(self, entry: TimelineEntry) -> None:
        self.timeline_model.add(entry)

    # -- window -------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self._countdown.stop()
        self._failures.stop()
        self.closeRequested.emit(self)
        super().closeEvent(event)
