"""Click to repaint: a heart click in the device window until its row is painted.

    python -m tests.perf.repaint [--quick]

The real desktop pieces, offscreen (``QT_QPA_PLATFORM=offscreen``): one
:class:`DeviceBridge` over a ``DeviceSession`` and its :class:`DeviceWindow`
(1,000 items, the demo's theme), an in-process sync server with 2 s latency
(the write-delay demo control), all on one qasync loop as in ``python -m app``.

Each sample clicks the heart of a visible row with ``QTest.mouseClick`` (so
the mouse event, the delegate, the bridge, the cubit, the model and the view
all take part) and stops the clock once the viewport's paint event covering
that row has been handled. The paint is timed by an event filter on the
viewport that lets the paint happen inside the filter and stamps the time
after it. Requests stay in flight for 2 s, so later clicks coalesce and acks
and pushes arrive while clicking goes on, as they would for a user.

The ceiling is the same repaint without sync: ``dataChanged`` for the same row,
emitted by hand, until its paint is handled; samples alternate with the
clicks so noise hits both alike. Target: click p99 within one 60 Hz frame.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import qasync
from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QMessageLogContext,
    QObject,
    QRect,
    Qt,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QPaintEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from app.link import load_catalogue
from app.ui.bridge import DeviceBridge
from app.ui.demo import extend_catalogue
from app.ui.device_window import DeviceWindow
from app.ui.directory import DeviceDirectory
from app.ui.item_delegate import ItemDelegate
from app.ui.item_model import ItemRole
from app.ui.theme import apply_theme
from tests.perf.devices import in_process_server, percentile, wait_until
from tests.perf.report import Row, print_table

__all__ = ["run"]

ITEMS = 1000
LATENCY = 2.0
FRAME_MS = 1000 / 60
GAP = 0.01
"""Seconds between samples: the loop runs freely (acks, pushes, timers) in between."""


def _quiet(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Drop the offscreen platform's notes about window hints; print anything else."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


class PaintProbe(QObject):
    """Resolves a future once a paint of the viewport covering ``target`` is done."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self._viewport = viewport
        self._inside = False
        self.target: QRect | None = None
        self.painted: asyncio.Future[float] | None = None
        viewport.installEventFilter(self)

    def expect(self, target: QRect) -> asyncio.Future[float]:
        self.target = target
        self.painted = asyncio.get_running_loop().create_future()
        return self.painted

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            self._inside
            or event.type() != QEvent.Type.Paint
            or self.target is None
            or self.painted is None
            or self.painted.done()
        ):
            return False
        assert isinstance(event, QPaintEvent)
        if not event.region().intersects(self.target):
            return False
        # Let the view paint now, inside this paint cycle, then stamp the time.
        self._inside = True
        try:
            QCoreApplication.sendEvent(watched, event)
        finally:
            self._inside = False
        self.painted.set_result(time.perf_counter())
        return True


async def _measure(app: QApplication, samples: int) -> tuple[list[float], list[float]]:
    catalogue = extend_catalogue(load_catalogue(), ITEMS)
    with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
        async with in_process_server(LATENCY) as server:
            bridge = await DeviceBridge.open(
                "Device A", [server.url], DeviceDirectory(), data_dir=Path(tmp), catalogue=catalogue
            )
            window = DeviceWindow(bridge)
            try:
                window.show()
                await wait_until(lambda: bridge.status.state == "online", limit=30)
                return await _sample(window, samples)
            finally:
                window.close()
                window.deleteLater()
                await bridge.close()


async def _sample(window: DeviceWindow, samples: int) -> tuple[list[float], list[float]]:
    view = window.list
    viewport = view.viewport()
    model = window.model
    probe = PaintProbe(viewport)
    await asyncio.sleep(0.2)  # the first layout and paint
    visible = [
        row
        for row in range(model.rowCount())
        if viewport.rect().contains(view.visualRect(model.index(row)))
    ]
    if not visible:
        raise RuntimeError("no row of the item list is visible")
    clicks: list[float] = []
    by_hand: list[float] = []
    for n in range(samples):
        index = model.index(visible[n % len(visible)])
        rect = view.visualRect(index)
        liked = bool(index.data(ItemRole.LIKED))
        painted = probe.expect(rect)
        started = time.perf_counter()
        QTest.mouseClick(
            viewport,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            ItemDelegate.heart_rect(rect).center(),
        )
        async with asyncio.timeout(5):
            clicks.append(await painted - started)
        if bool(index.data(ItemRole.LIKED)) == liked:
            raise AssertionError(f"row {index.row()} did not change on its heart click")
        await asyncio.sleep(GAP)

        painted = probe.expect(rect)
        started = time.perf_counter()
        model.dataChanged.emit(index, index)
        async with asyncio.timeout(5):
            by_hand.append(await painted - started)
        await asyncio.sleep(GAP)
    return clicks, by_hand


def run(quick: bool = False) -> list[Row]:
    """Click hearts, time each repaint; p50 and p99 against the hand-made repaint."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app)
    app.setQuitOnLastWindowClosed(False)  # closing the window must not stop the loop
    previous = qInstallMessageHandler(_quiet)
    samples = 60 if quick else 300
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        try:
            clicks, by_hand = runner.run(_measure(app, samples))
        finally:
            qInstallMessageHandler(previous)
    ms = 1000
    p99 = percentile(clicks, 99) * ms
    return [
        Row(
            "repaint: click → row painted, p50 (1,000 items, 2 s latency)",
            percentile(clicks, 50) * ms,
            "ms",
            percentile(by_hand, 50) * ms,
            None,
            lower_is_better=True,
        ),
        Row(
            "repaint: click → row painted, p99 (1,000 items, 2 s latency)",
            p99,
            "ms",
            percentile(by_hand, 99) * ms,
            None,
            lower_is_better=True,
        ),
        Row(
            "repaint: click → row painted, p99 vs one 60 Hz frame",
            p99,
            "ms",
            FRAME_MS,
            1.0,
            lower_is_better=True,
        ),
    ]


if __name__ == "__main__":
    print_table("repaint", run(quick="--quick" in sys.argv))
