"""Where windows open: side by side when they fit, cascaded when not, clear of the
windows of other demo processes on the same screen, and never cut off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QWidget

from app.ui.demo import Demo
from app.ui.placement import TITLE_BAR, SharedPlaces, WindowWidth, tile
from tests.timeouts import TIMEOUT
from tests.ui.conftest import Harness

SCREEN = QRect(0, 0, 1600, 1000)


def _frame(window: QWidget) -> QRect:
    """The window's frame as a window manager draws it (title bar above the client)."""
    return QRect(window.pos(), window.size()).adjusted(0, 0, 0, TITLE_BAR)


def _assert_apart(frames: list[QRect]) -> None:
    for i, first in enumerate(frames):
        for second in frames[i + 1 :]:
            assert not first.intersects(second), (first, second)


def test_three_devices_and_the_server_open_side_by_side_on_a_1600_by_1000_screen(
    harness: Harness,
) -> None:
    """--spaces family,work --devices 3: four windows in a row, none over another, none
    narrower than its content needs."""
    demo = harness.start(3, spaces=("family", "work"))
    demo.arrange(area=SCREEN)
    windows = demo._all_windows()
    assert len(windows) == 4
    for window in windows:
        frame = _frame(window)
        assert SCREEN.contains(frame), (window.objectName(), frame)
        assert window.width() >= window.minimumSizeHint().width(), window.objectName()
    _assert_apart([_frame(window) for window in windows])


def test_windows_that_cannot_fit_cascade_each_on_a_corner_of_its_own() -> None:
    """Six 400 px windows on a 1366 px screen: three in the row, three cascaded, every
    corner (so every title bar) distinct, all on screen."""
    area = QRect(0, 0, 1366, 768)
    places = tile([WindowWidth(440, 400)] * 6, area, 700)
    row = [place for place in places if place.top() == places[0].top()]
    _assert_apart([p.adjusted(0, 0, 0, TITLE_BAR) for p in places[:3]])
    assert len(row) >= 3
    corners = [place.topLeft() for place in places]
    assert len(set(map(tuple, ((c.x(), c.y()) for c in corners)))) == 6
    for place in places:
        assert area.contains(place.adjusted(0, 0, 0, TITLE_BAR)), place


def test_tiling_fills_the_room_other_windows_leave() -> None:
    """With the left half taken, the windows go in the right half, shrunk to fit it."""
    taken = [QRect(0, 0, 800, 900)]
    places = tile([WindowWidth(440, 300)] * 2, SCREEN, 760, taken)
    for place in places:
        assert place.left() >= 800
        assert SCREEN.contains(place)
        assert place.width() >= 300
    _assert_apart([*taken, *places])


def test_a_second_process_in_the_same_data_folder_takes_the_next_device_name(
    harness: Harness, tmp_path: Path
) -> None:
    """python -m app --server URL --space work beside a demo with Device A and B opens
    Device C, not a second Device A."""
    demo = harness.start(2)
    assert demo.server is not None
    second = Demo(data_dir=tmp_path, server_urls=[demo.server.url], spaces=("work",))
    try:
        harness.run(second.start(1))
        assert [w.bridge.name for w in second.windows] == ["Device C"]
        assert second.windows[0].bridge.device_id not in {w.bridge.device_id for w in demo.windows}
    finally:
        harness.run(second.close())


def test_a_device_name_is_free_again_once_its_process_closed_it(
    harness: Harness, tmp_path: Path
) -> None:
    """Device C closed in one process can be opened by the next."""
    demo = harness.start(0)
    assert demo.server is not None
    for _ in range(2):
        process = Demo(data_dir=tmp_path, server_urls=[demo.server.url])
        try:
            harness.run(process.start(1))
            assert [w.bridge.name for w in process.windows] == ["Device A"]
        finally:
            harness.run(process.close())


