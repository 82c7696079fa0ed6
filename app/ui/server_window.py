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
    QVBoxLayout,
    QWidget,
)

from app.link import CatalogueItem
from syncserver import ServerState

from .server_bridge import ServerBridge
from .server_values import DevicesModel, ServerValuesModel
from .theme import icon_pixmap, mono_font
from .widgets import Pill, StatTile

__all__ = ["ServerWindow"]


def _slider(maximum: int, step: int, value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, maximum)
    slider.setSingleStep(step)
    slider.setPageStep(step * 5)
    slider.setValue(value)
    return slider


def _table(model: ServerValuesModel | DevicesModel) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.verticalHeader().hide()
    table.setShowGrid(False)
    table.setAlternatingRowColors(True)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.verticalHeader().setDefaultSectionSize(28)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    return table


class ServerWindow(QWidget):
    """Drawn from a :class:`ServerBridge`; ``addDeviceRequested`` asks the owner for a window."""

    addDeviceRequested = Signal()

    def __init__(
        self,
        bridge: ServerBridge,
        catalogue: Sequence[CatalogueItem],
        device_name: Callable[[int | None], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("serverWindow")
        self.setWindowTitle("Sync server — optisync")
        self.resize(480, 760)

        # -- header ---------------------------------------------------------------------
        logo = QLabel()
        logo.setPixmap(icon_pixmap("app-icon.svg", 40))
        title = QLabel("Sync server")
        title.setObjectName("windowTitle")
        self.url_label = QLabel(bridge.url)
        self.url_label.setObjectName("subtle")
        self.url_label.setFont(mono_font(8.5))
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.running = Pill()
        names = QVBoxLayout()
        names.setSpacing(1)
        names.addWidget(title)
        names.addWidget(self.url_label)
        header = QHBoxLayout()
        header.setSpacing(12)
        header.addWidget(logo)
        header.addLayout(names, 1)
        header.addWidget(self.running, 0, Qt.AlignmentFlag.AlignVCenter)

        self.revision_tile = StatTile("revision")
        self.requests_tile = StatTile("requests received")
        self.flight_tile = StatTile("in flight")
        self.devices_tile = StatTile("devices")
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
        self.latency = _slider(3000, 50, bridge.latency_ms)
        self.latency.setAccessibleName("Round-trip latency")
        self.latency_value = QLabel()
        self.latency_value.setObjectName("controlValue")
        self.jitter = _slider(2000, 50, bridge.jitter_ms)
        self.jitter.setAccessibleName("Push jitter")
        self.jitter_value = QLabel()
        self.jitter_value.setObjectName("controlValue")
        self.push = QCheckBox("Push every write to every device")
        self.push.setChecked(bridge.push_enabled)
        self.fail_button = QPushButton("Fail next request")
        self.fail_button.setObjectName("dangerButton")
        self.restart_button = QPushButton("Restart server")
        self.add_button = QPushButton("Add device")
        self.add_button.setObjectName("primaryButton")
        self.add_button.setToolTip("Open another device window (Ctrl+N in any device window)")

        controls = QGridLayout()
        controls.setHorizontalSpacing(10)
        controls.setVerticalSpacing(8)
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
        buttons.addWidget(self.add_button)

        # -- change from another device ---------------------------------------------------
        self.external_item = QComboBox()
        self.external_item.setAccessibleName("Item to change from another device")
        for item in catalogue:
            self.external_item.addItem(QIcon(icon_pixmap(item.icon, 20)), item.title, item.id)
        self.like_button = QPushButton("♥ Like")
        self.unlike_button = QPushButton("♡ Unlike")
        self.external_result = QLabel("")
        self.external_result.setObjectName("subtle")
        external = QHBoxLayout()
        external.setSpacing(8)
        external.addWidget(self.external_item, 1)
        external.addWidget(self.like_button)
        external.addWidget(self.unlike_button)

        controls_card = QFrame()
        controls_card.setObjectName("card")
        controls_layout = QVBoxLayout(controls_card)
        controls_layout.setContentsMargins(14, 12, 14, 12)
        controls_layout.setSpacing(10)
        controls_title = QLabel("Demo controls")
        controls_title.setObjectName("sectionTitle")
        controls_layout.addWidget(controls_title)
        controls_layout.addLayout(controls)
        controls_layout.addLayout(buttons)
        external_title = QLabel("Change from another device")
        external_title.setObjectName("sectionTitle")
        controls_layout.addWidget(external_title)
        controls_layout.addLayout(external)
        controls_layout.addWidget(self.external_result)

        # -- tables -----------------------------------------------------------------------
        self.values_model = ServerValuesModel(
            {item.id: (item.title, item.icon) for item in catalogue}, self
        )
        self.values = _table(self.values_model)
        self.devices_model = DevicesModel(device_name, self)
        self.devices = _table(self.devices_model)
        self.devices.setMaximumHeight(130)
        values_title = QLabel("Authoritative values")
        values_title.setObjectName("sectionTitle")
        devices_title = QLabel("Connected devices")
        devices_title.setObjectName("sectionTitle")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 14, 14, 14)
        layout.setSpacing(10)
        layout.addWidget(card)
        layout.addWidget(controls_card)
        layout.addWidget(values_title)
        layout.addWidget(self.values, 1)
        layout.addWidget(devices_title)
        layout.addWidget(self.devices)

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

    def _on_latency(self, ms: int) -> None:
        self.latency_value.setText(f"{ms} ms")
        self.bridge.set_latency(ms)

    def _on_jitter(self, ms: int) -> None:
        self.jitter_value.setText(f"{ms} ms" if ms else "off")
        self.bridge.set_push_jitter(ms)

    def _external(self, liked: bool) -> None:
        item_id = self.external_item.currentData()
        self.external_result.setText(
            f"Writing {'♥' if liked else '♡'} {self.external_item.currentText()}…"
        )
        self.bridge.request_external_write(f"like/{item_id}", liked)

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

    def _on_running(self, running: bool) -> None:
        self.running.set("Running" if running else "Stopped", "good" if running else "bad")
        self.url_label.setText(self.bridge.url)
        self.restart_button.setEnabled(running)
        if not running:
            self.flight_tile.set_value("–")
            self.devices_tile.set_value("0")
            self.devices_model.clear()

    def _on_settings(self) -> None:
        bridge = self.bridge
        for slider, value in ((self.latency, bridge.latency_ms), (self.jitter, bridge.jitter_ms)):
            if slider.value() != value:
                slider.setValue(value)
        if self.push.isChecked() != bridge.push_enabled:
            self.push.setChecked(bridge.push_enabled)

    def _on_external_written(self, key: str, revision: int) -> None:
        self.external_result.setText(f"Another device wrote {key} at revision {revision}")

    def _on_failed(self, message: str) -> None:
        self.external_result.setText(f"Could not do that: {message}")
