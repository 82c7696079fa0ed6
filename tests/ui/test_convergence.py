"""Several windows and the server window: convergence, pushes, failures and restarts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import Harness


def _liked(harness: Harness) -> list[dict[str, bool]]:
    assert harness.demo is not None
    return [
        {item.id: item.liked for item in window.bridge.state.items}
        for window in harness.demo.windows
    ]


def test_two_windows_converge_after_clicks_in_both(harness: Harness) -> None:
    """Clicks in both windows, some on the same items, end with one shared truth."""
    demo = harness.start(devices=2, latency_ms=200)
    a, b = demo.windows
    for item_id in ("coffee", "rocket", "music"):
        harness.click_heart(a, item_id)
    for item_id in ("rocket", "music", "music", "plant"):
        harness.click_heart(b, item_id)

    harness.wait_synced()
    harness.wait(lambda: _liked(harness)[0] == _liked(harness)[1])
    server = {
        item_id: found[0]
        for item_id in ("coffee", "rocket", "music", "plant")
        if (found := harness.server_value(item_id)) is not None
    }
    assert {item_id: _liked(harness)[0][item_id] for item_id in server} == server
    assert server["coffee"] is True
    assert server["plant"] is True


def test_change_from_another_device_reaches_every_window(harness: Harness) -> None:
    """The server window's Like writes as an outside device; every window shows it."""
    demo = harness.start(devices=2)
    server_window = demo.server_window
    assert server_window is not None
    server_window.external_item.setCurrentIndex(server_window.external_item.findData("pizza"))

    QTest.mouseClick(server_window.like_button, Qt.MouseButton.LeftButton)

    harness.wait(lambda: all(window.bridge.state.liked("pizza") for window in demo.windows))
    harness.wait(lambda: "revision" in server_window.external_result.full_text)
    harness.wait(lambda: harness.server_value("pizza") is not None)


def test_fail_next_request_ends_with_the_servers_value(harness: Harness) -> None:
    """A refused write is reloaded: the window shows the server's value and says it failed."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    server_window = demo.server_window
    assert server_window is not None
    assert demo.server is not None
    harness.run(demo.server.set_from_another_device("like/guitar", True))
    harness.wait(lambda: window.bridge.state.liked("guitar"))

    QTest.mouseClick(server_window.fail_button, Qt.MouseButton.LeftButton)
    harness.click_heart(window, "guitar")
    assert window.bridge.state.liked("guitar") is False  # shown at once, then refused

    harness.wait(lambda: window.bridge.state.status("guitar").phase.value == "failed")
    harness.wait(lambda: window.bridge.state.liked("guitar") is True)
    harness.wait(
        lambda: harness.server_value("guitar") == (True, window.bridge.state.revision("guitar"))
    )


def test_server_restart_shows_offline_then_reconnects_and_resyncs(harness: Harness) -> None:
    """Stopping the server turns every window offline; a tap made meanwhile arrives after."""
    demo = harness.start(devices=2)
    a, b = demo.windows
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: all(w.bridge.status.state != "online" for w in demo.windows))
    harness.wait(lambda: a.connection.full_text.startswith(("Offline", "Connecting")))
    assert demo.server_window is not None
    assert demo.server_window.devices_model.rowCount() == 0  # no stale connections listed

    harness.click_heart(a, "lighthouse")  # shown now, sent once the server is back
    assert a.bridge.state.liked("lighthouse") is True
    harness.run(demo.server.start())

    harness.wait_online()
    harness.wait(lambda: b.bridge.state.liked("lighthouse"))
    harness.wait_synced()
    assert a.connection.full_text == "Online"
    harness.wait(lambda: harness.server_value("lighthouse") is not None)
    harness.wait(lambda: demo.server_window.devices_model.rowCount() == 2)


def test_add_device_opens_another_window(harness: Harness) -> None:
    """The server window's Add device opens Device C, which catches up at once."""
    demo = harness.start(devices=2)
    harness.click_heart(demo.windows[0], "umbrella")
    harness.wait_synced()
    assert demo.server_window is not None

    with harness.qtbot.waitSignal(demo.deviceOpened, timeout=10_000):
        QTest.mouseClick(demo.server_window.add_button, Qt.MouseButton.LeftButton)

    third = demo.windows[2]
    assert third.bridge.name == "Device C"
    harness.wait(lambda: third.bridge.state.liked("umbrella"))


def test_a_long_offline_badge_never_widens_the_device_window(harness: Harness) -> None:
    """Offline with a reason, the pill is elided: the window's minimum width stays put."""
    demo = harness.start(devices=1)
    window = demo.windows[0]
    window.show()
    harness.wait_online()
    online_minimum = window.minimumSizeHint().width()
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: window.bridge.status.reason is not None)
    harness.wait(lambda: "·" in window.connection.full_text)
    assert window.minimumSizeHint().width() == online_minimum
    reason = window.bridge.status.reason
    assert reason is not None
    assert reason in window.connection.toolTip()
    window.resize(window.minimumSizeHint().width(), window.height())
    harness.wait(lambda: window.connection.text() != window.connection.full_text)
    harness.run(demo.server.start())
    harness.wait_online()
    assert window.minimumSizeHint().width() == online_minimum