def test_processes_sharing_a_screen_open_their_windows_apart(
    harness: Harness, tmp_path: Path
) -> None:
    """A process with Device A and the server, then two joining its server: on a
    1600 px screen each opens its window clear of the windows the others show."""
    places = tmp_path / "places"
    first = Demo(data_dir=tmp_path / "data", latency_ms=40, places_dir=places)
    joined: list[Demo] = []
    try:
        harness.run(first.start(1))
        first.arrange(area=SCREEN)
        assert first.server is not None
        for space in ("work", "home"):
            process = Demo(
                data_dir=tmp_path / "data",
                server_urls=[first.server.url],
                spaces=(space,),
                places_dir=places,
            )
            joined.append(process)
            harness.run(process.start(1))
            process.arrange(area=SCREEN)
        names = [w.bridge.name for d in (first, *joined) for w in d.windows]
        assert names == ["Device A", "Device B", "Device C"]
        frames = [_frame(w) for d in (first, *joined) for w in d._all_windows()]
        assert len(frames) == 4
        for frame in frames:
            assert SCREEN.contains(frame), frame
        _assert_apart(frames)
    finally:
        for process in reversed(joined):
            harness.run(process.close())
        harness.run(first.close())


def test_a_process_that_ended_leaves_no_windows_in_the_way(tmp_path: Path) -> None:
    """Places published by a process that is gone (its lock released) are ignored and
    cleaned up; a running one's are seen."""
    gone = SharedPlaces(tmp_path)
    gone.publish([QRect(0, 0, 400, 700)])
    running = SharedPlaces(tmp_path)
    running.publish([QRect(500, 0, 400, 700)])
    reader = SharedPlaces(tmp_path)
    assert sorted(r.left() for r in reader.others()) == [0, 500]
    gone.close()
    assert [r.left() for r in reader.others()] == [500]
    # A crash leaves the file but not the lock: the next reader drops it.
    crashed = tmp_path / "0123.json"
    crashed.write_text("[[900, 0, 400, 700]]", encoding="utf-8")
    assert [r.left() for r in reader.others()] == [500]
    assert not crashed.exists()
    running.close()
    reader.close()


def test_a_spaces_colour_is_the_same_in_every_process_whatever_the_order(tmp_path: Path) -> None:
    """Two processes (different hash seeds, spaces named in opposite orders) paint
    work and family alike, and the two differently."""
    script = (
        "import sys, tempfile\n"
        "from pathlib import Path\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from app.ui.demo import Demo\n"
        "from app.ui.space_colors import space_tone\n"
        "app = QApplication([])\n"
        "Demo(data_dir=Path(sys.argv[1]), spaces=sys.argv[2:])\n"
        "print(space_tone('work').accent.name(), space_tone('family').accent.name())\n"
    )
    seen = []
    for seed, order in (("1", ["work", "family"]), ("2", ["family", "work"])):
        env = {**os.environ, "PYTHONHASHSEED": seed, "QT_QPA_PLATFORM": "offscreen"}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), *order],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=TIMEOUT * 3,
        )
        seen.append(done.stdout.split())
    assert seen[0] == seen[1]
    assert seen[0][0] != seen[0][1]


def test_the_server_window_at_its_narrowest_shows_every_tab_and_a_whole_item_title(
    harness: Harness,
) -> None:
    """At its minimum width the tab bar needs no scroll arrows, "Morning coffee" fits its
    box, and the tab bar's corner holds no news."""
    demo = harness.start(3, spaces=("family", "work"))
    window = demo.server_window
    assert window is not None
    window.show()
    window.resize(window.minimumSizeHint().width(), window.height())
    harness.wait(lambda: window.tabs.tabText(2) == "Devices (3)")
    bar = window.tabs.tabBar()
    harness.wait(lambda: bar.tabRect(bar.count() - 1).right() < bar.width())
    assert all(bar.tabRect(i).width() >= bar.tabSizeHint(i).width() for i in range(bar.count()))
    assert window.tabs.cornerWidget() is None
    window.external_item.setCurrentIndex(window.external_item.findData("coffee"))
    line = window.external_item.lineEdit()
    assert line is not None
    assert line.text() == "Morning coffee"
    room = line.contentsRect().width() - line.textMargins().left() - line.textMargins().right()
    assert line.fontMetrics().horizontalAdvance("Morning coffee") < room


def test_the_space_chip_keeps_its_name_beside_the_offline_countdown(harness: Harness) -> None:
    """Server down: the device shows "Offline · retry in N s" and, at its narrowest, its
    chip still reads "family"."""
    demo = harness.start(1, spaces=("family", "work"))
    window = demo.windows[0]
    window.show()
    window.resize(window.minimumSizeHint().width(), window.height())
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: window.connection.full_text.startswith("Offline"))
    harness.wait(lambda: "retry in" in window.connection.text().casefold())
    assert window.space_chip.text() == "family"
    harness.run(demo.server.start())
