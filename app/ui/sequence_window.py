"""The sequence diagram in a window of its own (View → Sequence diagram, Ctrl+D)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .menus import WindowMenu
from .sequence_feed import SequenceRecorder
from .sequence_view import SequencePanel

__all__ = ["SequenceWindow"]


class SequenceWindow(QWidget):
    """A big view of the demo's one diagram (the server window shows the same one)."""

    newDeviceRequested = Signal()
    quitRequested = Signal()
    helpRequested = Signal()

    def __init__(
        self,
        recorder: SequenceRecorder,
        title_of: Callable[[str], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sequenceWindow")
        self.setWindowTitle("Sequence diagram — optisync")
        self.resize(760, 700)
        self.panel = SequencePanel(recorder.model, title_of)
        recorder.changed.connect(self.panel.changed)
        title = QLabel("Sequence diagram")
        title.setObjectName("windowTitle")
        hint = QLabel(
            "One lane per device and one for the server; time flows down. "
            "Hover anything for what it means; click a write to follow it across lanes."
        )
        hint.setObjectName("subtle")
        hint.setWordWrap(True)
        self.menu = WindowMenu(self, close_label="&Close window", device=False)
        self.menu.addDeviceRequested.connect(self.newDeviceRequested.emit)
        self.menu.quitRequested.connect(self.quitRequested.emit)
        self.menu.diagramRequested.connect(self.raise_)
        self.menu.helpRequested.connect(self.helpRequested.emit)
        layout = QVBoxLayout(self)
        layout.setMenuBar(self.menu.bar)
        layout.setContentsMargins(14, 8, 14, 14)
        layout.setSpacing(8)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.panel, 1)
        self.panel.changed()
