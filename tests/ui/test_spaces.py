"""Spaces in the demo: devices take turns between spaces, a write stays in its space,
and every window says which space it shows (real server, real widgets offscreen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from app.sync import SyncEvent
from app.ui.demo import DEVICE_WIDTH, Demo
from app.ui.device_window import DeviceWindow
from app.ui.help import help_html
from app.ui.screenshot import stage_scene
from app.ui.sequence import SERVER_LANE
from app.ui.sequence_view import HEADER, SequencePanel
from app.ui.server_values import ServerValuesModel, SpacesRole
from app.ui.space_colors import space_tone
from app.ui.space_names import DEFAULT_SPACE, check_space_name, parse_space_list, space_of
from syncserver import SyncServer
from tests.ui.conftest import Harness

SPACES = ("family", "work")


def _start_two_spaces(harness: Harness) -> tuple[Demo, DeviceWindow, DeviceWindow, DeviceWindow]:
    """Device A and C in family, Device B in work."""
    demo = harness.start(3, spaces=SPACES)
    a, b, c = demo.windows
    return demo, a, b, c


def _events_of(window: DeviceWindow, key: str) -> list[SyncEvent]:
    """Every core event of ``window`` about ``key`` from now on."""
    seen: list[SyncEvent] = []

    def record(event: Any) -> None:
        if str(event.key) == key:
            seen.append(event)

    window.bridge.syncEvent.connect(record)
    return seen


def test_devices_take_turns_between_the_spaces() -> None:
    """--spaces A,B with four devices: A, B, A, B (and one space: every device in it)."""
    assert [space_of(i, ("A", "B")) for i in range(4)] == ["A", "B", "A", "B"]
    assert [space_of(i, ("solo",)) for i in range(3)] == ["solo"] * 3
    assert space_of(5, ()) == DEFAULT_SPACE


def test_space_names_are_checked_like_the_server_does() -> None:
    """Empty and over-128 names are refused with the reason; lists need two distinct names."""
    assert check_space_name("x" * 128) == "x" * 128
    with pytest.raises(ValueError, match="empty"):
        check_space_name("")
    with pytest.raises(ValueError, match="129 characters"):
        check_space_name("x" * 129)
    assert parse_space_list("family, work") == ("family", "work")
    with pytest.raises(ValueError, match="twice"):
        parse_space_list("a,a")
    with pytest.raises(ValueError, match="two or more"):
        parse_space_list("alone")


def test_a_tap_in_one_space_reaches_its_devices_and_never_another_space(
    harness: Harness,
) -> None:
    """Device A taps in family: Device C (family) converges on it, Device B (work) never
    hears of it, even after a later write of its own has gone through."""
    demo, a, b, c = _start_two_spaces(harness)
    assert [w.bridge.space for w in demo.windows] == ["family", "work", "family"]
    in_work = _events_of(b, "like/coffee")
    harness.click_heart(a, "coffee")
    assert a.bridge.state.liked("coffee")
    harness.wait(lambda: c.bridge.state.liked("coffee"))
    harness.wait(lambda: harness.server_value("coffee", "family") == (True, 1))
    # A later write in work went through on B's connection: a push of family's write
    # (had the server sent one) would have come before its answer.
    harness.click_heart(b, "bicycle")
    harness.wait(lambda: harness.server_value("bicycle", "work") is not None)
    harness.wait_synced()
    assert not b.bridge.state.liked("coffee")
    assert in_work == []
    assert harness.server_value("coffee", "work") is None


def test_each_device_window_shows_its_space_in_its_colour(harness: Harness) -> None:
    """Title and chip name the space; windows of one space share a chip colour."""
    _demo, a, b, c = _start_two_spaces(harness)
    for window in (a, b):
        window.resize(DEVICE_WIDTH, window.height())  # the width it opens with on a desktop
    harness.wait(lambda: a.space_chip.text() == "family")
    harness.wait(lambda: b.space_chip.text() == "work")
    assert "family" in a.windowTitle()
    assert "work" in b.windowTitle()
    assert "family" in a.space_chip.toolTip()
    harness.wait(lambda: any("in space 'work'" in e.text for e in b.timeline_model.entries()))
    assert a.space_chip.styleSheet() == c.space_chip.styleSheet()
    assert a.space_chip.styleSheet() != b.space_chip.styleSheet()
    assert space_tone("family").accent != space_tone("work").accent


def test_a_long_space_name_is_elided_and_never_widens_the_window(harness: Harness) -> None:
    """A 128-character space: the chip elides (the tooltip has it all) and the window
    can still be as narrow as one in a one-letter space."""
    name = "a-very-long-space-name-" * 5 + "x" * 13
    assert len(name) == 128
    demo = harness.start(2, spaces=(name, "s"))
    long, short = demo.windows
    assert long.space_chip.text().endswith("…")
    assert long.space_chip.width() <= 160
    assert name in long.space_chip.toolTip()
    assert long.minimumSizeHint().width() <= short.minimumSizeHint().width()
    assert short.space_chip.text() == "s"


def test_the_server_window_lists_a_register_under_its_space(harness: Harness) -> None:
    """The values table groups registers by space and tags each row with its space."""
    demo, a, b, _c = _start_two_spaces(harness)
    harness.click_heart(a, "coffee")
    harness.click_heart(b, "bicycle")
    harness.wait(lambda: harness.server_value("coffee", "family") is not None)
    harness.wait(lambda: harness.server_value("bicycle", "work") is not None)
    assert demo.server_window is not None
    values = demo.server_window.values_model
    harness.wait(lambda: values.spaces() == ["family", "work"])
    assert [key for key, _v, _r in values.rows_of("family")] == ["like/coffee"]
    assert [key for key, _v, _r in values.rows_of("work")] == ["like/bicycle"]
    first = values.index(0, ServerValuesModel.SPACE)
    assert first.data() == "family"
    assert first.data(SpacesRole) == ["family"]
    tip = values.index(0, ServerValuesModel.ITEM).data(Qt.ItemDataRole.ToolTipRole)
    assert "in space 'family'" in str(tip)
    devices = demo.server_window.devices_model
    harness.wait(lambda: devices.rowCount() == 3)
    assert sorted(str(devices.index(row, 1).data()) for row in range(3)) == [
        "family",
        "family",
        "work",
    ]


def test_another_device_writes_in_the_space_chosen_in_the_server_window(
    harness: Harness,
) -> None:
    """The server window's space picker: a write in work reaches Device B only."""
    demo, a, b, c = _start_two_spaces(harness)
    window = demo.server_window
    assert window is not None
    assert window.external_space.isVisibleTo(window)
    window.external_space.setCurrentIndex(window.external_space.findData("work"))
    window.external_item.setCurrentIndex(window.external_item.findData("coffee"))
    in_family = _events_of(a, "like/coffee")
    QTest.mouseClick(window.like_button, Qt.MouseButton.LeftButton)
    harness.wait(lambda: b.bridge.state.liked("coffee"))
    harness.wait(lambda: "'work'" in window.external_result.full_text)
    harness.click_heart(a, "bicycle")  # a later write in family, answered
    harness.wait(lambda: harness.server_value("bicycle", "family") is not None)
    harness.wait_synced()
    assert not a.bridge.state.liked("coffee")
    assert not c.bridge.state.liked("coffee")
    assert in_family == []


