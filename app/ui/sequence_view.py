"""Paints a :class:`~app.ui.sequence.SequenceModel`: on screen, to SVG and to PNG.

:class:`SequencePainter` draws lanes, dots, groups and arrows with a QPainter
(the same code for the screen and for export); :class:`SequenceView` is the
scrolling, hoverable, clickable widget; :class:`SequencePanel` adds the
toolbar (pause, item filter, clear, export) and a legend.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QHelpEvent,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .sequence import SERVER_LANE, Arrow, Commit, Dot, Element, Lane, SequenceModel
from .space_colors import space_tone
from .theme import Palette, mono_font

__all__ = [
    "ARROW_COLORS",
    "LEGEND",
    "LEGEND_NAMES",
    "SequencePainter",
    "SequencePanel",
    "SequenceView",
    "export_png",
    "export_svg",
    "legend_color",
]

BACKGROUND = QColor("#FBFBFD")
HEADER = 44.0
TOP = HEADER + 14.0
GUTTER = 16.0
LABEL_OFFSETS = (-15.0, 2.0, -29.0, 16.0)  # label tops around an arrow middle, by preference
DOT = 4.5

ARROW_COLORS: dict[str, QColor] = {
    "set": Palette.saving,
    "follow-up": Palette.follow_up,
    "ack": Palette.synced,
    "stale-ack": Palette.faint,
    "failed": Palette.failed,
    "push": Palette.overridden,
    "own-push": Palette.synced,
    "echo": Palette.muted,
    "stale-push": Palette.faint,
}
DASHED = {"stale-ack", "stale-push", "own-push"}
DOTTED = {"echo"}


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where an element was drawn, for hit tests: a point or a segment."""

    element_id: int
    a: QPointF
    b: QPointF | None


