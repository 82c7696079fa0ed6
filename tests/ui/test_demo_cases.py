"""The README's demo cases as a newcomer tries them: what each window shows, and when."""

from __future__ import annotations

import time

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.ui.demo import TITLE_BAR, _screen_area, keep_on_screen
from app.ui.device_window import DeviceWindow
from app.ui.item_model import FAILED_BADGE_SECONDS, ItemRole
from app.ui.timeline import TimelineEntry, TimelineModel, TimelineView
from tests.ui.conftest import Harness


def _badge(window: DeviceWindow, item_id: str) -> str:
    status = window.model.index(window.model.row_of(item_id)).data(ItemRole.STATUS)
    return "synced" if status is None else str(status.phase.value)


def test_an_injected_failure_answers_after_the_round_trip(harness: Harness) -> None:
    """Case 5: with 1 s latency the heart stays flipped for about that long, then flips back."""
    demo = harness.start(devices=1, latency_ms=1000)
    window = demo.windows[0]
    assert demo.server_window is not None
    QTest.mouseClick(demo.server_window.fail_button, Qt.MouseButton.LeftButton)

    tapped = time.monotonic()
    harness.click_heart(window, "coffee")
    assert window.bridge.state.liked("coffee") is True
    harness.wait(lambda: _badge(window, "coffee") == "failed")
    assert time.monotonic() - tapped >= 0.9  # the failure took the round trip too
    harness.wait(lambda: window.bridge.state.liked("coffee") is False)


def test_the_failed_badge_clears_after_a_while_and_on_reconnect(harness: Harness) -> None:
    """A failure shown once reads as synced after a few seconds (or a reconnect)."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    assert demo.server is not None
    demo.server.fail_next_request()
    harness.click_heart(window, "book")
    harness.wait(lambda: _badge(window, "book") == "failed")
    harness.wait(lambda: "book" not in window.bridge.state.intents)  # reloaded

    assert window.model.expire_failures(time.monotonic() + FAILED_BADGE_SECONDS + 0.1) == 1
    assert _badge(window, "book") == "synced"

    demo.server.fail_next_request()
    harness.click_heart(window, "moon")
    harness.wait(lambda: _badge(window, "moon") == "failed")
    harness.run(demo.server.restart(pause=0.2))
    harness.wait_online()
    harness.wait(lambda: _badge(window, "moon") == "synced")


def test_offline_counts_down_and_an_offline_tap_is_logged_when_it_leaves(
    harness: Harness,
) -> None:
    """Case 6: the pill counts down to the retry; a tap made offline says it waits, then goes."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: "retry in" in window.connection.full_text)

    harness.click_heart(window, "rocket")
    entries = window.timeline_model.entries()
    waiting = [e for e in entries if e.item_id == "rocket" and e.kind == "waiting"]
    assert waiting, [e.text for e in entries]
    assert "sent when the connection is back" in waiting[0].text
    assert not [e for e in entries if e.item_id == "rocket" and e.kind == "sent"]

    harness.run(demo.server.start())
    harness.wait_online()
    harness.wait(
        lambda: any(
            e.item_id == "rocket" and e.kind == "sent" for e in window.timeline_model.entries()
        )
    )
    harness.wait(lambda: harness.server_value("rocket") is not None)


def test_stats_count_since_a_reset_and_resends_apart(harness: Harness) -> None:
    """Reset stats starts from zero; a request that carries no tap never reads 0.0x."""
    demo = harness.start(devices=1, latency_ms=400)
    window = demo.windows[0]
    harness.click_heart(window, "plant")
    harness.wait_synced()
    assert window.ratio_tile.value.text() == "1.0×"

    QTest.mouseClick(window.reset_button, Qt.MouseButton.LeftButton)
    assert (window.taps_tile.value.text(), window.ratio_tile.value.text()) == ("0", "–")
    for _ in range(10):
        harness.click_heart(window, "music")
    harness.wait_synced()
    assert window.ratio_tile.value.text() == "5.0×"


