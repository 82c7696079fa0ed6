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
emitted by hand, until its paint is handled. Samples of three kinds alternate,
so noise hits them alike: a click, a hand-made repaint, and a no-op timer
(``call_later``) whose lateness is what the loop and the OS scheduler alone
cost at that moment. Each click and hand-made repaint also records the main
thread's CPU time (``thread_time``) from start to paint: the app's own work,
which does not grow when the process waits for a core. A tail in wall time
that is missing from CPU time, and that the no-op timer shares, is the
machine's scheduling, not the app.

3,000 samples of each (300 with ``--quick``), so p99 is the 30th-worst
sample and p99.9 the 3rd-worst; the frames that missed 16.7 ms are counted.
Target: click p99 within one 60 Hz frame.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
from tests.perf.cli import bench_main
from tests.perf.devices import in_process_server, percentile, wait_until
from tests.perf.report import Row

__all__ = ["run"]

ITEMS = 1000
LATENCY = 2.0
FRAME_MS = 1000 / 60
GAP = 0.002
"""Seconds between samples: the loop runs freely (acks, pushes, timers) in between."""


def _quiet(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Drop the offscreen platform's notes about window hints; print anything else."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


class PaintProbe(QObject):
    """Resolves a future once a paint of the viewport covering ``target`` is done,
    with the wall-clock and main-thread CPU times after that paint."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(viewport)
        self._viewport = viewport
        self._inside = False
        self.target: QRect | None = None
        self.painted: asyncio.Future[tuple[float, float]] | None = None
        viewport.installEventFilter(self)

    def expect(self, target: QRect) -> asyncio.Future[tuple[float, float]]:
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
        self.painted.set_result((time.perf_counter(), time.thread_time()))
        return True


@dataclass
class Samples:
    """Seconds per sample: wall and main-thread CPU of clicks and hand-made repaints,
    and the lateness of a no-op timer."""

    clicks: list[float] = field(default_factory=list)
    clicks_cpu: list[float] = field(default_factory=list)
    by_hand: list[float] = field(default_factory=list)
    by_hand_cpu: list[float] = field(default_factory=list)
    timer_late: list[float] = field(default_factory=list)


async def _measure(app: QApplication, samples: int) -> Samples:
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


async def _timer_lateness() -> float:
    """How late a no-op ``call_later`` runs: the loop's and the scheduler's stall."""
    loop = asyncio.get_running_loop()
    fired: asyncio.Future[float] = loop.create_future()
    due = time.perf_counter() + GAP
    loop.call_later(GAP, lambda: fired.set_result(time.perf_counter()))
    return await fired - due


async def _sample(window: DeviceWindow, samples: int) -> Samples:
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
    result = Samples()
    for n in range(samples):
        index = model.index(visible[n % len(visible)])
        rect = view.visualRect(index)
        liked = bool(index.data(ItemRole.LIKED))
        painted = probe.expect(rect)
        started, started_cpu = time.perf_counter(), time.thread_time()
        QTest.mouseClick(
            viewport,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
            ItemDelegate.heart_rect(rect).center(),
        )
        async with asyncio.timeout(5):
            done, done_cpu = await painted
        result.clicks.append(done - started)
        result.clicks_cpu.append(done_cpu - started_cpu)
        if bool(index.data(ItemRole.LIKED)) == liked:
            raise AssertionError(f"row {index.row()} did not change on its heart click")
        await asyncio.sleep(GAP)

        painted = probe.expect(rect)
        started, started_cpu = time.perf_counter(), time.thread_time()
        model.dataChanged.emit(index, index)
        async with asyncio.timeout(5):
            done, done_cpu = await painted
        result.by_hand.append(done - started)
        result.by_hand_cpu.append(done_cpu - started_cpu)

        result.timer_late.append(await _timer_lateness())
    return result


def _missed(samples: list[float]) -> float:
    return float(sum(1 for sample in samples if sample * 1000 > FRAME_MS))


def run(quick: bool = False) -> list[Row]:
    """Click hearts, time each repaint; percentiles against the hand-made repaint."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app)
    app.setQuitOnLastWindowClosed(False)  # closing the window must not stop the loop
    previous = qInstallMessageHandler(_quiet)
    count = 300 if quick else 3000
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        try:
            got = runner.run(_measure(app, count))
        finally:
            qInstallMessageHandler(previous)
    ms = 1000
    setting = f"{ITEMS:,} items, {LATENCY:g} s latency, {count:,} samples"
    rows = []
    for p, label in ((50, "p50"), (99, "p99"), (99.9, "p99.9")):
        rows.append(
            Row(
                f"repaint: click → row painted, {label} ({setting}); ceiling: by hand",
                percentile(got.clicks, p) * ms,
                "ms",
                percentile(got.by_hand, p) * ms,
                None,
                lower_is_better=True,
            )
        )
    for p, label in ((50, "p50"), (99, "p99"), (99.9, "p99.9")):
        rows.append(
            Row(
                f"repaint: main-thread CPU, click → painted, {label}; ceiling: by hand",
                percentile(got.clicks_cpu, p) * ms,
                "ms",
                percentile(got.by_hand_cpu, p) * ms,
                None,
                lower_is_better=True,
            )
        )
    for p, label in ((50, "p50"), (99, "p99"), (99.9, "p99.9")):
        rows.append(
            Row(
                f"repaint: no-op timer lateness (scheduler stalls), {label}",
                percentile(got.timer_late, p) * ms,
                "ms",
                None,
                None,
                lower_is_better=True,
            )
        )
    rows += [
        Row(
            f"repaint: clicks over one 60 Hz frame, of {count:,}; ceiling: by hand",
            _missed(got.clicks),
            "frames",
            _missed(got.by_hand),
            None,
            lower_is_better=True,
        ),
        Row(
            f"repaint: clicks using over one 60 Hz frame of CPU, of {count:,}",
            _missed(got.clicks_cpu),
            "frames",
            None,
            None,
            lower_is_better=True,
        ),
        Row(
            "repaint: click → row painted, p99 vs one 60 Hz frame",
            percentile(got.clicks, 99) * ms,
            "ms",
            FRAME_MS,
            1.0,
            lower_is_better=True,
        ),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(bench_main("repaint", "repaint", run, __doc__))