def test_one_space_hides_the_server_windows_space_picker(harness: Harness) -> None:
    """With every device in one space, the other device writes there without asking."""
    demo = harness.start(1, spaces=("solo",))
    window = demo.server_window
    assert window is not None
    assert not window.external_space.isVisibleTo(window)
    window.external_item.setCurrentIndex(window.external_item.findData("coffee"))
    QTest.mouseClick(window.like_button, Qt.MouseButton.LeftButton)
    harness.wait(lambda: demo.windows[0].bridge.state.liked("coffee"))
    harness.wait(lambda: harness.server_value("coffee", "solo") is not None)


def test_the_diagram_names_each_lanes_space_and_pushes_stay_in_their_space(
    harness: Harness,
) -> None:
    """Lane headers carry the space; a family write has no arrow on work's lane."""
    demo, a, b, c = _start_two_spaces(harness)
    model = demo.recorder.model
    lanes = {lane.title: lane.space for lane in model.lanes if lane.id != SERVER_LANE}
    assert lanes == {"Device A": "family", "Device B": "work", "Device C": "family"}
    harness.click_heart(a, "coffee")
    harness.wait(lambda: any(arrow.kind == "push" for arrow in model.arrows("like/coffee")))
    harness.wait(lambda: bool(model.commits("like/coffee")))
    harness.wait_synced()
    assert {arrow.device_id for arrow in model.arrows("like/coffee")} == {
        a.bridge.device_id,
        c.bridge.device_id,
    }
    commit = model.commits("like/coffee")[0]
    assert commit.space == "family"
    assert "in space 'family'" in model.explain(commit)
    assert model.several_spaces
    panel = demo.server_window.diagram if demo.server_window else None
    assert isinstance(panel, SequencePanel)
    demo.server_window.tabs.setCurrentWidget(panel)  # type: ignore[union-attr]
    view = panel.view
    harness.wait(lambda: view.viewport().width() > 100)
    xs = view.painter.lane_x(view.viewport().width())
    tip = view.explain_at(QPointF(xs[b.bridge.device_id], HEADER / 2))
    assert "Device B" in tip
    assert "'work'" in tip


