"""Draw the benchmark ratios as PNG bar charts with Qt, so no plotting library is needed.

Higher-is-better ratios (throughput against its ceiling: 1 is the ceiling,
the target is a floor) and lower-is-better ratios (time or size against its
ceiling: 1 is the ceiling, the target is a cap) read in opposite directions,
so they get a chart each, one above the other in the same image, each with its
own axis.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.perf.report import Row

__all__ = ["draw_chart"]

WIDTH = 1100
ROW_HEIGHT = 26
MARGIN = 24
LABEL_WIDTH = 480
TITLE_HEIGHT = 34
LEGEND_HEIGHT = 30


def _charted(rows: Sequence[Row], lower_is_better: bool) -> list[Row]:
    return [
        row
        for row in rows
        if row.ratio is not None
        and row.target is not None
        and row.lower_is_better is lower_is_better
    ]


def _section_height(count: int) -> int:
    return TITLE_HEIGHT + ROW_HEIGHT * count + LEGEND_HEIGHT if count else 0


def draw_chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """Two bar charts, higher-is-better then lower-is-better: each figure with a
    target as its ratio to its ceiling, the target marked."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter

    _app = QGuiApplication.instance() or QGuiApplication([])
    higher, lower = _charted(rows, False), _charted(rows, True)
    height = MARGIN * 2 + TITLE_HEIGHT + _section_height(len(higher))
    height += _section_height(len(lower)) + (MARGIN if higher and lower else 0)
    image = QImage(WIDTH, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont("DejaVu Sans", 10)
    bold = QFont(font)
    bold.setBold(True)
    bold.setPointSize(12)
    painter.setFont(bold)
    painter.setPen(QColor("#1f2933"))
    painter.drawText(MARGIN, MARGIN + 8, f"{title} ({os.cpu_count()} cores): ratio to ceiling")
    top = MARGIN + TITLE_HEIGHT
    if higher:
        heading = "Higher is better (throughput ÷ ceiling; the target is a floor)"
        top = _draw_section(painter, font, higher, top, heading) + MARGIN
    if lower:
        heading = "Lower is better (time or size ÷ ceiling; the target is a cap)"
        _draw_section(painter, font, lower, top, heading)
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(str(path))


def _draw_section(painter: Any, font: Any, rows: list[Row], top: int, heading: str) -> int:
    """One chart with its own axis; returns where the next one may start."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QPen

    heading_font = QFont(font)
    heading_font.setBold(True)
    painter.setFont(heading_font)
    painter.setPen(QColor("#1f2933"))
    painter.drawText(MARGIN, top + 18, heading)
    painter.setFont(font)
    top += TITLE_HEIGHT
    floor = 2.0 if rows[0].lower_is_better else 1.25
    scale_max = max([floor] + [min(max(row.ratio or 0, row.target or 0), 12.0) for row in rows])
    bar_left = MARGIN + LABEL_WIDTH
    bar_width = WIDTH - bar_left - MARGIN - 60
    one_x = bar_left + bar_width / scale_max
    for index, row in enumerate(rows):
        row_top = top + ROW_HEIGHT * index
        assert row.ratio is not None
        assert row.target is not None
        painter.setPen(QColor("#1f2933"))
        painter.drawText(
            QRectF(MARGIN, row_top, LABEL_WIDTH - 12, ROW_HEIGHT),
            int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight),
            row.name,
        )
        ratio = min(row.ratio, scale_max)
        colour = QColor("#2f9e44") if row.met else QColor("#e03131")
        painter.fillRect(
            QRectF(bar_left, row_top + 5, bar_width * ratio / scale_max, ROW_HEIGHT - 10), colour
        )
        target_x = bar_left + bar_width * min(row.target, scale_max) / scale_max
        painter.setPen(QPen(QColor("#1f2933"), 2, Qt.PenStyle.DashLine))
        painter.drawLine(int(target_x), row_top + 2, int(target_x), row_top + ROW_HEIGHT - 2)
        painter.setPen(QColor("#1f2933"))
        painter.drawText(
            QRectF(bar_left + bar_width + 8, row_top, 60, ROW_HEIGHT),
            int(Qt.AlignmentFlag.AlignVCenter),
            f"{row.ratio:.2f}",
        )
    bottom = top + ROW_HEIGHT * len(rows)
    painter.setPen(QPen(QColor("#868e96"), 1, Qt.PenStyle.DotLine))
    painter.drawLine(int(one_x), top, int(one_x), bottom)
    painter.setPen(QColor("#1f2933"))
    painter.drawText(
        bar_left,
        bottom + 18,
        "green: target met   red: missed   dashed: target   dotted: the ceiling (1.0)",
    )
    return bottom + LEGEND_HEIGHT
