"""The live sequence diagram in the running demo: fed, painted, paused, filtered, exported."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtTest import QTest

from app.sync import OptimisticApplied, PushApplied, RequestSent, ResponseApplied
from app.ui.demo import Demo
from app.ui.help import help_html
from app.ui.sequence import Arrow, Commit, Dot, SequenceModel
from app.ui.sequence_view import ARROW_COLORS, SequencePainter, SequencePanel
from app.ui.space_names import DEFAULT_SPACE
from tests.ui.conftest import Harness

A, B = 11, 22


def _panel(demo: Demo) -> SequencePanel:
    assert demo.server_window is not None
    assert demo.server_window.diagram is not None
    return demo.server_window.diagram


def _burst(harness: Harness, demo: Demo, item_id: str = "coffee", taps: int = 4) -> None:
    window = demo.windows[0]
    for _ in range(taps):
        harness.click_heart(window, item_id)
    harness.wait_synced()


def test_a_coalesced_burst_is_drawn_as_dots_grouped_under_two_requests(harness: Harness) -> None:
    """Four quick taps: four dots, a request and a follow-up carrying the other three."""
    demo = harness.start(devices=2, latency_ms=400)
    panel = _panel(demo)
    model = panel.view.model
    model.clear()
    _burst(harness, demo)
    harness.wait(lambda: len(model.dots("like/coffee")) == 4)
    device_a = demo.windows[0].bridge.device_id
    requests = [
        a
        for a in model.arrows("like/coffee")
        if a.kind in ("set", "follow-up") and a.device_id == device_a
    ]
    assert [r.kind for r in requests] == ["set", "follow-up"]
    assert [len(r.dots) for r in requests] == [1, 3]
    assert requests[1].follows is not None
    harness.wait(lambda: any(a.kind == "push" for a in model.arrows("like/coffee")))

    panel.view.grab()  # paints with the real painter
    drawn = {panel.view.model.elements[s.element_id].__class__ for s in panel.view.painter.shapes}
    assert drawn == {Arrow, Commit, Dot}


def test_selecting_an_arrow_highlights_the_same_write_on_every_lane(harness: Harness) -> None:
    """A click on a push lights up the request, its commit and its ack on the other lanes."""
    demo = harness.start(devices=2, latency_ms=200)
    panel = _panel(demo)
    view = panel.view
    view.model.clear()
    demo.show_sequence().hide()
    harness.click_heart(demo.windows[0], "moon")
    harness.wait_synced()
    harness.wait(lambda: any(a.kind == "push" for a in view.model.arrows()))
    view.resize(600, 500)
    view.refresh()
    view.grab()
    push = next(a for a in view.model.arrows() if a.kind == "push")
    shape = next(s for s in view.painter.shapes if s.element_id == push.id)
    assert shape.b is not None
    middle = QPointF((shape.a.x() + shape.b.x()) / 2, (shape.a.y() + shape.b.y()) / 2)
    offset = view.verticalScrollBar().value()
    point = QPoint(round(middle.x()), round(middle.y() - offset))

    assert "Device A wrote rev" in view.explain_at(QPointF(point))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)

    kinds = {
        getattr(view.model.elements[i], "kind", type(view.model.elements[i]).__name__)
        for i in view.painter.selected
    }
    assert {"set", "push", "Commit", "Dot"} <= kinds
    assert "Device A wrote rev" in panel.status.text()


def test_pause_freezes_the_picture_and_resume_shows_what_happened(harness: Harness) -> None:
    """Paused, new events are recorded but not drawn; on resume they appear."""
    demo = harness.start(devices=1, latency_ms=100)
    panel = _panel(demo)
    model = panel.view.model
    QTest.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    assert panel.view.paused
    assert panel.pause_button.text() == "Resume"
    harness.click_heart(demo.windows[0], "plant")
    harness.wait(lambda: bool(model.dots("like/plant")))
    dot = model.dots("like/plant")[0]
    panel.view.grab()
    assert dot.id not in {s.element_id for s in panel.view.painter.shapes}

    QTest.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    assert not panel.view.paused
    panel.view.grab()
    assert dot.id in {s.element_id for s in panel.view.painter.shapes}


def test_filter_to_one_item_draws_only_its_writes(harness: Harness) -> None:
    """The item filter leaves one key's dots and arrows; clear forgets everything."""
    demo = harness.start(devices=1, latency_ms=0)
    panel = _panel(demo)
    model = panel.view.model
    harness.click_heart(demo.windows[0], "book")
    harness.click_heart(demo.windows[0], "pizza")
    harness.wait_synced()
    harness.wait(lambda: {"like/book", "like/pizza"} <= set(model.keys()))
    panel.changed()
    panel.filter_to("like/book")
    assert panel.filter.currentText() == "Good book"
    panel.view.grab()
    keys = {model.elements[s.element_id].key for s in panel.view.painter.shapes}
    assert keys == {"like/book"}

    QTest.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    assert not list(model.items())


