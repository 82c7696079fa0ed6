"""Where the demo's windows open: side by side when they fit, cascaded when not.

Theory of operation
-------------------
:func:`tile` is pure geometry. It takes the windows to place (each with the
width it would like and the narrowest it can be), the screen's available
area and the rectangles already taken (this process's other windows, and
other demo processes' windows read from :class:`SharedPlaces`). It puts the
windows in one row, left to right, into the gaps between the taken
rectangles, shrinking all of them by one common factor towards their
narrowest widths, then the gaps between them (8 px down to 4), until they
fit. A window that does not fit even then is cascaded: it opens on a corner
of the cascade (a title bar lower and to the right each time) that no other
window uses, or at the screen's top right, wherever it covers the least of
the others; so no title bar hides another.

Every rectangle here is a window's *frame*: its top-left corner is what
``QWidget.move`` takes, and it includes the window manager's title bar
(:data:`TITLE_BAR` before the window is first shown, when Qt cannot know it).

Several demo processes on one screen (``python -m app --server ...`` next to
``python -m app``) each publish their windows' frames in one folder, a file
per process, guarded by a lock the process holds while it runs; a file whose
lock nobody holds is left over from a process that ended, and is removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock
from PySide6.QtCore import QRect

__all__ = ["CASCADE", "GAP", "TITLE_BAR", "SharedPlaces", "WindowWidth", "cascade_corner", "tile"]

log = logging.getLogger(__name__)

GAP = 8
"""Room between windows, and between a window and the screen's edge."""
GAPS = (GAP, 4)
"""The gaps tried, widest first, when the windows are already at their narrowest."""
TITLE_BAR = 32
"""The height a window manager's title bar adds above the client area."""
CASCADE = 32
"""How far each cascaded window opens below and right of the previous one."""
SCALE_STEPS = 50


@dataclass(frozen=True, slots=True)
class WindowWidth:
    """How wide a window would like to be, the narrowest it can be, and what its
    frame adds (the window manager's borders, 0 before it is shown)."""

    preferred: int
    minimum: int
    frame: int = 0


def _free_spans(area: QRect, top: int, bottom: int, taken: Sequence[QRect]) -> list[list[int]]:
    """The horizontal stretches [start, end) of ``area`` that no taken rectangle
    crosses between heights ``top`` and ``bottom``."""
    spans = [[area.left(), area.right() + 1]]
    for rect in taken:
        if rect.bottom() < top or rect.top() > bottom:
            continue
        cut_from, cut_to = rect.left(), rect.right() + 1
        kept: list[list[int]] = []
        for start, end in spans:
            if cut_to <= start or cut_from >= end:
                kept.append([start, end])
                continue
            if cut_from > start:
                kept.append([start, cut_from])
            if cut_to < end:
                kept.append([cut_to, end])
        spans = kept
    return spans


def _first_fit(widths: Sequence[int], spans: list[list[int]], gap: int) -> list[int] | None:
    """Left edges for ``widths`` in order, each in the first span with room (``gap``
    on both sides), or None when one does not fit."""
    cursors = [start + gap for start, _end in spans]
    lefts: list[int] = []
    span = 0
    for width in widths:
        while span < len(spans) and cursors[span] + width + gap > spans[span][1]:
            span += 1  # the row goes on in the next gap, never back
        if span == len(spans):
            return None
        lefts.append(cursors[span])
        cursors[span] += width + gap
    return lefts


def _overlap(rect: QRect, frames: Sequence[QRect]) -> int:
    return sum(
        (common.width() * common.height())
        for frame in frames
        if not (common := rect.intersected(frame)).isEmpty()
    )


def cascade_corner(area: QRect, used: Sequence[QRect], width: int, height: int) -> tuple[int, int]:
    """Where a window of frame ``width`` × ``height`` that has no free room opens: of
    the cascade's corners (down and right a title bar at a time) that no frame in
    ``used`` already has, and the top right corner of the screen, the one where it
    covers the least of the others."""
    corners = {(rect.left(), rect.top()) for rect in used}
    candidates = [
        (area.left() + GAP + CASCADE * depth, area.top() + GAP + CASCADE * depth)
        for depth in range(8)
    ]
    candidates.append((area.right() + 1 - GAP - width, area.top() + GAP))
    free = [corner for corner in candidates if corner not in corners] or candidates[:1]
    return min(free, key=lambda c: _overlap(QRect(c[0], c[1], width, height), used))