def test_a_saved_tap_sent_by_a_rerun_never_reads_zero_taps_per_request(
    harness: Harness,
) -> None:
    """A choice saved offline and sent after reopening counts as a re-sent request, not 0.0x."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: window.bridge.status.state != "online")
    harness.click_heart(window, "headphones")  # saved as an intent, not sent
    window.close()
    harness.wait(lambda: not demo.windows)
    harness.run(demo.server.start())
    with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
        demo.request_new_device()
    reopened = demo.windows[0]
    harness.wait_online()
    harness.wait(lambda: harness.server_value("headphones") is not None)
    harness.wait_synced()

    assert reopened.bridge.stats.requests == 1
    assert reopened.bridge.stats.resends == 1
    assert reopened.ratio_tile.value.text() == "–"
    assert "1 of them re-sent" in reopened.requests_tile.toolTip()


def test_the_requests_tooltip_explains_re_sent_choices_before_any(harness: Harness) -> None:
    """The README says to hover *requests*: its tooltip states the re-sent choice rule."""
    demo = harness.start(devices=1)
    tip = demo.windows[0].requests_tile.toolTip()
    assert "re-sent choice" in tip
    assert "does not count in taps per request" in tip


def test_the_timeline_filter_shows_the_newest_entries(harness: Harness) -> None:
    """Changing the filter scrolls to the top, where the newest entries are."""
    demo = harness.start(devices=1, latency_ms=0)
    window = demo.windows[0]
    for _ in range(12):
        harness.click_heart(window, "coffee")
        harness.wait_synced()
    window.resize(440, 500)
    bar = window.timeline.list.verticalScrollBar()
    harness.wait(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    window.timeline.filter_to("coffee")
    assert bar.value() == 0


def test_own_writes_and_other_writers_read_plainly(harness: Harness) -> None:
    """A device's own write is "your write"; another window's is named; the server says titles."""
    demo = harness.start(devices=2)
    a, b = demo.windows
    harness.click_heart(a, "camera")
    harness.wait_synced()
    harness.wait(lambda: b.bridge.state.liked("camera"))
    own = [e.text for e in a.timeline_model.entries() if e.item_id == "camera"]
    assert any("Ack: the server stored your write at rev" in text for text in own)
    assert not any("Device A wrote" in text for text in own)
    other = [e.text for e in b.timeline_model.entries() if e.item_id == "camera"]
    assert any(text.startswith("Device A wrote this at rev") for text in other)

    server_window = demo.server_window
    assert server_window is not None
    server_window.external_item.setCurrentIndex(server_window.external_item.findData("pizza"))
    QTest.mouseClick(server_window.like_button, Qt.MouseButton.LeftButton)
    harness.wait(lambda: "revision" in server_window.external_result.full_text)
    assert "like/" not in server_window.external_result.full_text
    assert "Pizza" in server_window.external_result.full_text
    harness.wait(lambda: b.bridge.state.liked("pizza"))
    pushed = [e.text for e in b.timeline_model.entries() if e.item_id == "pizza"]
    assert any(text.startswith("Another device wrote") for text in pushed)
    assert not any("#" in text for text in pushed)


def test_the_server_window_keeps_its_width_and_snaps_its_sliders(harness: Harness) -> None:
    """ "Fail next request (1)" does not widen the window; latency lands on 50 ms steps."""
    demo = harness.start(devices=1)
    server_window = demo.server_window
    assert server_window is not None
    server_window.show()
    before = server_window.minimumSizeHint().width()
    QTest.mouseClick(server_window.fail_button, Qt.MouseButton.LeftButton)
    harness.wait(lambda: "(1)" in server_window.fail_button.text())
    assert server_window.minimumSizeHint().width() == before

    server_window.latency.setValue(1234)
    assert server_window.latency.value() == 1250
    assert demo.server is not None
    assert demo.server.latency_ms == 1250


def test_values_and_devices_tables_each_get_a_whole_tab(harness: Harness) -> None:
    """The diagram, the values and the connections are tabs, none squeezed under another."""
    demo = harness.start(devices=2)
    server_window = demo.server_window
    assert server_window is not None
    tabs = server_window.tabs
    names = [tabs.tabText(i) for i in range(tabs.count())]
    assert names[:2] == ["Diagram", "Values"]
    harness.wait(lambda: tabs.tabText(2) == "Devices (2)")


def test_a_reopened_device_opens_where_it_was(harness: Harness) -> None:
    """Closing Device A and adding it back puts its window at its old place, not at a corner."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    window.show()
    window.setGeometry(QRect(300, 120, 420, 600))
    place = window.geometry()
    window.close()
    harness.wait(lambda: not demo.windows)
    with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
        demo.request_new_device()
    reopened = demo.windows[0]
    harness.wait(reopened.isVisible)
    assert reopened.geometry() == place


