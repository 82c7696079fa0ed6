"""The server window: the authoritative values, what the server is doing, and the demo controls."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.link import CatalogueItem, item_id_of, like_key
from syncserver import ServerState

from .menus import WindowMenu
from .sequence_feed import SequenceRecorder
from .sequence_view import SequencePanel
from .server_bridge import ServerBridge
from .server_values import DevicesModel, ServerValuesModel, SpaceChipDelegate
from .space_colors import space_icon
from .space_names import DEFAULT_SPACE
from .theme import icon_pixmap, mono_font
from .widgets import Note, Pill, StatTile, make_searchable

__all__ = ["ServerWindow"]


def _slider(maximum: int, step: int, value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, maximum)
    slider.setSingleStep(step)
    slider.setPageStep(step * 5)
    slider.setTickInterval(step * 10)
    slider.setTickPosition(QSlider.TickPosition.NoTicks)
    slider.setValue(snap(value, step))
    return slider


def snap(value: int, step: int) -> int:
    """The nearest multiple of ``step`` (sliders land on round values)."""
    return int(round(value / step) * step)


SLIDER_STEP = 50
LONGEST_TITLE_SHOWN = 20
"""The item box is wide enough for a title this long (longer ones scroll)."""


def _table(model: ServerValuesModel | DevicesModel, stretch: int) -> QTableView:
    """A read-only table: column ``stretch`` takes the room, the others fit their contents."""
    table = QTableView()
    table.setModel(model)
    table.verticalHeader().hide()
    table.setShowGrid(False)
    table.setAlternatingRowColors(True)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.verticalHeader().setDefaultSectionSize(28)
    header = table.horizontalHeader()
    for column in range(model.columnCount()):
        mode = (
            QHeaderView.ResizeMode.Stretch
            if column == stretch
            else QHeaderView.ResizeMode.ResizeToContents
        )
        header.setSectionResizeMode(column, mode)
    table.setItemDelegateForColumn(model.SPACE_COLUMN, SpaceChipDelegate(table))
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    return table


class ServerWindow(QWidget):
    """Drawn from a :class:`ServerBridge`; ``addDeviceRequested`` asks the owner for a window."""

    addDeviceRequested = Signal()
    quitRequested = Signal()
    diagramRequested = Signal()
    helpRequested = Signal()

    def __init__(
        self,
        bridge: ServerBridge,
        catalogue: Sequence[CatalogueItem],
        device_name: Callable[[int | None], str],
        parent: QWidget | None = None,
        *,
        recorder: SequenceRecorder | None = None,
        spaces: Sequence[str] = (DEFAULT_SPACE,),
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.spaces = tuple(spaces) or (DEFAULT_SPACE,)
        self.setObjectName("serverWindow")
        self.setWindowTitle("Sync server — optisync")
        self.resize(480, 740)
        self._titles = {item.id: item.title for item in catalogue}

        # -- header ---------------------------------------------------------------------
        logo = QLabel()
        logo.setPixmap(icon_pixmap("app-icon.svg", 40))
        title = QLabel("Sync server")
        title.setObjectName("windowTitle")
        self.url_label = QLabel(bridge.url)
        self.url_label.setObjectName("subtle")
        self.url_label.setFont(mono_font(8.5))
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.running = Pill(min_text="Running")
        names = QVBoxLayout()
        names.setSpacing(1)
        names.addWidget(title)
        names.addWidget(self.url_label)
        header = QHBoxLayout()
        header.setSpacing(12)
        header.addWidget(logo)
        header.addLayout(names, 1)
        header.addWidget(self.running, 0, Qt.AlignmentFlag.AlignVCenter)

        self.url_label.setToolTip("Where devices connect: python -m app --server <this URL>")
        self.running.setToolTip("Whether the server is accepting connections")
        self.revision_tile = StatTile("revision")
        self.revision_tile.setToolTip(
            "The server's write counter: every stored write, on any item in any space, gets "
            "the next number"
        )
        self.requests_tile = StatTile("requests received")
        self.requests_tile.setToolTip("Set and get requests received from every device")
        self.flight_tile = StatTile("in flight")
        self.flight_tile.setToolTip("Writes received but not yet stored and acknowledged")
        self.devices_tile = StatTile("devices")
        self.devices_tile.setToolTip("Devices connected right now")
        stats = QHBoxLayout()
        stats.setSpacing(8)
        for tile, stretch in (
            (self.revision_tile, 2),
            (self.requests_tile, 3),
            (self.flight_tile, 4),
            (self.devices_tile, 2),
        ):
            stats.addWidget(tile, stretch)

        card = QFrame()
        card.setObjectName("headerCard")
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(14, 12, 14, 12)
        card_layout.setSpacing(12)
        card_layout.addLayout(header)
        card_layout.addLayout(stats)

        # -- demo controls ------------------------------------------------------------------
        self.latency = _slider(3000, SLIDER_STEP, bridge.latency_ms)
        self.latency.setAccessibleName("Round-trip latency")
        self.latency.setToolTip(
            "How long each request takes: half before the server stores it, half before the "
            "ack. Raise it to watch coalescing and follow-ups."
        )
        self.latency_value = QLabel()
        self.latency_value.setObjectName("controlValue")
        self.jitter = _slider(2000, SLIDER_STEP, bridge.jitter_ms)
        self.jitter.setAccessibleName("Push jitter")
        self.jitter.setToolTip(
            "Delay each push by a random time up to this, so pushes and acks cross and "
            "arrive out of order (watch for ignored acks, stale pushes and self-echoes)"
        )
        self.jitter_value = QLabel()
        self.jitter_value.setObjectName("controlValue")
        self.push = QCheckBox("Push every write to every device")
        self.push.setChecked(bridge.push_enabled)
        self.push.setToolTip(
            "On: every write is pushed to every device at once. Off: devices learn of other "
            "devices' writes only when they reconnect or resync"
        )
        self.fail_button = QPushButton("Fail next request")
        self.fail_button.setObjectName("dangerButton")
        self.fail_button.setToolTip(
            "The next request (from any device) is refused after the usual latency: the "
            "heart flips, then flips back to the server's value. Click again to fail more."
        )
        # Wide enough for "(N)" too, so the window never changes width when it appears.
        wide = self.fail_button.fontMetrics().horizontalAdvance("Fail next request (99)")
        self.fail_button.setMinimumWidth(wide + 34)
        self.restart_button = QPushButton("Restart server")
        self.restart_button.setToolTip(
            "Stop the server for a few seconds, then start it on the same port: devices go "
            "offline, count down to their next retry, reconnect and catch up"
        )
        self.add_button = QPushButton("Add device")
        self.add_button.setObjectName("primaryButton")
        self.add_button.setToolTip("Open another device window (Ctrl+N)")
        header.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignVCenter)

        controls = QGridLayout()
        controls.setHorizontalSpacing(10)
        controls.setVerticalSpacing(6)
        controls.addWidget(QLabel("Round-trip latency"), 0, 0)
        controls.addWidget(self.latency, 0, 1)
        controls.addWidget(self.latency_value, 0, 2)
        controls.addWidget(QLabel("Push jitter"), 1, 0)
        controls.addWidget(self.jitter, 1, 1)
        controls.addWidget(self.jitter_value, 1, 2)
        controls.addWidget(self.push, 2, 0, 1, 3)
        controls.setColumnStretch(1, 1)
        buttons = QHBoxLayout()
        buttons.setSpacing(8)
        buttons.addWidget(self.fail_button)
        buttons.addWidget(self.restart_button)
        buttons.addStretch(1)

        # -- change from another device ---------------------------------------------------
        self.external_item = QComboBox()
        self.external_item.setAccessibleName("Item to change from another device")
        self.external_item.setToolTip(
            "The item a device outside this app will write: pick it, or type part of its name"
        )
        longest = max((len(item.title) for item in catalogue), default=8)
        self.external_item.setMinimumContentsLength(min(longest, LONGEST_TITLE_SHOWN))
        self.external_item.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        for item in catalogue:
            self.external_item.addItem(QIcon(icon_pixmap(item.icon, 20)), item.title, item.id)
        make_searchable(self.external_item)  # 1,000 items: type a few letters
        # Hearts alone, as on the devices' rows: the item box keeps the room for a title.
        self.like_button = QPushButton("♥")
        self.unlike_button = QPushButton("♡")
        for button, verb in ((self.like_button, "Like"), (self.unlike_button, "Unlike")):
            button.setObjectName("smallButton")
            button.setAccessibleName(f"{verb} as another device")
            button.setToolTip(
                f"{verb}: write it as a device that has no window here; every window of "
                "that space gets a push"
            )
        # Always there, empty or not: news never moves the tabs, and it clears itself.
        self.external_result = Note()
        self.external_result.setObjectName("subtle")
        self.external_space = QComboBox(self)  # shown (in a row of its own) for 2+ spaces
        self.external_space.setAccessibleName("Space to write in from another device")
        self.external_space.setToolTip(
            "The space the other device writes in: only the devices of that space get the push"
        )
        for space in self.spaces:
            self.external_space.addItem(space_icon(space), space, space)
        external = QHBoxLayout()
        external.setSpacing(8)
        external_title = QLabel("Another device:")
        external_title.setToolTip("Write as a device outside this app, to watch a push arrive")
        external.addWidget(external_title)
        external.addWidget(self.external_item, 1)
        external.addWidget(self.like_button)
        external.addWidget(self.unlike_button)
        # The space to write in (with 2+ spaces), then the news of the last write.
        news_row = QHBoxLayout()
        news_row.setSpacing(8)
        if len(self.spaces) > 1:
            in_space_title = QLabel("In space:")
            in_space_title.setToolTip(self.external_space.toolTip())
            news_row.addWidget(in_space_title)
            news_row.addWidget(self.external_space)
        else:
            self.external_space.hide()
        news_row.addWidget(self.external_result, 1)

        controls_card = QFrame()
        controls_card.setObjectName("card")
        controls_layout = QVBoxLayout(controls_card)
        controls_layout.setContentsMargins(14, 10, 14, 10)
        controls_layout.setSpacing(6)
        controls_layout.addLayout(controls)
        controls_layout.addLayout(buttons)
        controls_layout.addLayout(external)
        controls_layout.addLayout(news_row)

        # -- diagram and tables, one tab each ---------------------------------------------
        self.values_model = ServerValuesModel(
            {item.id: (item.title, item.icon) for item in catalogue}, self, spaces=self.spaces
        )
        self.values = _table(self.values_model, ServerValuesModel.ITEM)
        self.values.setToolTip(
            "What the server holds, grouped by space: the truth every device of that space "
            "converges to"
        )
        self.devices_model = DevicesModel(device_name, self)
        self.devices = _table(self.devices_model, 0)
        self.devices.setToolTip("Open connections, with the requests each has sent")
        self.tabs = QTabWidget()
        self.tabs.setObjectName("serverTabs")
        self.diagram: SequencePanel | None = None
        if recorder is not None:
            self.diagram = SequencePanel(recorder.model, self._title_of_key)
            recorder.changed.connect(self.diagram.changed)
            self.tabs.addTab(self.diagram, "Diagram")
            self.tabs.setTabToolTip(
                0, "Sequence diagram: taps, requests, acks and pushes (Ctrl+D: a bigger one)"
            )
        self.tabs.addTab(self.values, "Values")
        self.tabs.setTabToolTip(
            self.tabs.count() - 1, "Authoritative values: what the server holds, grouped by space"
        )
        self.tabs.addTab(self.devices, "Devices (99)")
        # Every tab shows its whole name: the tab bar sets the window's narrowest width
        # (measured with a two-digit device count) instead of hiding tabs behind arrows.
        self.tabs.setUsesScrollButtons(False)
        self.tabs.setMinimumWidth(self.tabs.tabBar().sizeHint().width())
        self.tabs.setTabText(self.tabs.count() - 1, "Devices")
        self.tabs.setTabToolTip(
            self.tabs.count() - 1, "Connected devices and the spaces they joined"
        )

        self.menu = WindowMenu(self, close_label="&Close window", device=False)
        self.menu.addDeviceRequested.connect(self.addDeviceRequested.emit)
        self.menu.quitRequested.connect(self.quitRequested.emit)
        self.menu.diagramRequested.connect(self.diagramRequested.emit)
        self.menu.helpRequested.connect(self.helpRequested.emit)

        layout = QVBoxLayout(self)
        layout.setMenuBar(self.menu.bar)
        layout.setContentsMargins(14, 8, 14, 14)
        layout.setSpacing(10)
        layout.addWidget(card)
        layout.addWidget(controls_card)
        layout.addWidget(self.tabs, 1)

        # -- wiring -----------------------------------------------------------------------
        self.latency.valueChanged.connect(self._on_latency)
        self.jitter.valueChanged.connect(self._on_jitter)
        self.push.toggled.connect(bridge.set_push_enabled)
        self.fail_button.clicked.connect(bridge.fail_next_request)
        self.restart_button.clicked.connect(bridge.request_restart)
        self.add_button.clicked.connect(self.addDeviceRequested.emit)
        self.like_button.clicked.connect(lambda: self._external(True))
        self.unlike_button.clicked.connect(lambda: self._external(False))
        bridge.stateChanged.connect(self._on_state)
        bridge.runningChanged.connect(self._on_running)
        bridge.settingsChanged.connect(self._on_settings)
        bridge.externalWritten.connect(self._on_external_written)
        bridge.failed.connect(self._on_failed)

        self._on_latency(self.latency.value())
        self._on_jitter(self.jitter.value())
        self._on_running(bridge.running)
        if bridge.state is not None:
            self._on_state(bridge.state)

    # -- widgets → bridge ---------------------------------------------------------------

    def _title_of_key(self, key: str) -> str:
        item_id = item_id_of(key)
        return self._titles.get(item_id, key) if item_id is not None else key

    def _on_latency(self, ms: int) -> None:
        if (snapped := snap(ms, SLIDER_STEP)) != ms:
            self.latency.setValue(snapped)
            return
        self.latency_value.setText(f"{ms} ms")
        self.bridge.set_latency(ms)

    def _on_jitter(self, ms: int) -> None:
        if (snapped := snap(ms, SLIDER_STEP)) != ms:
            self.jitter.setValue(snapped)
            return
        self.jitter_value.setText(f"{ms} ms" if ms else "off")
        self.bridge.set_push_jitter(ms)

    def _external(self, liked: bool) -> None:
        item_id = self.external_item.currentData()
        title = self.external_item.itemText(self.external_item.currentIndex())
        space = str(self.external_space.currentData())
        words = f"Writing {'♥' if liked else '♡'} {title}…"
        self.external_result.say(words, words)
        self.bridge.request_external_write(like_key(item_id), liked, space)

    # -- bridge → widgets ---------------------------------------------------------------

    def _on_state(self, state: ServerState) -> None:
        self.revision_tile.set_value(str(state.revision))
        self.requests_tile.set_value(str(state.requests_received))
        flight = state.requests_in_flight
        self.flight_tile.set_value(f"Saving {flight}…" if flight else "idle")
        self.devices_tile.set_value(str(len(state.devices)))
        pending = state.chaos.fail_next
        self.fail_button.setText(
            f"Fail next request ({pending})" if pending else "Fail next request"
        )
        self.values_model.set_state(state)
        self.devices_model.set_state(state)
        self.tabs.setTabText(self.tabs.indexOf(self.devices), f"Devices ({len(state.devices)})")

    def _on_running(self, running: bool) -> None:
        self.running.set("Running" if running else "Stopped", "good" if running else "bad")
        self.url_label.setText(self.bridge.url)
        self.restart_button.setEnabled(running)
        if not running:
            self.flight_tile.set_value("–")
            self.devices_tile.set_value("0")
            self.devices_model.clear()
            self.tabs.setTabText(self.tabs.indexOf(self.devices), "Devices (0)")

    def _on_settings(self) -> None:
        bridge = self.bridge
        for slider, value in ((self.latency, bridge.latency_ms), (self.jitter, bridge.jitter_ms)):
            if slider.value() != value:
                slider.setValue(value)
        if self.push.isChecked() != bridge.push_enabled:
            self.push.setChecked(bridge.push_enabled)

    def _on_external_written(self, key: str, revision: int, space: str) -> None:
        title = self._title_of_key(key)
        self.external_result.say(
            f"Another device wrote {title} in space {space!r}: stored at revision {revision}, "
            "pushed to every device of that space",
            f"{title}: rev {revision}, pushed",
        )

    def _on_failed(self, message: str) -> None:
        self.external_result.say(f"Could not do that: {message}", "Could not do that")