def test_the_help_explains_spaces() -> None:
    """F1 has a Spaces section naming --spaces."""
    html = help_html()
    assert "<h3>Spaces</h3>" in html
    assert "--spaces" in html


def test_the_screenshot_scene_writes_in_both_spaces(harness: Harness) -> None:
    """--spaces with --screenshot: the staged scene shows a write in each space, the
    other device's write landing in the first window's space."""
    demo, a, b, _c = _start_two_spaces(harness)
    harness.run(stage_scene(demo))
    assert demo.server_window is not None
    values = demo.server_window.values_model
    harness.wait(lambda: values.spaces() == ["family", "work"])
    harness.wait(lambda: len(values.rows_of("work")) == 1)
    assert [key for key, _v, _r in values.rows_of("work")] == ["like/rocket"]
    assert "like/book" in [key for key, _v, _r in values.rows_of("family")]  # another device's
    assert a.bridge.state.liked("coffee")
    assert not b.bridge.state.liked("coffee")


def test_an_added_device_takes_its_turn_and_a_reopened_one_its_space(harness: Harness) -> None:
    """Add device after A (family) and B (work) opens C in family; B closed and added
    again comes back in work with its likes."""
    demo = harness.start(2, spaces=SPACES)
    b = demo.window("Device B")
    harness.click_heart(b, "coffee")
    harness.wait(lambda: harness.server_value("coffee", "work") is not None)
    harness.wait_synced()
    demo.request_new_device()
    harness.wait(lambda: len(demo.windows) == 3)
    assert demo.window("Device C").bridge.space == "family"
    b.close()
    harness.wait(lambda: all(w.bridge.name != "Device B" for w in demo.windows))
    demo.request_new_device()  # the first free name: B, reopened once closed
    harness.wait(lambda: any(w.bridge.name == "Device B" for w in demo.windows))
    again = demo.window("Device B")
    assert again.bridge.space == "work"
    assert again.space_chip.text() == "work"
    assert again.bridge.state.liked("coffee")


def test_a_space_the_server_refuses_says_so_in_the_connection_pill(
    harness: Harness, tmp_path: Path
) -> None:
    """A server whose access table leaves the space out: the window shows why it is
    not online instead of waiting for a snapshot that never comes."""
    server = harness.run(
        SyncServer.start(
            port=0, db_path=tmp_path / "guarded.sqlite3", space_access={"default": None}
        )
    )
    demo = Demo(
        data_dir=tmp_path / "demo",
        server_urls=[f"ws://127.0.0.1:{server.port}"],
        spaces=("secret",),
    )
    harness.demo = demo
    try:
        harness.run(demo.start(1))
        window = demo.windows[0]
        harness.wait(lambda: "refused space 'secret'" in window.connection.full_text)
        assert window.bridge.status.state != "online"
        assert window.space_chip.space == "secret"
    finally:
        harness.close()
        harness.run(server.close())
