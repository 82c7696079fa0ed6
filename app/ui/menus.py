"""The menu bar every demo window carries, with its shortcuts shown.

File: Add device (Ctrl+N), Close window (Ctrl+W), Quit (Ctrl+Q).
View: Sequence diagram (Ctrl+D), Timeline (Ctrl+T, device windows), Reset stats,
Clear timeline. Help: Legend and help (F1).
Each window owns its :class:`WindowMenu`; the demo connects its signals.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenuBar, QWidget

__all__ = ["WindowMenu"]


class WindowMenu(QObject):
    """A menu bar for ``window``; ``device`` adds the per-device entries."""

    addDeviceRequested = Signal()
    quitRequested = Signal()
    diagramRequested = Signal()
    helpRequested = Signal()

    def __init__(
        self,
        window: QWidget,
        *,
        close_label: str,
        device: bool,
        toggle_timeline: Callable[[bool], None] | None = None,
        reset_stats: Callable[[], None] | None = None,
        clear_timeline: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(window)
        self.bar = QMenuBar(window)
        self.actions: dict[str, QAction] = {}
        file_menu = self.bar.addMenu("&File")
        self._add(
            file_menu,
            window,
            "add",
            "&Add device",
            QKeySequence("Ctrl+N"),
            self.addDeviceRequested.emit,
            "Open another device window (a new device, or a closed one with its state)",
        )
        self._add(
            file_menu,
            window,
            "close",
            close_label,
            QKeySequence("Ctrl+W"),
            window.close,
            "Close this window; a device's state stays saved for next time",
        )
        file_menu.addSeparator()
        self._add(
            file_menu,
            window,
            "quit",
            "&Quit",
            QKeySequence("Ctrl+Q"),
            self.quitRequested.emit,
            "Close every window and stop the demo",
        )
        view = self.bar.addMenu("&View")
        self._add(
            view,
            window,
            "diagram",
            "Sequence &diagram",
            QKeySequence("Ctrl+D"),
            self.diagramRequested.emit,
            "A live sequence diagram of taps, requests, acks and pushes on every device",
        )
        if device:
            timeline = self._add(
                view,
                window,
                "timeline",
                "&Timeline",
                QKeySequence("Ctrl+T"),
                None,
                "Show or hide this device's timeline",
            )
            timeline.setCheckable(True)
            timeline.setChecked(True)
            if toggle_timeline is not None:
                timeline.toggled.connect(toggle_timeline)
            view.addSeparator()
            if reset_stats is not None:
                self._add(
                    view,
                    window,
                    "reset",
                    "&Reset stats",
                    QKeySequence("Ctrl+R"),
                    reset_stats,
                    "Count taps and requests from zero again",
                )
            if clear_timeline is not None:
                self._add(
                    view,
                    window,
                    "clear",
                    "&Clear timeline",
                    QKeySequence("Ctrl+L"),
                    clear_timeline,
                    "Remove every entry from this device's timeline",
                )
        help_menu = self.bar.addMenu("&Help")
        self._add(
            help_menu,
            window,
            "help",
            "&Legend and help",
            QKeySequence("F1"),
            self.helpRequested.emit,
            "What the badges, revisions and diagram mean (F1)",
        )

    def _add(
        self,
        menu: object,
        window: QWidget,
        name: str,
        text: str,
        shortcut: QKeySequence | QKeySequence.StandardKey,
        slot: Callable[[], object] | None,
        tip: str,
    ) -> QAction:
        action = QAction(text, window)
        action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip)
        action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)  # type: ignore[attr-defined]
        window.addAction(action)  # shortcuts work wherever the focus is in the window
        self.actions[name] = action
        return action
