"""A device window against the real in-process server: taps, coalescing, keyboard, big lists."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.ui.item_model import ItemRole
from tests.ui.conftest import Harness


def test_click_shows_the_new_value_before_the_server_answers(harness: Harness) -> None:
    """With a 2 s round trip, the heart is filled the moment it is clicked, then confirmed."""
    demo = harness.start(devices=1, latency_ms=2000)
    window = demo.windows[0]
    row = window.model.row_of("coffee")

    harness.click_heart(window, "coffee")

    index = window.model.index(row)
    assert index.data(ItemRole.LIKED) is True
    assert index.data(ItemRole.STATUS).phase.value == "saving"
    assert harness.server_value("coffee") is None  # the server has not written it yet
    harness.wait(lambda: harness.server_value("coffee") is not None)
    harness.wait(lambda: index.data(ItemRole.STATUS).phase.value == "synced")
    assert index.data(ItemRole.LIKED) is True
    assert harness.server_value("coffee") == (True, index.data(ItemRole.REVISION))


def test_ten_rapid_clicks_send_at_most_two_requests(harness: Harness) -> None:
    """Ten clicks while a request is in flight coalesce into one follow-up at most."""
    demo = harness.start(devices=1, latency_ms=600)
    window = demo.windows[0]
    harness.wait_online()

    for _ in range(10):
        harness.click_heart(window, "bicycle")

    assert window.bridge.state.taps == 10
    harness.wait(lambda: harness.server_value("bicycle") == (False, 2))
    harness.wait_synced()
    harness.wait(lambda: harness.server_requests_from(window) == 2)
    assert window.bridge.state.requests == 2
    assert window.bridge.state.liked("bicycle") is False
    assert window.ratio_tile.value.text() == "5.0×"


def test_a_quick_second_click_counts_as_a_tap(harness: Harness) -> None:
    """A double-click on a heart is two taps, not one: rapid clicking is never lost."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    viewport, left = window.list.viewport(), Qt.MouseButton.LeftButton
    point = harness.heart_point(window, "book")
    # What a window system sends for two quick clicks: press, release, double-click, release.
    QTest.mouseClick(viewport, left, pos=point)
    QTest.mouseDClick(viewport, left, pos=point)
    QTest.mouseRelease(viewport, left, pos=point)
    assert window.bridge.state.taps == 2
    assert window.bridge.state.liked("book") is False
    harness.wait_synced()


def test_space_toggles_the_focused_item(harness: Harness) -> None:
    """Keyboard users like an item with space on the focused row."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    window.activateWindow()
    window.list.setFocus()
    window.list.setCurrentIndex(window.model.index(window.model.row_of("book")))

    QTest.keyClick(window.list, Qt.Key.Key_Space)

    assert window.bridge.state.liked("book") is True
    harness.wait(lambda: harness.server_value("book") is not None)


def test_a_thousand_items_build_and_scroll(harness: Harness) -> None:
    """1,000 rows are painted rows of one view: building, scrolling and a tap stay quick."""
    started = time.monotonic()
    demo = harness.start(devices=1, items=1000)
    window = demo.windows[0]
    assert window.model.rowCount() == 1000

    last = window.model.item_id(999)
    assert last is not None
    window.list.scrollToBottom()
    harness.click_heart(window, last)
    window.list.grab()  # forces a full paint of the visible rows
    assert window.bridge.state.liked(last) is True
    window.list.scrollToTop()
    window.list.grab()
    assert time.monotonic() - started < 10
    harness.wait(lambda: harness.server_value(last) is not None)


def test_the_timeline_tells_the_story_and_filters_by_item(harness: Harness) -> None:
    """A tap appears as tap, sent, ack and done; the filter keeps one item's entries."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    harness.click_heart(window, "coffee")
    harness.click_heart(window, "camera")
    harness.wait_synced()

    kinds = [entry.kind for entry in window.timeline_model.entries() if entry.item_id == "coffee"]
    assert kinds[::-1][:2] == ["tap", "sent"]
    assert "done" in kinds

    window.timeline.filter_to("camera")
    shown = window.timeline.visible_rows()
    camera_or_link = [e for e in window.timeline_model.entries() if e.item_id in ("camera", None)]
    assert shown == len(camera_or_link)
    assert shown < window.timeline_model.rowCount()


def test_reopening_a_device_restores_its_state(harness: Harness) -> None:
    """Closing Device A and adding a device again brings back Device A, likes and id."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    device_id = window.bridge.device_id
    harness.click_heart(window, "moon")
    harness.wait_synced()

    window.close()
    harness.wait(lambda: not demo.windows)
    with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
        demo.request_new_device()
    reopened = demo.windows[0]
    assert reopened.bridge.name == "Device A"
    assert reopened.bridge.device_id == device_id
    assert reopened.bridge.state.liked("moon") is True


def test_arrow_keys_in_the_filter_box_move_the_list_and_enter_toggles(harness: Harness) -> None:
    """In a 1,000-item list, Down/Up in the filter box move the current row; Enter likes it."""
    demo = harness.start(devices=1, items=1000)
    window = demo.windows[0]
    window.show()
    QTest.keyClicks(window.search, "coffee #")
    first = window.list.currentIndex().row()
    assert not window.list.isRowHidden(first)

    QTest.keyClick(window.search, Qt.Key.Key_Down)
    QTest.keyClick(window.search, Qt.Key.Key_Down)
    QTest.keyClick(window.search, Qt.Key.Key_Up)
    second = window.list.currentIndex()
    assert second.row() > first
    assert not window.list.isRowHidden(second.row())
    assert window.search.hasFocus() or not window.isActiveWindow()  # typing goes on
    assert window.search.text() == "coffee #"

    item_id = str(second.data(ItemRole.ID))
    QTest.keyClick(window.search, Qt.Key.Key_Return)
    assert window.bridge.state.liked(item_id) is True
    harness.wait(lambda: harness.server_value(item_id) is not None)

    window.list.setFocus()
    QTest.keyClick(window.list, Qt.Key.Key_Enter)
    assert window.bridge.state.liked(item_id) is False


def test_a_renewed_device_id_shows_in_the_header_and_names_its_writes(harness: Harness) -> None:
    """When the link takes a new id (its old one was claimed), the header shows it once the
    link reconnects, and the directory names the new id after this device."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    harness.wait(lambda: window.bridge.status.state == "online")
    window.bridge.session.cubit.device.change_device_id(4242)
    assert demo.server is not None
    harness.run(demo.server.restart(pause=0.1))
    harness.wait(lambda: window.id_label.text() == "id 4242")
    assert demo.directory.name(4242) == window.bridge.name