def tile(
    widths: Sequence[WindowWidth],
    area: QRect,
    height: int,
    taken: Sequence[QRect] = (),
) -> list[QRect]:
    """Frames for windows of ``widths`` (client ``height`` tall under a title bar) in
    ``area``: one row clear of ``taken`` when they fit there, shrunk as little as
    needed; the ones that do not fit cascaded. The result's rectangles hold the frame's
    corner and the client size (what ``move`` and ``resize`` take)."""
    top = area.top() + GAP
    bottom = top + height + TITLE_BAR - 1
    spans = _free_spans(area, top, bottom, taken)
    for gap in GAPS:
        for step in range(SCALE_STEPS + 1):
            scale = 1.0 - step / SCALE_STEPS
            sizes = [max(w.minimum, int(w.preferred * scale)) for w in widths]
            lefts = _first_fit(
                [s + w.frame for s, w in zip(sizes, widths, strict=True)], spans, gap
            )
            if lefts is not None:
                return [QRect(x, top, s, height) for x, s in zip(lefts, sizes, strict=True)]
    # Not all of them fit: those that do keep their narrowest width in the row, in
    # order, and the rest cascade over them.
    placed: list[QRect] = []
    frames: list[QRect] = list(taken)
    for window in widths:
        lefts = _first_fit(
            [window.minimum + window.frame], _free_spans(area, top, bottom, frames), GAPS[-1]
        )
        if lefts is not None:
            rect = QRect(lefts[0], top, window.minimum, height)
        else:
            width = min(window.preferred, area.width() - 2 * GAP - window.frame)
            x, y = cascade_corner(area, frames, width + window.frame, height + TITLE_BAR)
            height_here = min(height, area.bottom() + 1 - y - TITLE_BAR)
            x = max(area.left(), min(x, area.right() + 1 - width - window.frame))
            rect = QRect(x, y, width, height_here)
        placed.append(rect)
        frames.append(
            QRect(rect.left(), rect.top(), rect.width() + window.frame, rect.height() + TITLE_BAR)
        )
    return placed


class SharedPlaces:
    """This process's window frames, published where every demo process looks.

    ``folder`` is shared by the processes of one user (the demo uses the user's
    runtime folder). Placement is a courtesy: a folder that cannot be written
    or a file that cannot be read only means windows may overlap.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        token = uuid.uuid4().hex
        self._file = folder / f"{token}.json"
        self._lock = filelock.FileLock(folder / f"{token}.lock", thread_local=False)
        self._held = False
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=0)
            self._held = True
        except (OSError, filelock.Timeout) as exc:
            log.debug("not sharing window places in %s: %s", folder, exc)

    def publish(self, frames: Sequence[QRect]) -> None:
        """Say where this process's windows are now (their frames)."""
        if not self._held:
            return
        data = [[r.left(), r.top(), r.width(), r.height()] for r in frames]
        scratch = self._file.with_suffix(".tmp")
        try:
            scratch.write_text(json.dumps(data), encoding="utf-8")
            scratch.replace(self._file)
        except OSError as exc:
            log.debug("could not publish window places: %s", exc)

    def others(self) -> list[QRect]:
        """The frames of every other running demo process's windows."""
        frames: list[QRect] = []
        try:
            files = sorted(self.folder.glob("*.json"))
        except OSError:
            return frames
        for path in files:
            if path == self._file:
                continue
            lock = filelock.FileLock(path.with_suffix(".lock"), thread_local=False)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                frames.extend(_read_frames(path))  # its process runs: its windows count
                continue
            except OSError:
                continue
            # Nobody holds it: what a process that ended left behind.
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            lock.release()
            with contextlib.suppress(OSError):
                path.with_suffix(".lock").unlink(missing_ok=True)
        return frames

    def close(self) -> None:
        """Withdraw this process's windows (at quit)."""
        if not self._held:
            return
        self._held = False
        with contextlib.suppress(OSError):
            self._file.unlink(missing_ok=True)
        self._lock.release()
        with contextlib.suppress(OSError):
            Path(self._lock.lock_file).unlink(missing_ok=True)


def _read_frames(path: Path) -> list[QRect]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [QRect(int(x), int(y), int(w), int(h)) for x, y, w, h in data]
    except (OSError, ValueError, TypeError) as exc:
        log.debug("ignoring window places in %s: %s", path, exc)
        return []
