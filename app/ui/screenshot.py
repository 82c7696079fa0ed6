"""``--screenshot``: stage a small scene, then render every window into one PNG.

Rendering uses ``QWidget.grab``, so it works on the offscreen platform too
(anyone can refresh ``assets/screenshot.png`` without a display).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath
from PySide6.QtWidgets import QWidget

from .demo import Demo

__all__ = ["render_windows", "screenshot_windows", "settle", "stage_scene", "wait_for"]


async def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    """Poll ``condition`` on the running loop until true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def settle() -> None:
    """Give Qt a moment on the running loop to lay out and paint what changed."""
    await asyncio.sleep(0.1)


async def stage_scene(demo: Demo) -> None:
    """Some likes, an override from another device and a burst of taps in flight."""
    windows = demo.windows
    await wait_for(lambda: all(w.bridge.status.state == "online" for w in windows))
    if not windows:
        return
    first, last = windows[0], windows[-1]
    ids = [item.id for item in demo.catalogue]

    def synced() -> bool:
        return all(
            not w.bridge.state.intents
            and all(
                s.phase.value in ("synced", "overridden") for s in w.bridge.state.statuses.values()
            )
            for w in windows
        )

    def liked(window_index: int, item_id: str) -> bool:
        return windows[window_index].bridge.state.liked(item_id)

    for item_id in ids[0:1] + ids[2:3] + ids[5:6]:
        if not liked(0, item_id):
            first.bridge.toggle_like(item_id)
    if len(ids) > 3 and not liked(-1, ids[3]):
        last.bridge.toggle_like(ids[3])
    if len(ids) > 4 and not liked(0, ids[4]):
        first.bridge.toggle_like(ids[4])
    await wait_for(synced)
    # The diagram tells the story from here: a coalesced burst, then pushes.
    demo.recorder.model.clear()
    for window in windows:
        window.bridge.reset_stats()  # the stats speak of what follows
    if len(ids) > 6:
        for _ in range(10):  # ten quick taps: one request, then one follow-up (5.0×)
            first.bridge.toggle_like(ids[6])
            await asyncio.sleep(0.04)
        await wait_for(synced)
    if demo.server is not None and len(ids) > 4:
        await demo.server.set_from_another_device(f"like/{ids[4]}", False, first.bridge.space)
        await wait_for(lambda: not liked(0, ids[4]))
    # With several spaces, a write in another space: it reaches its own devices only.
    elsewhere = [w for w in windows if w.bridge.space != first.bridge.space]
    if elsewhere and len(ids) > 8:
        elsewhere[0].bridge.toggle_like(ids[8])
        await wait_for(synced)
    if len(windows) > 1 and len(ids) > 7:
        last.bridge.toggle_like(ids[7])  # a push from Device B to Device A
        await wait_for(synced)
    # Caught mid-flight: two taps (a follow-up is queued) and one tap (saving).
    last.bridge.toggle_like(ids[1])
    last.bridge.toggle_like(ids[1])
    if len(ids) > 2:
        last.bridge.toggle_like(ids[2])
    demo.show_sequence()
    await asyncio.sleep(0.15)  # let the burst reach the server window's "in flight"


def screenshot_windows(demo: Demo) -> list[QWidget]:
    """What the README's screenshot shows: devices, the server, the big diagram."""
    windows: list[QWidget] = [*demo.windows]
    if demo.server_window is not None:
        windows.append(demo.server_window)
    if demo.sequence_window is not None:
        windows.append(demo.sequence_window)
    return windows


def render_windows(windows: list[QWidget], path: Path) -> None:
    """Every window side by side on one canvas, with rounded corners and a soft shadow.

    Called from a coroutine on the qasync loop, so it must not spin Qt's event
    loop itself (processEvents would run other tasks inside this one); let the
    loop settle first with :func:`settle`.
    """
    shots = [window.grab() for window in windows]
    margin, gap = 28, 22
    width = sum(shot.width() for shot in shots) + gap * (len(shots) - 1) + 2 * margin
    height = max((shot.height() for shot in shots), default=0) + 2 * margin
    ratio = shots[0].devicePixelRatio() if shots else 1.0
    canvas = QImage(int(width * ratio), int(height * ratio), QImage.Format.Format_ARGB32)
    canvas.setDevicePixelRatio(ratio)
    canvas.fill(QColor("#D9DEE8"))
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    x = margin
    for shot in shots:
        w = int(shot.width() / ratio) if ratio != 1 else shot.width()
        h = int(shot.height() / ratio) if ratio != 1 else shot.height()
        for spread, alpha in ((10, 10), (6, 16), (3, 24)):
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(20, 30, 60, alpha))
            painter.drawRoundedRect(
                QRect(x - spread, margin - spread + 4, w + 2 * spread, h + 2 * spread),
                14 + spread,
                14 + spread,
            )
        clip = QPainterPath()
        clip.addRoundedRect(QRect(x, margin, w, h), 12, 12)
        painter.save()
        painter.setClipPath(clip)
        painter.drawPixmap(QPoint(x, margin), shot)
        painter.restore()
        x += w + gap
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not canvas.save(str(path)):
        raise OSError(f"could not write {path}")