def test_the_windows_fit_a_1366_by_768_screen_without_overlap(harness: Harness) -> None:
    """Two devices and the server side by side within 1366×768, none overlapping another."""
    demo = harness.start(devices=2)
    area = QRect(0, 0, 1366, 768)
    demo.arrange(area=area)
    windows = demo._all_windows()
    for window in windows:
        window.show()
    rects = [window.geometry() for window in windows]
    for window, rect in zip(windows, rects, strict=True):
        assert area.contains(rect), (window.objectName(), rect)
        hint = window.minimumSizeHint()
        assert rect.width() >= hint.width(), (window.objectName(), rect, hint)
        assert rect.height() >= hint.height(), (window.objectName(), rect, hint)
    for i, first in enumerate(rects):
        for second in rects[i + 1 :]:
            assert not first.intersects(second)


def test_the_item_filter_box_narrows_a_big_list(harness: Harness) -> None:
    """In a 1,000-item list, typing in the filter box leaves only the matching rows."""
    demo = harness.start(devices=1, items=1000)
    window = demo.windows[0]
    QTest.keyClicks(window.search, "coffee #1")
    shown = window.visible_items()
    assert 0 < shown < 1000
    assert all(
        "coffee #1" in str(window.model.index(row).data()).casefold()
        for row in range(1000)
        if not window.list.isRowHidden(row)
    )
    assert "of 1000 items" in window.items_hint.text()
    assert not window.list.isRowHidden(window.list.currentIndex().row())  # space hits a shown row
    window.search.clear()
    assert window.visible_items() == 1000


def test_long_timeline_sentences_wrap_instead_of_being_cut(qtbot: QtBot) -> None:
    """A long entry gets a taller row showing the whole sentence; short ones stay one line."""
    model = TimelineModel(lambda item_id: item_id)
    long_text = "A second copy of Device B's write at rev 12 arrived late " * 2
    model.add(TimelineEntry(time.time(), "coffee", "stale", "Short"))
    model.add(TimelineEntry(time.time(), "coffee", "stale", long_text))
    view = TimelineView(model)
    qtbot.addWidget(view)
    view.resize(360, 300)
    view.show()
    rows = view.list.model()
    long_row = view.list.visualRect(rows.index(0, 0))
    short_row = view.list.visualRect(rows.index(1, 0))
    assert long_row.height() > short_row.height()
    assert long_row.bottom() < short_row.top()  # rows never overlap


def test_every_window_keeps_its_title_bar_on_screen(harness: Harness) -> None:
    """A window placed partly above or below the screen is moved (and shrunk) back onto it."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    area = QRect(0, 0, 1366, 768)
    window.resize(440, 900)
    window.move(100, -40)
    keep_on_screen(window, area)
    assert window.pos().y() >= 0
    assert window.pos().y() + window.height() + TITLE_BAR <= 768
    sequence = demo.show_sequence()
    assert sequence.pos().y() >= 0
    assert sequence.pos().y() + sequence.height() + TITLE_BAR <= _screen_area().bottom() + 1


def test_a_reopened_device_comes_back_at_its_frame_position_without_drift(
    harness: Harness,
) -> None:
    """Closing and reopening a device twice puts it at the same frame position each time."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    window.show()
    window.resize(420, 400)
    window.move(200, 100)
    places = []
    for _ in range(2):
        window.close()
        harness.wait(lambda: not demo.windows)
        with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
            demo.request_new_device()
        window = demo.windows[0]
        harness.wait(window.isVisible)
        places.append(window.pos())
    assert places == [QPoint(200, 100), QPoint(200, 100)]


