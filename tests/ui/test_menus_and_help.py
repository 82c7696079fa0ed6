"""Menus with their shortcuts, the F1 help, and a tooltip on everything a newcomer can point at."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractButton, QComboBox, QLineEdit, QSlider, QWidget

from app.ui.item_delegate import ItemDelegate
from app.ui.widgets import StatTile
from tests.ui.conftest import Harness


def _menu(window: QWidget) -> dict[str, list[tuple[str, str]]]:
    """Menu title -> [(entry, shortcut shown)]."""
    bar = window.menu.bar  # type: ignore[attr-defined]
    found: dict[str, list[tuple[str, str]]] = {}
    for action in bar.actions():
        menu = action.menu()
        entries = [
            (entry.text().replace("&", ""), entry.shortcut().toString())
            for entry in menu.actions()
            if not entry.isSeparator()
        ]
        found[action.text().replace("&", "")] = entries
    return found


def test_every_window_has_file_view_and_help_with_shortcuts(harness: Harness) -> None:
    """File: Add device, Close, Quit; View: diagram (and timeline); Help; shortcuts shown."""
    demo = harness.start(devices=1)
    device_menu = _menu(demo.windows[0])
    assert list(device_menu) == ["File", "View", "Help"]
    assert device_menu["File"] == [
        ("Add device", "Ctrl+N"),
        ("Close device", "Ctrl+W"),
        ("Quit", "Ctrl+Q"),
    ]
    view = dict(device_menu["View"])
    assert view["Sequence diagram"] == "Ctrl+D"
    assert view["Timeline"] == "Ctrl+T"
    assert "Reset stats" in view
    assert "Clear timeline" in view
    assert device_menu["Help"] == [("Legend and help", "F1")]
    assert demo.server_window is not None
    server_menu = _menu(demo.server_window)
    assert ("Quit", "Ctrl+Q") in server_menu["File"]
    assert ("Sequence diagram", "Ctrl+D") in server_menu["View"]


def test_menu_entries_do_what_they_say(harness: Harness) -> None:
    """Add device opens one, diagram and help open, the timeline hides, Close closes it."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    actions: dict[str, QAction] = window.menu.actions
    with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
        actions["add"].trigger()
    assert len(demo.windows) == 2

    actions["diagram"].trigger()
    assert demo.sequence_window is not None
    assert demo.sequence_window.isVisible()
    actions["help"].trigger()
    assert demo.help_dialog is not None
    assert demo.help_dialog.isVisible()
    assert "local rev" in demo.help_dialog.browser.toPlainText()
    assert "Follow-up queued" in demo.help_dialog.browser.toPlainText()

    window.show()
    actions["timeline"].trigger()
    assert not window.timeline.isVisible()
    harness.click_heart(window, "coffee")
    harness.wait_synced()
    actions["clear"].trigger()
    assert window.timeline_model.rowCount() == 0
    actions["reset"].trigger()
    assert window.taps_tile.value.text() == "0"

    actions["close"].trigger()
    harness.wait(lambda: window not in demo.windows)


def test_quit_closes_every_window(harness: Harness) -> None:
    """File → Quit closes the devices, the server window and the extra windows."""
    demo = harness.start(devices=2)
    for window in demo._all_windows():
        window.show()
    demo.show_sequence()
    demo.windows[0].menu.actions["quit"].trigger()
    harness.wait(lambda: not demo.windows)
    assert demo.server_window is not None
    assert not demo.server_window.isVisible()
    assert demo.sequence_window is not None
    assert not demo.sequence_window.isVisible()


def test_every_control_badge_and_stat_has_a_tooltip(harness: Harness) -> None:
    """Buttons, sliders, boxes, stat tiles and pills all say what they are for."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    assert demo.server_window is not None
    missing = []
    for top in (window, demo.server_window):
        for kind in (QAbstractButton, QSlider, QComboBox, QLineEdit, StatTile):
            for widget in top.findChildren(kind):
                parent = widget.parent()
                if parent is not None and parent.inherits("QTabBar"):
                    continue  # the tab bar's scroll arrows
                if not widget.toolTip() and widget.isVisibleTo(top):
                    missing.append(f"{type(widget).__name__} {widget.objectName()}")
    assert not missing
    assert "retry" in window.connection.toolTip() or "Connected" in window.connection.toolTip()

    delegate = window.list.delegate
    assert isinstance(delegate, ItemDelegate)
    index = window.model.index(0)
    row = window.list.visualRect(index)
    heart = ItemDelegate.heart_rect(row).center()
    assert delegate.region_at(row, heart, index) == "heart"
    assert "Like" in delegate.tooltip("heart", index)
    badge = QPoint(row.left() + 14 + 36 + 12 + 10, row.bottom() - 15)
    assert delegate.region_at(row, badge, index) == "badge"
    assert "No device has written" in delegate.tooltip("badge", index)
    assert "Server revision" in delegate.tooltip("revision", index)


def test_the_help_dialog_wears_the_apps_theme(harness: Harness) -> None:
    """F1 opens a help window on the app's background with its text on a white card."""
    demo = harness.start(devices=1)
    dialog = demo.show_help()
    harness.wait(dialog.isVisible)
    image = dialog.grab().toImage()
    assert image.pixelColor(3, 3).name() == "#f4f5f8"
    card = dialog.browser.geometry().center()
    assert image.pixelColor(card.x(), dialog.browser.geometry().top() + 4).name() == "#ffffff"