def test_the_diagram_exports_as_svg_and_png(harness: Harness, tmp_path: Path) -> None:
    """Export writes the whole diagram: an SVG document and a PNG image."""
    demo = harness.start(devices=2, latency_ms=0)
    panel = _panel(demo)
    harness.click_heart(demo.windows[0], "camera")
    harness.wait_synced()
    svg, png = tmp_path / "diagram.svg", tmp_path / "diagram.png"
    panel.export(svg)
    panel.export(png)
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text
    assert "Device A" in text
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_request_made_offline_is_drawn_waiting(harness: Harness) -> None:
    """A tap made offline is a dot; its request is drawn when it actually leaves."""
    demo = harness.start(devices=1, latency_ms=0)
    panel = _panel(demo)
    model = panel.view.model
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: demo.windows[0].bridge.status.state != "online")
    harness.click_heart(demo.windows[0], "lighthouse")
    assert model.dots("like/lighthouse")
    assert not [a for a in model.arrows("like/lighthouse") if a.kind == "set" and not a.queued]
    harness.run(demo.server.start())
    harness.wait_synced()
    harness.wait(lambda: any(a.kind == "ack" for a in model.arrows("like/lighthouse")))


def test_scrolled_back_the_view_stays_put_and_follows_again_at_the_bottom(
    harness: Harness,
) -> None:
    """Reading history is not interrupted by new events; back at the bottom it follows again."""
    demo = harness.start(devices=1, latency_ms=0)
    panel = _panel(demo)
    view = panel.view
    view.resize(500, 260)
    window = demo.windows[0]
    for _ in range(8):
        harness.click_heart(window, "book")
        harness.wait_synced()
    bar = view.verticalScrollBar()
    harness.wait(lambda: bar.maximum() > 100)
    bar.setValue(0)
    harness.click_heart(window, "moon")
    harness.wait_synced()
    view.refresh()
    assert bar.value() == 0

    bar.setValue(bar.maximum())
    before = bar.maximum()
    harness.click_heart(window, "moon")
    harness.wait_synced()
    harness.wait(lambda: bar.maximum() > before)
    view.refresh()
    assert bar.value() == bar.maximum()


def test_the_server_values_table_speaks_of_titles_not_keys(harness: Harness) -> None:
    """No internal keys in the server window: its tooltips and the diagram name the item."""
    demo = harness.start(devices=1, latency_ms=0)
    harness.click_heart(demo.windows[0], "bicycle")
    harness.wait(lambda: harness.server_value("bicycle") is not None)
    assert demo.server_window is not None
    values = demo.server_window.values_model
    harness.wait(lambda: values.rowCount() > 0)
    tip = str(values.index(0, 0).data(Qt.ItemDataRole.ToolTipRole))
    assert "like/" not in tip
    assert "Bike ride" in tip
    model = _panel(demo).view.model
    harness.wait(lambda: bool(model.commits("like/bicycle")))
    assert "Bike ride" in model.explain(model.commits("like/bicycle")[0])


def test_a_push_from_another_process_shows_its_value_and_a_capitalised_writer(
    harness: Harness, tmp_path: Path
) -> None:
    """Without the server's feed, a push's value comes from the device that applied it."""
    demo = harness.start(devices=1)
    assert demo.server is not None
    process = Demo(data_dir=tmp_path / "process", server_urls=[demo.server.url])
    harness.run(process.start(0))
    try:
        harness.run(process.open_device("Device B"))
        other = process.windows[0]
        harness.wait(lambda: other.bridge.status.state == "online")
        model = process.recorder.model

        def pushes() -> list[Arrow]:
            return [
                e
                for e in model.elements.values()
                if isinstance(e, Arrow) and e.kind == "push" and e.key == "like/coffee"
            ]

        harness.click_heart(demo.windows[0], "coffee")
        harness.wait(lambda: bool(pushes()))
        push = pushes()[0]
        assert push.value is True
        assert "♥" in push.label
        assert model.explain(push).startswith("Push · ")
        assert "Another device wrote rev" in model.explain(push)
    finally:
        harness.run(process.close())


