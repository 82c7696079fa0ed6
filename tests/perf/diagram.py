"""The live sequence diagram under rapid clicking: frame time against a 60 Hz budget.

    python -m tests.perf.diagram [--quick]

The real desktop pieces, offscreen (``QT_QPA_PLATFORM=offscreen``): three
:class:`DeviceBridge` over ``DeviceSession`` s, the demo's
:class:`SequenceRecorder` feeding a shown :class:`SequenceWindow` (900×700),
and an in-process sync server with 600 ms latency (the demo's default), all on
one qasync loop as in ``python -m app``.

Each round is a 10-tap burst on one item on each of the three devices at once
(taps 30 ms apart, interleaved across devices, as fast as a person clicks), so
taps coalesce, follow-ups leave, and acks and pushes cross while clicking goes
on; the diagram keeps every earlier round, as it does in the demo.

Figures, each beside the 16.7 ms budget of one 60 Hz frame:

* **paint**: how long one paint of the diagram takes (``SequenceView.paintEvent``),
  wall clock and the GUI thread's CPU time (the latter is what the paint costs
  even when a loaded machine preempts the process);
* **frame gap**: the longest stretch the GUI thread was busy, seen by a 1 ms
  heartbeat timer during the bursts: everything (taps, the core, the link, the
  server on the same loop, the recorder and the paints) that would delay the
  next frame.
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
from PySide6.QtCore import QMessageLogContext, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from app.link import load_catalogue
from app.ui.bridge import DeviceBridge
from app.ui.directory import DeviceDirectory
from app.ui.sequence_feed import SequenceRecorder
from app.ui.sequence_window import SequenceWindow
from app.ui.theme import apply_theme
from tests.perf.cli import bench_main
from tests.perf.devices import in_process_server, percentile, wait_until
from tests.perf.report import Row

__all__ = ["main", "run"]

FRAME_MS = 1000 / 60
LATENCY = 0.6
DEVICES = 3
TAPS = 10
TAP_GAP = 0.03


def _quiet(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Drop the offscreen platform's notes about window hints; print anything else."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


class Heartbeat:
    """A 1 ms timer; the gaps between its ticks are how long the GUI thread was busy."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setInterval(1)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now


async def _measure(rounds: int) -> tuple[list[float], list[float], list[float], int]:
    catalogue = load_catalogue()
    directory = DeviceDirectory()
    recorder = SequenceRecorder(directory)
    with tempfile.TemporaryDirectory(prefix="optisync-perf-") as tmp:
        async with in_process_server(LATENCY) as server:
            server.chaos.set_ack_delay(0.0)
            bridges = [
                await DeviceBridge.open(
                    f"Device {chr(65 + n)}",
                    [server.url],
                    directory,
                    data_dir=Path(tmp),
                    catalogue=catalogue,
                )
                for n in range(DEVICES)
            ]
            for bridge in bridges:
                recorder.watch_device(bridge)
            window = SequenceWindow(recorder)
            window.resize(900, 700)
            window.show()
            view = window.panel.view
            heartbeat = Heartbeat()
            try:
                await wait_until(lambda: all(b.status.state == "online" for b in bridges), 30)
                await asyncio.sleep(0.3)  # the first layout and paint
                view.paint_seconds.clear()
                view.paint_cpu_seconds.clear()
                for n in range(rounds):
                    item = catalogue[n % len(catalogue)].id
                    heartbeat.start()
                    for _ in range(TAPS):
                        for bridge in bridges:
                            bridge.toggle_like(item)
                        await asyncio.sleep(TAP_GAP)
                    await wait_until(
                        lambda: not any(b.busy() or b.state.intents for b in bridges), 30
                    )
                    await asyncio.sleep(0.1)  # the last pushes and paints
                    heartbeat.stop()
                paints, cpu = list(view.paint_seconds), list(view.paint_cpu_seconds)
                elements = len(recorder.model.elements)
                return paints, cpu, heartbeat.gaps, elements
            finally:
                window.close()
                window.deleteLater()
                for bridge in bridges:
                    await bridge.close()


def run(quick: bool = False) -> list[Row]:
    """Bursts on three devices; paint time and GUI frame gaps against one 60 Hz frame."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    apply_theme(app)
    app.setQuitOnLastWindowClosed(False)
    previous = qInstallMessageHandler(_quiet)
    rounds = 3 if quick else 12
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        try:
            paints, cpu, gaps, elements = runner.run(_measure(rounds))
        finally:
            qInstallMessageHandler(previous)
    if not paints:
        raise RuntimeError("the diagram was never painted")
    ms = 1000
    what = f"({DEVICES} devices × {TAPS}-tap bursts, {elements:,} elements drawn)"
    return [
        Row(f"diagram: paint p50 {what}", percentile(paints, 50) * ms, "ms", FRAME_MS, 1.0, True),
        Row(f"diagram: paint p99 {what}", percentile(paints, 99) * ms, "ms", FRAME_MS, 1.0, True),
        Row(
            f"diagram: paint p99, CPU time {what}",
            percentile(cpu, 99) * ms,
            "ms",
            FRAME_MS,
            1.0,
            True,
        ),
        Row(
            f"diagram: GUI frame gap p99 while bursting {what}",
            percentile(gaps, 99) * ms,
            "ms",
            FRAME_MS,
            1.0,
            True,
        ),
        Row(
            f"diagram: GUI frame gap max while bursting {what}",
            max(gaps, default=0.0) * ms,
            "ms",
            FRAME_MS,
            None,
            True,
        ),
    ]


def main() -> int:
    return bench_main("diagram", "diagram", run, __doc__)


if __name__ == "__main__":
    sys.exit(main())