class SequencePainter:
    """Draws the model into a rectangle; ``offset`` is the scroll position in pixels."""

    def __init__(self, model: SequenceModel) -> None:
        self.model = model
        self.key: str | None = None
        self.until: float | None = None  # paused: nothing after this time
        self.selected: set[int] = set()
        self.hovered: int | None = None
        self.shapes: list[_Shape] = []
        self._label_font = QFont()
        self._label_font.setPointSizeF(7.5)
        self._title_font = QFont()
        self._title_font.setPointSizeF(9.0)
        self._title_font.setWeight(QFont.Weight.DemiBold)
        self._small = mono_font(7.0)
        self._space_font = QFont()
        self._space_font.setPointSizeF(7.0)
        self._label_metrics = QFontMetricsF(self._label_font)
        self._small_metrics = QFontMetricsF(self._small)
        self._widths: dict[str, float] = {}
        self._labels: dict[tuple[str, int, float], QPixmap] = {}
        self.cache_labels = True  # off for SVG export, which keeps text as text
        self.label_rects: list[QRectF] = []  # the labels drawn by the last paint
        self.mark_rects: list[
            QRectF
        ] = []  # taps, stored writes and their tags: no label covers them
        self._tags: list[tuple[QRectF, str, QColor]] = []  # "rev N" beside stored writes
        self._several = False  # whether the model shows several spaces (set per paint)
        self._header: tuple[tuple[float, tuple[Lane, ...], float], QPixmap] | None = None

    # -- geometry ---------------------------------------------------------------------

    def lane_order(self) -> list[int]:
        """Device lanes with the server in the middle, so arrows stay short."""
        devices = [lane.id for lane in self.model.lanes if lane.id != SERVER_LANE]
        middle = (len(devices) + 1) // 2
        return [*devices[:middle], SERVER_LANE, *devices[middle:]]

    def lane_x(self, width: float) -> dict[int, float]:
        order = self.lane_order()
        span = max(1.0, width - 2 * GUTTER)
        step = span / len(order)
        return {lane: GUTTER + step * (i + 0.5) for i, lane in enumerate(order)}

    def lane_at(self, x: float, width: float) -> Lane | None:
        """The lane whose header slot holds ``x``."""
        xs = self.lane_x(width)
        if not xs:
            return None
        half = (width - 2 * GUTTER) / len(xs) / 2
        lane_id = next((lane for lane, at in xs.items() if abs(x - at) <= half), None)
        return next((lane for lane in self.model.lanes if lane.id == lane_id), None)

    def content_height(self) -> float:
        return TOP + self.model.height + 60.0

    def y(self, at: float) -> float:
        return TOP + self.model.y(at)

    # -- painting ---------------------------------------------------------------------

    def paint(self, painter: QPainter, width: float, height: float, offset: float) -> None:
        """Everything visible between ``offset`` and ``offset + height``."""
        model = self.model
        self.shapes = []
        self.label_rects = []
        self.mark_rects = []
        self._tags = []
        self._several = model.several_spaces
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(QRectF(0, 0, width, height), QColor("#FBFBFD"))
        xs = self.lane_x(width)
        painter.translate(0, -offset)
        top_t, bottom_t = self._time_range(offset, offset + height)
        self._paint_lanes(painter, xs, offset, height)
        self._paint_breaks(painter, width, offset, height)
        low, high = offset - 24, offset + height + 24
        elements = [
            e for e in model.between(top_t, bottom_t, self.key) if self._shows(e, low, high)
        ]
        dimmed = bool(self.selected)
        for element in elements:
            if isinstance(element, Arrow):
                self._paint_group(painter, element, xs, dimmed)
        for element in elements:
            if self._hidden(element):
                continue
            faded = dimmed and element.id not in self.selected
            if isinstance(element, Commit):
                self._paint_commit(painter, element, xs, faded)
            elif isinstance(element, Dot):
                self._paint_dot(painter, element, xs, faded)
        for element in elements:
            if isinstance(element, Arrow) and not self._hidden(element):
                faded = dimmed and element.id not in self.selected
                self._paint_arrow(painter, element, xs, faded)
        # Over the arrows: a push leaving a stored write never runs through its "rev N".
        for rect, text, color in self._tags:
            self._draw_label(painter, rect, text, color, self._small)
        painter.translate(0, offset)
        self._paint_header(painter, xs, width)
        painter.restore()

    def _shows(self, element: Element, low: float, high: float) -> bool:
        """Whether any of ``element`` (with its tap group) falls between pixel rows."""
        if isinstance(element, Arrow):
            top = self.y(element.start)
            bottom = self.y(element.end) if element.end is not None else self.model.height + TOP
            if element.dots:
                first = self.model.elements.get(element.dots[0])
                if isinstance(first, Dot):
                    top = min(top, self.y(first.at))
            return bottom + 20 >= low and top - 20 <= high
        return low <= self.y(element.at) <= high

    def _hidden(self, element: Element) -> bool:
        if self.until is None:
            return False
        first = element.at if isinstance(element, Dot | Commit) else element.start
        return first > self.until

    def _time_range(self, top: float, bottom: float) -> tuple[float, float]:
        """The times drawn between pixel rows ``top`` and ``bottom`` (a superset)."""
        times, ys = self.model.anchors()
        if not times:
            return 0.0, 0.0
        low = max(0, bisect.bisect_right(ys, top - TOP) - 1)
        high = min(len(times) - 1, bisect.bisect_left(ys, bottom - TOP))
        return times[low], times[high]

    def _paint_lanes(
        self, painter: QPainter, xs: dict[int, float], offset: float, h: float
    ) -> None:
        several = self.model.several_spaces
        for lane in self.model.lanes:
            x = xs.get(lane.id)
            if x is None:
                continue
            if lane.id == SERVER_LANE:
                pen = QPen(Palette.text, 2.0)
            elif several:
                # A device lane in its space's colour: pushes reach only the lanes of one colour.
                pen = QPen(_faded(space_tone(lane.space).accent, 110), 2.0)
            else:
                pen = QPen(QColor("#D5D9E2"), 1.5)
            painter.setPen(pen)
            painter.drawLine(QPointF(x, offset + HEADER), QPointF(x, offset + h))

    def _paint_breaks(self, painter: QPainter, width: float, offset: float, h: float) -> None:
        painter.setFont(self._small)
        for gap in self.model.breaks:
            y = self.y(gap.at) + self.model.max_gap * self.model.px_per_second * 0.25
            if not offset - 20 <= y <= offset + h + 20:
                continue
            pen = QPen(Palette.faint, 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(GUTTER, y), QPointF(width - GUTTER, y))
            text = f" {_seconds(gap.seconds)} later "
            rect = QRectF(GUTTER, y - 7, 90, 14)
            painter.fillRect(rect, QColor("#FBFBFD"))
            painter.setPen(Palette.muted)
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_header(self, painter: QPainter, xs: dict[int, float], width: float) -> None:
        if not self.cache_labels:
            self._draw_header(painter, xs, width)
            return
        # Drawn once per lane set and width: two lines of text per lane cost more than
        # every arrow of a frame.
        ratio = painter.device().devicePixelRatioF()
        key = (width, tuple(self.model.lanes), ratio)
        if self._header is None or self._header[0] != key:
            pixmap = QPixmap(max(1, math.ceil(width * ratio)), math.ceil(HEADER * ratio) + 1)
            pixmap.setDevicePixelRatio(ratio)
            pixmap.fill(Qt.GlobalColor.transparent)
            header = QPainter(pixmap)
            header.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._draw_header(header, xs, width)
            header.end()
            self._header = (key, pixmap)
        painter.drawPixmap(QPointF(0, 0), self._header[1])

    def _draw_header(self, painter: QPainter, xs: dict[int, float], width: float) -> None:
        painter.fillRect(QRectF(0, 0, width, HEADER), QColor("#FFFFFF"))
        painter.setPen(Palette.line)
        painter.drawLine(QPointF(0, HEADER), QPointF(width, HEADER))
        slot = max(40.0, (width - 2 * GUTTER) / max(1, len(xs)) - 6)
        metrics = QFontMetricsF(self._title_font)
        space_metrics = QFontMetricsF(self._space_font)
        for lane in self.model.lanes:
            x = xs.get(lane.id)
            if x is None:
                continue
            server = lane.id == SERVER_LANE
            tone = space_tone(lane.space)
            # Two lines: the lane's name, and the space its device joined.
            space = "every space" if server else f"space {lane.space}"
            title = metrics.elidedText(lane.title, Qt.TextElideMode.ElideRight, slot - 12)
            space = space_metrics.elidedText(space, Qt.TextElideMode.ElideRight, slot - 12)
            rect = QRectF(x - slot / 2, 5, slot, HEADER - 10)
            painter.setPen(Qt.PenStyle.NoPen if server else QPen(_faded(tone.accent, 90), 1.0))
            painter.setBrush(QColor("#1F2430") if server else tone.fill)
            painter.drawRoundedRect(rect, 9, 9)
            upper = QRectF(rect.left(), rect.top() + 2, rect.width(), rect.height() / 2)
            lower = QRectF(rect.left(), rect.center().y(), rect.width(), rect.height() / 2 - 3)
            painter.setFont(self._title_font)
            painter.setPen(QColor("#FFFFFF") if server else tone.ink)
            painter.drawText(upper, Qt.AlignmentFlag.AlignCenter, title)
            painter.setFont(self._space_font)
            painter.setPen(QColor("#C9CEDA") if server else tone.ink)
            painter.drawText(lower, Qt.AlignmentFlag.AlignCenter, space)

    def _paint_dot(self, painter: QPainter, dot: Dot, xs: dict[int, float], faded: bool) -> None:
        x = xs.get(dot.device_id)
        if x is None:
            return
        y = self.y(dot.at)
        color = QColor(Palette.accent)
        if faded:
            color = _faded(color, 60)
        painter.setPen(QPen(color, 1.5))
        painter.setBrush(QColor("#FFFFFF") if dot.coalesced else color)
        radius = DOT + (1.5 if dot.id == self.hovered or dot.id in self.selected else 0)
        painter.drawEllipse(QPointF(x, y), radius, radius)
        reach = radius + 2
        self.mark_rects.append(QRectF(x - reach, y - reach, 2 * reach, 2 * reach))
        self.shapes.append(_Shape(dot.id, QPointF(x, y), None))

    def _paint_group(
        self, painter: QPainter, arrow: Arrow, xs: dict[int, float], dimmed: bool
    ) -> None:
        """A bracket beside the taps a request carries, reaching down to the request."""
        if arrow.kind not in ("set", "follow-up") or not arrow.dots or self._hidden(arrow):
            return
        x = xs.get(arrow.device_id)
        if x is None:
            return
        dots = [d for i in arrow.dots if isinstance(d := self.model.elements.get(i), Dot)]
        if not dots:
            return
        ys = [self.y(d.at) for d in dots]
        top = min(ys) - 7
        bottom = max(self.y(arrow.start), max(ys) + 4) + 3  # absorbed taps come later
        side = -1.0 if x > xs.get(SERVER_LANE, 0.0) else 1.0
        color = QColor(ARROW_COLORS[arrow.kind])
        color = _faded(color, 40 if dimmed and arrow.id not in self.selected else 140)
        painter.setPen(QPen(color, 1.2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        edge = x - side * 11
        # Separate straight lines: a polyline with antialiasing costs ten times more.
        painter.drawLines(
            [
                QLineF(x - side * 6, top, edge, top),
                QLineF(edge, top, edge, bottom),
                QLineF(edge, bottom, x - side * 4, bottom),
            ]
        )
        if len(dots) > 1:
            painter.setFont(self._small)
            text = f"{len(dots)} taps"
            width = 44.0
            left = edge - width - 3 if side > 0 else edge + 3
            painter.setPen(color.darker(130))
            painter.drawText(
                QRectF(left, (top + bottom) / 2 - 7, width, 14),
                (Qt.AlignmentFlag.AlignRight if side > 0 else Qt.AlignmentFlag.AlignLeft)
                | Qt.AlignmentFlag.AlignVCenter,
                text,
            )

    def _paint_commit(
        self, painter: QPainter, commit: Commit, xs: dict[int, float], faded: bool
    ) -> None:
        x = xs[SERVER_LANE]
        y = self.y(commit.at)
        # With several spaces a write is marked in its space's colour.
        color = QColor(space_tone(commit.space).accent if self._several else Palette.text)
        if faded:
            color = _faded(color, 60)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        size = 5.0 + (1.5 if commit.id == self.hovered or commit.id in self.selected else 0)
        painter.drawRect(QRectF(x - size, y - size, 2 * size, 2 * size))
        text = f"rev {commit.server_revision}"
        width = self._small_metrics.horizontalAdvance(text) + 6
        tag = QRectF(x + 8, y - 6.5, width, 13)
        self._tags.append((tag, text, color))
        self.mark_rects.append(QRectF(x - size - 2, y - size - 2, 2 * size + 4, 2 * size + 4))
        self.mark_rects.append(tag)
        self.shapes.append(_Shape(commit.id, QPointF(x, y), None))

    def _paint_arrow(
        self, painter: QPainter, arrow: Arrow, xs: dict[int, float], faded: bool
    ) -> None:
        device_x = xs.get(arrow.device_id)
        server_x = xs.get(SERVER_LANE)
        if device_x is None or server_x is None:
            return
        in_flight = arrow.end is None or (self.until is not None and arrow.end > self.until)
        start_y = self.y(arrow.start)
        if in_flight:
            end_y = max(start_y + 14, self.y(self.until if self.until is not None else math.inf))
        else:
            end_y = self.y(arrow.end or arrow.start)
        if arrow.from_server:
            a, b = QPointF(server_x, start_y), QPointF(device_x, end_y)
        else:
            a, b = QPointF(device_x, start_y), QPointF(server_x, end_y)
        if in_flight and not arrow.from_server:
            # Still on its way: drawn part of the way, dashed.
            b = QPointF(a.x() + (b.x() - a.x()) * 0.55, a.y() + min(end_y - start_y, 40))
        color = QColor(ARROW_COLORS[arrow.kind])
        if faded:
            color = _faded(color, 50)
        highlighted = arrow.id == self.hovered or arrow.id in self.selected
        pen = QPen(color, 2.6 if highlighted else 1.6)
        if arrow.kind in DASHED or in_flight or arrow.queued:
            pen.setStyle(Qt.PenStyle.DashLine)
        elif arrow.kind in DOTTED:
            pen.setStyle(Qt.PenStyle.DotLine)
        painter.setPen(pen)
        painter.drawLine(a, b)
        self._arrow_head(painter, a, b, color)
        if arrow.kind == "failed":
            self._cross(painter, b, color)
        if arrow.kind in ("stale-push", "stale-ack"):
            self._cross(painter, QPointF(b.x() + (-8 if b.x() > a.x() else 8), b.y()), color, 3)
        self._paint_label(painter, arrow, a, b, color, faded)
        if arrow.follows is not None:
            self._paint_follow_link(painter, arrow, device_x, start_y, color)
        self.shapes.append(_Shape(arrow.id, a, b))

    def _paint_follow_link(
        self, painter: QPainter, arrow: Arrow, x: float, y: float, color: QColor
    ) -> None:
        """A curl from the ack that scheduled a follow-up to the follow-up itself."""
        ack = self.model.elements.get(arrow.follows or -1)
        if not isinstance(ack, Arrow) or ack.end is None:
            return
        ack_y = self.y(ack.end)
        if y - ack_y < 2:
            return  # sent the moment the ack arrived: the arrows already touch
        faint = QColor(color)
        faint = _faded(faint, 110)
        painter.setPen(QPen(faint, 1.2))
        bulge = 14.0
        painter.drawLines(
            [
                QLineF(x, ack_y, x + bulge, ack_y + 2),
                QLineF(x + bulge, ack_y + 2, x + bulge, y - 2),
                QLineF(x + bulge, y - 2, x, y),
            ]
        )

    def _paint_label(
        self,
        painter: QPainter,
        arrow: Arrow,
        a: QPointF,
        b: QPointF,
        color: QColor,
        faded: bool,
    ) -> None:
        text = arrow.label
        if arrow.queued:
            text += " · waiting"
        width = self._widths.get(text)
        if width is None:
            width = self._widths[text] = self._label_metrics.horizontalAdvance(text) + 8
        middle = QPointF((a.x() + b.x()) / 2, (a.y() + b.y()) / 2)
        rect = self._free_label_rect(middle, width, always=arrow.id == self.hovered)
        if rect is None:
            return  # every nearby slot is taken: the hover still explains the arrow
        self.label_rects.append(rect)
        ink = color.darker(125)
        if self.cache_labels:
            # Text shaping is the dearest part of a paint: each label is drawn once.
            key = (text, ink.rgb(), painter.device().devicePixelRatioF())
            pixmap = self._labels.get(key)
            if pixmap is None:
                pixmap = self._labels[key] = self._label_pixmap(text, width, ink, key[2])
                if len(self._labels) > 2000:
                    self._labels.clear()
            painter.drawPixmap(rect.topLeft(), pixmap)
            return
        self._draw_label(painter, rect, text, ink)

    def _free_label_rect(self, middle: QPointF, width: float, *, always: bool) -> QRectF | None:
        """Above the arrow's middle, else just below, else a row further out; None
        when all of them would cover a label already drawn (clustered events)."""
        taken = [*self.label_rects, *self.mark_rects]
        for dy in LABEL_OFFSETS:
            rect = QRectF(middle.x() - width / 2, middle.y() + dy, width, 13)
            if not any(rect.intersects(other) for other in taken):
                return rect
        return (
            QRectF(middle.x() - width / 2, middle.y() + LABEL_OFFSETS[0], width, 13)
            if always
            else None
        )

    def _draw_label(
        self, painter: QPainter, rect: QRectF, text: str, ink: QColor, font: QFont | None = None
    ) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(BACKGROUND)
        painter.drawRoundedRect(rect, 4, 4)
        painter.setFont(font or self._label_font)
        painter.setPen(ink)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _label_pixmap(self, text: str, width: float, ink: QColor, ratio: float) -> QPixmap:
        pixmap = QPixmap(max(1, math.ceil(width * ratio)), math.ceil(13 * ratio))
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._draw_label(painter, QRectF(0, 0, width, 13), text, ink)
        painter.end()
        return pixmap

    @staticmethod
    def _arrow_head(painter: QPainter, a: QPointF, b: QPointF, color: QColor) -> None:
        angle = math.atan2(b.y() - a.y(), b.x() - a.x())
        size = 7.0
        left = QPointF(b.x() - size * math.cos(angle - 0.45), b.y() - size * math.sin(angle - 0.45))
        right = QPointF(
            b.x() - size * math.cos(angle + 0.45), b.y() - size * math.sin(angle + 0.45)
        )
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawPolygon(QPolygonF([b, left, right]))

    @staticmethod
    def _cross(painter: QPainter, at: QPointF, color: QColor, size: float = 5.0) -> None:
        painter.setPen(QPen(color, 2.0))
        painter.drawLine(
            QPointF(at.x() - size, at.y() - size), QPointF(at.x() + size, at.y() + size)
        )
        painter.drawLine(
            QPointF(at.x() - size, at.y() + size), QPointF(at.x() + size, at.y() - size)
        )

    # -- hit tests --------------------------------------------------------------------

    def element_at(self, point: QPointF, offset: float) -> int | None:
        """The element drawn under ``point`` (viewport coordinates), dots first."""
        p = QPointF(point.x(), point.y() + offset)
        best: tuple[float, int] | None = None
        for shape in self.shapes:
            if shape.b is None:
                distance = math.hypot(p.x() - shape.a.x(), p.y() - shape.a.y()) - 3
            else:
                distance = _segment_distance(p, shape.a, shape.b)
            if distance <= 6 and (best is None or distance < best[0]):
                best = (distance, shape.element_id)
        return best[1] if best is not None else None


def _faded(color: QColor, alpha: int) -> QColor:
    """``color`` at ``alpha`` over the background, as an opaque colour: translucent
    pens make QPainter stroke paths, several times slower than opaque lines."""
    share = alpha / 255
    return QColor(
        round(color.red() * share + BACKGROUND.red() * (1 - share)),
        round(color.green() * share + BACKGROUND.green() * (1 - share)),
        round(color.blue() * share + BACKGROUND.blue() * (1 - share)),
    )


def _segment_distance(p: QPointF, a: QPointF, b: QPointF) -> float:
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length = dx * dx + dy * dy
    if length == 0:
        return math.hypot(p.x() - a.x(), p.y() - a.y())
    t = max(0.0, min(1.0, ((p.x() - a.x()) * dx + (p.y() - a.y()) * dy) / length))
    return math.hypot(p.x() - (a.x() + t * dx), p.y() - (a.y() + t * dy))


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class SequenceView(QAbstractScrollArea):
    """The diagram, scrolling down as time passes (unless paused or scrolled back).

    ``selectionChanged(element_id | None)`` fires when an element is clicked.
    Repaints are coalesced: a burst of events costs one paint per frame.
    """

    selectionChanged = Signal(object)

    def __init__(self, model: SequenceModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sequenceView")
        self.model = model
        self.painter = SequencePainter(model)
        self._seen = -1
        self._follow = True
        self.paused = False
        # How long each paint took (wall clock, and this thread's CPU time), for benchmarks.
        self.paint_seconds: list[float] = []
        self.paint_cpu_seconds: list[float] = []
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.viewport().setMouseTracking(True)
        self.setMinimumSize(QSize(260, 160))
        self.setAccessibleName("Sequence diagram")
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(16)  # at most one layout pass per 60 Hz frame
        self._timer.timeout.connect(self.refresh)

    # -- control ----------------------------------------------------------------------

    def schedule(self) -> None:
        """The model changed: repaint soon (many changes in one frame → one paint)."""
        if not self.paused and not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        if self.model.revision == self._seen:
            return
        self._seen = self.model.revision
        self._update_range()
        self.viewport().update()

    def set_paused(self, paused: bool) -> None:
        """Freeze the picture (events are still recorded and show on resume)."""
        self.paused = paused
        self.painter.until = time.monotonic() if paused else None
        if not paused:
            self._follow = True
            self._seen = -1
            self.refresh()
        self.viewport().update()

    def set_key(self, key: str | None) -> None:
        self.painter.key = key
        self.viewport().update()

    def select(self, element_id: int | None) -> None:
        self.painter.selected = set() if element_id is None else self.model.related(element_id)
        self.selectionChanged.emit(element_id)
        self.viewport().update()

    def scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- Qt ---------------------------------------------------------------------------

    def _update_range(self) -> None:
        bar = self.verticalScrollBar()
        height = self.viewport().height()
        bar.setPageStep(height)
        bar.setSingleStep(24)
        bar.setRange(0, max(0, int(self.painter.content_height()) - height))
        if self._follow:
            bar.setValue(bar.maximum())

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.verticalScrollBar().maximum() - 4
        self.viewport().update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_range()

    def paintEvent(self, event: QPaintEvent) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        painter = QPainter(self.viewport())
        size = self.viewport().size()
        self.painter.paint(
            painter, size.width(), size.height(), float(self.verticalScrollBar().value())
        )
        painter.end()
        self.paint_seconds.append(time.perf_counter() - started)
        self.paint_cpu_seconds.append(time.thread_time() - cpu)
        if len(self.paint_seconds) > 10_000:
            del self.paint_seconds[:5_000]
            del self.paint_cpu_seconds[:5_000]

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        found = self.painter.element_at(event.position(), self.verticalScrollBar().value())
        if found != self.painter.hovered:
            self.painter.hovered = found
            self.viewport().update()
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.select(self.painter.element_at(event.position(), self.verticalScrollBar().value()))
        super().mousePressEvent(event)

    def viewportEvent(self, event: Any) -> bool:
        if isinstance(event, QHelpEvent):
            text = self.explain_at(QPointF(event.pos()))
            if not text:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), _wrap(text), self)
            return True
        return super().viewportEvent(event)

    def explain_at(self, point: QPointF) -> str:
        """The hover text for a viewport point ("" over nothing)."""
        if point.y() < HEADER:
            lane = self.painter.lane_at(point.x(), self.viewport().width())
            return self.model.explain_lane(lane) if lane is not None else ""
        found = self.painter.element_at(point, self.verticalScrollBar().value())
        element = self.model.elements.get(found) if found is not None else None
        return self.model.explain(element) if element is not None else ""


def _wrap(text: str) -> str:
    return f"<p style='white-space:pre-wrap; max-width:320px'>{text}</p>"


def _render(model: SequenceModel, painter: QPainter, width: float, key: str | None) -> None:
    drawer = SequencePainter(model)
    drawer.cache_labels = False
    drawer.key = key
    height = drawer.content_height()
    drawer.paint(painter, width, height, 0.0)


def export_svg(
    model: SequenceModel, path: Path, *, width: int = 900, key: str | None = None
) -> None:
    """The whole diagram (not just what is on screen) as an SVG file."""
    height = int(SequencePainter(model).content_height())
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(QSize(width, height))
    generator.setViewBox(QRectF(0, 0, width, height))
    generator.setTitle("optisync sequence diagram")
    painter = QPainter(generator)
    _render(model, painter, width, key)
    painter.end()
    if not path.exists():
        raise OSError(f"could not write {path}")


def export_png(
    model: SequenceModel, path: Path, *, width: int = 900, key: str | None = None
) -> None:
    """The whole diagram as a PNG image."""
    height = int(SequencePainter(model).content_height())
    image = QImage(width, max(1, height), QImage.Format.Format_ARGB32)
    image.fill(QColor("#FBFBFD"))
    painter = QPainter(image)
    _render(model, painter, width, key)
    painter.end()
    if not image.save(str(path)):
        raise OSError(f"could not write {path}")


LEGEND: tuple[tuple[str, str, str], ...] = (
    ("●", "tap", "A tap, shown at once (hollow: made while a request was in flight)"),
    ("→", "set", "Request to the server: value, local rev (L), server rev once known"),
    ("→", "follow-up", "Follow-up carrying the newest value of taps that waited"),
    ("■", "stored", "A write the server stored, on its lane, with its revision (rev N)"),
    ("←", "ack", "Ack: the server stored the write and answers the request"),
    ("←", "push", "Push: another device's write reaching this one"),
    (
        "⇠",
        "own-push",
        "Push of your own write: the server pushes every write to every device, the "
        "writer too (dashed green; the ack is the solid one)",
    ),
    ("⇠", "stale-push", "Stale push, crossed out: already had that revision or newer"),
    ("⋯", "echo", "Self-echo of an older request (dotted): revision noted, not re-applied"),
    ("⇠", "stale-ack", "Ignored ack, crossed out: a newer push had already won"),
    ("✕", "failed", "Failed request; the server's value is reloaded"),
)

LEGEND_NAMES: dict[str, str] = {
    "stored": "stored write",
    "own-push": "own push",
    "stale-push": "stale push",
    "echo": "self-echo",
    "stale-ack": "ignored ack",
    "failed": "failure",
}
"""What the legend calls a mark, where its kind's name is not plain words."""


def legend_color(kind: str) -> QColor:
    """The colour a legend entry (and Help) shows a mark in."""
    if kind == "tap":
        return Palette.accent
    if kind == "stored":
        return Palette.text
    return ARROW_COLORS.get(kind, Palette.muted)


LEGEND_HINT = "Hover a mark for what it means; click a write to light it up on every lane."


class SequencePanel(QWidget):
    """The diagram with its toolbar: pause, item filter, clear, export; and a legend."""

    def __init__(
        self,
        model: SequenceModel,
        title_of: Callable[[str], str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sequencePanel")
        self.model = model
        self._title_of = title_of or (lambda key: key)
        self.view = SequenceView(model)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip(
            "Freeze the diagram to read it; events keep being recorded and show on resume"
        )
        self.filter = QComboBox()
        self.filter.setAccessibleName("Show one item only")
        self.filter.setToolTip("Show every item, or follow one item's writes only")
        self.filter.addItem("All items", None)
        self.filter.setMinimumContentsLength(10)
        self.filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget everything drawn so far")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the whole diagram as SVG or PNG")
        self.status = QLabel("")
        self.status.setObjectName("subtle")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(6)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.export_button)
        # Every mark, wrapped over as many lines as the width needs (an entry never
        # breaks inside); the tooltip says what each one means.
        self.legend = QLabel(self._legend_html())
        self.legend.setObjectName("legend")
        self.legend.setWordWrap(True)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.legend.setToolTip(
            "<br>".join(
                [
                    f"<i>{LEGEND_HINT}</i>",
                    *(
                        f"<b>{glyph} {LEGEND_NAMES.get(kind, kind)}</b>: {text}"
                        for glyph, kind, text in LEGEND
                    ),
                ]
            )
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.legend)
        layout.addWidget(self.status)
        self.status.hide()
        self.pause_button.toggled.connect(self.set_paused)
        self.filter.currentIndexChanged.connect(self._on_filter)
        self.clear_button.clicked.connect(self.clear)
        self.export_button.clicked.connect(self._export_dialog)
        self.view.selectionChanged.connect(self._on_selected)
        self._keys: list[str] = []

    @staticmethod
    def _legend_html() -> str:
        parts = []
        for glyph, kind, _text in LEGEND:
            name = LEGEND_NAMES.get(kind, kind).replace(" ", "&nbsp;")
            color = legend_color(kind).name()
            parts.append(f"<span style='color:{color}'><b>{glyph}</b>&nbsp;{name}</span>")
        return "&nbsp; ".join(parts)

    # -- actions ----------------------------------------------------------------------

    def changed(self) -> None:
        """The model changed: offer new keys in the filter, repaint soon."""
        if len(self._keys) != self.model.key_count:
            self._refresh_keys()
        self.view.schedule()
        if self.view.paused:
            self.status.setText("Paused · new events are recorded and show on resume")

    def set_paused(self, paused: bool) -> None:
        if self.pause_button.isChecked() != paused:
            self.pause_button.setChecked(paused)
            return
        self.pause_button.setText("Resume" if paused else "Pause")
        self.view.set_paused(paused)
        self.status.setVisible(paused)
        self.status.setText("Paused")

    def filter_to(self, key: str | None) -> None:
        self._refresh_keys(key)
        found = self.filter.findData(key)
        self.filter.setCurrentIndex(max(0, found))

    def clear(self) -> None:
        self.view.select(None)
        self.model.clear()
        self._refresh_keys()
        self.view.schedule()

    def _refresh_keys(self, extra: str | None = None) -> None:
        keys = self.model.keys()
        if extra is not None and extra not in keys:
            keys.append(extra)
        self._keys = keys
        current = self.filter.currentData()
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem("All items", None)
        for key in keys:
            self.filter.addItem(self._title_of(key), key)
        self.filter.setCurrentIndex(max(0, self.filter.findData(current)))
        self.filter.blockSignals(False)

    def _on_filter(self, _index: int) -> None:
        self.view.set_key(self.filter.currentData())

    def _on_selected(self, element_id: int | None) -> None:
        element = self.model.elements.get(element_id) if element_id is not None else None
        if element is None:
            self.status.setVisible(self.view.paused)
            return
        self.status.setText(self.model.explain(element))
        self.status.setWordWrap(True)
        self.status.setVisible(True)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the sequence diagram", "sequence.svg", "SVG (*.svg);;PNG (*.png)"
        )
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> None:
        """SVG or PNG by the file's extension; of the item shown, if filtered."""
        width = max(600, self.view.viewport().width())
        key = self.filter.currentData()
        if path.suffix.lower() == ".png":
            export_png(self.model, path, width=width, key=key)
        else:
            export_svg(self.model, path, width=width, key=key)