def test_another_devices_news_never_moves_the_tabs_and_clears_itself(harness: Harness) -> None:
    """The "Another device wrote …" line keeps its room shown or not, then clears."""
    demo = harness.start(devices=1)
    server_window = demo.server_window
    assert server_window is not None
    server_window.show()
    harness.wait(server_window.isVisible)
    tabs_at = server_window.tabs.geometry()
    server_window.external_result.set_clear_after(300)
    QTest.mouseClick(server_window.like_button, Qt.MouseButton.LeftButton)
    harness.wait(lambda: "revision" in server_window.external_result.full_text)
    assert server_window.tabs.geometry() == tabs_at
    assert server_window.external_result.toolTip() == server_window.external_result.full_text
    harness.wait(lambda: server_window.external_result.full_text == "")
    assert server_window.tabs.geometry() == tabs_at


def test_the_embedded_diagram_gets_room_at_1366_by_768(harness: Harness) -> None:
    """Arranged on a 1366×768 screen, the server window's diagram canvas is at least 250 px tall."""
    demo = harness.start(devices=2)
    demo.arrange(area=QRect(0, 0, 1366, 768))
    server_window = demo.server_window
    assert server_window is not None
    assert server_window.diagram is not None
    harness.wait(server_window.isVisible)
    harness.wait(lambda: server_window.diagram.view.height() >= 250)


def test_retry_cycles_fold_into_counted_timeline_entries(qtbot: QtBot) -> None:
    """Offline/Connecting repeated while retrying become two entries with a count."""
    model = TimelineModel(lambda item_id: item_id)
    model.add(TimelineEntry(1.0, "coffee", "tap", "Tapped"))
    model.add(TimelineEntry(2.0, None, "link", "Online"))
    for n in range(5):
        model.add(TimelineEntry(3.0 + n, None, "link", "Offline"))
        model.add(TimelineEntry(3.5 + n, None, "link", "Connecting…"))
    model.add(TimelineEntry(9.0, None, "link", "Online"))

    texts = [entry.words for entry in model.entries()]
    assert texts == ["Online", "Connecting… (×5)", "Offline (×5)", "Online", "Tapped"]
    assert model.entries()[1].at == 7.5  # the newest time of the folded ones
    assert model.index(1).data(TimelineModel.TextRole) == "Connecting… (×5)"


def test_the_another_device_choice_is_searchable_and_bounded(harness: Harness) -> None:
    """With 1,000 items, typing part of a title picks it; the popup shows a bounded list."""
    demo = harness.start(devices=1, items=1000)
    server_window = demo.server_window
    assert server_window is not None
    combo = server_window.external_item
    assert combo.count() == 1000
    assert combo.maxVisibleItems() <= 20
    completer = combo.completer()
    assert completer is not None
    completer.setCompletionPrefix("NIGHT #7")
    assert completer.completionCount() > 0
    assert all(
        "night #7" in str(completer.completionModel().index(row, 0).data()).casefold()
        for row in range(completer.completionCount())
    )
    line = combo.lineEdit()
    assert line is not None
    line.setText(str(completer.completionModel().index(0, 0).data()))
    line.editingFinished.emit()
    assert "night #7" in combo.currentText()
    assert "-7" in str(combo.currentData())
    line.setText("no such item")
    line.editingFinished.emit()
    assert combo.currentText() == combo.itemText(combo.currentIndex())


def test_a_confirmed_write_shows_one_ack_and_its_own_push_as_a_push(harness: Harness) -> None:
    """One tap: the writer's timeline has exactly one ACK entry; the push of its own write
    (every device gets it, the writer too) reads as a push, not a second ack."""
    demo = harness.start(devices=1, latency_ms=400)
    window = demo.windows[0]
    harness.click_heart(window, "guitar")
    harness.wait_synced()
    harness.wait(
        lambda: any(e.kind in ("own-push", "stale") for e in window.timeline_model.entries())
    )
    entries = [e for e in window.timeline_model.entries() if e.item_id == "guitar"]
    assert [e.kind for e in entries].count("ack") == 1
    pushes = [e.text for e in entries if e.kind in ("own-push", "stale")]
    assert len(pushes) == 1
    assert "push of your" in pushes[0].casefold()