def test_clustered_arrow_labels_never_overlap(qapp: object) -> None:
    """Pushes landing together get labels in free slots or none: no two labels overlap."""
    model = SequenceModel()
    model.add_lane(A, "Device A")
    model.add_lane(B, "Device B")
    for revision in range(1, 13):  # a catch-up burst: 12 pushes a few pixels apart
        model.feed(
            PushApplied(
                key=f"like/item-{revision}",
                device_id=A,
                local_revision=0,
                server_revision=revision,
                from_device_id=B,
                push_local_revision=revision,
            ),
            1.0 + revision * 0.001,
        )
    painter_of = SequencePainter(model)
    image = QImage(600, 400, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    painter_of.paint(painter, 600, 400, 0)
    painter.end()
    rects = painter_of.label_rects
    assert rects  # some labels are drawn
    for i, first in enumerate(rects):
        for second in rects[i + 1 :]:
            assert not first.intersects(second), (first, second)


def _busy_model() -> SequenceModel:
    """Eight writes of Device A close together: taps, requests, stored writes, pushes to
    Device B and acks, so labels have little room among the marks."""
    model = SequenceModel()
    model.add_lane(A, "Device A")
    model.add_lane(B, "Device B")
    for i in range(8):
        key, at = f"like/item-{i}", 1.0 + i * 0.04
        model.feed(
            OptimisticApplied(
                key=key,
                device_id=A,
                local_revision=1,
                server_revision=0,
                value=True,
                coalesced=False,
            ),
            at,
        )
        model.feed(
            RequestSent(
                key=key,
                device_id=A,
                local_revision=1,
                server_revision=0,
                value=True,
                follow_up=False,
            ),
            at,
        )
        model.server_writes([(key, True, i + 1, A, 1, DEFAULT_SPACE)], at + 0.05)
        model.feed(
            PushApplied(
                key=key,
                device_id=B,
                local_revision=0,
                server_revision=i + 1,
                from_device_id=A,
                push_local_revision=1,
            ),
            at + 0.07,
        )
        model.feed(
            ResponseApplied(
                key=key, device_id=A, local_revision=1, server_revision=i + 1, response=True
            ),
            at + 0.1,
        )
    return model


def _paint(
    model: SequenceModel, width: int = 600, height: int = 500
) -> tuple[SequencePainter, QImage]:
    drawer = SequencePainter(model)
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    drawer.paint(painter, width, height, 0)
    painter.end()
    return drawer, image


def test_no_arrow_label_covers_a_tap_or_a_stored_write(qapp: object) -> None:
    """Among dense writes, every label drawn keeps clear of tap dots, stored-write squares
    and their "rev N" tags."""
    drawer, _image = _paint(_busy_model())
    assert drawer.label_rects
    assert len(drawer.mark_rects) >= 8 * 3  # a dot, a square and a tag per write
    for label in drawer.label_rects:
        for mark in drawer.mark_rects:
            assert not label.intersects(mark), (label, mark)


def test_a_push_leaving_a_stored_write_passes_under_its_rev_tag(qapp: object) -> None:
    """Where a push arrow crosses the "rev N" beside its stored write, the tag is on top."""
    model = _busy_model()
    drawer, image = _paint(model)
    push = next(a for a in model.arrows() if a.kind == "push")
    shape = next(s for s in drawer.shapes if s.element_id == push.id)
    assert shape.b is not None
    # The tag sits right of the server lane, level with the stored write the push leaves.
    [tag] = [
        m
        for m in drawer.mark_rects
        if m.left() == shape.a.x() + 8 and m.top() < shape.a.y() < m.bottom()
    ]
    # The arrow's pixel a few steps into the tag, off the text's baseline area.
    x = tag.left() + 2
    t = (x - shape.a.x()) / (shape.b.x() - shape.a.x())
    y = shape.a.y() + t * (shape.b.y() - shape.a.y())
    assert tag.contains(QPointF(x, y))
    pixel = image.pixelColor(round(x), round(y))
    arrow_blue = ARROW_COLORS["push"]
    assert abs(pixel.blue() - arrow_blue.blue()) + abs(pixel.red() - arrow_blue.red()) > 60


def test_the_legend_shows_every_mark_the_diagram_draws(harness: Harness) -> None:
    """Taps, requests, stored writes, acks, pushes, own pushes, stale pushes, self-echoes,
    ignored acks and failures all have a legend entry, on screen and in Help."""
    demo = harness.start(devices=1)
    legend = _panel(demo).legend.text()
    names = ["tap", "set", "follow-up", "stored&nbsp;write", "ack", "push", "own&nbsp;push"]
    names += ["stale&nbsp;push", "self-echo", "ignored&nbsp;ack", "failure"]
    for name in names:
        assert f"&nbsp;{name}</span>" in legend, name
    assert "■" in legend
    assert "✕" in legend
    page = help_html()
    for name in ("stored write", "self-echo", "ignored ack", "failure", "own push"):
        assert name in page
