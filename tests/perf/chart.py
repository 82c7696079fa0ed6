"""Draw the benchmark ratios as a PNG bar chart with Qt, so no plotting library is needed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tests.perf.report import Row

__all__ = ["draw_chart"]

WIDTH = 1100
ROW_HEIGHT = 26
MARGIN = 24
LABEL_WIDTH = 430


def draw_chart(rows: Sequence[Row], path: Path, title: str) -> None:
    """One bar per figure with a target: its ratio to the ceiling, the target marked."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

    _app = QGuiApplication.instance() or QGuiApplication([])
    charted = [row for row in rows if row.ratio is not None and row.target is not None]
    height = MARGIN * 3 + ROW_HEIGHT * (len(charted) + 1)
    image = QImage(WIDTH, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont("DejaVu Sans", 10)
    painter.setFont(font)
    painter.setPen(QColor("#1f2933"))
    bold = QFont(font)
    bold.setBold(True)
    bold.setPointSize(12)
    painter.setFont(bold)
    painter.drawText(MARGIN, MARGIN + 4, f"{title} ({os.cpu_count()} cores): ratio to ceiling")
    painter.setFont(font)
    scale_max = max([2.0] + [min(max(row.ratio or 0, row.target or 0), 12.0) for row in charted])
    bar_left = MARGIN + LABEL_WIDTH
    bar_width = WIDTH - bar_left - MARGIN - 60
    for index, row in enumerate(charted):
        top = MARGIN * 2 + ROW_HEIGHT * index
        assert row.ratio is not None
        assert row.target is not None
        painter.setPen(QColor("#1f2933"))
        painter.drawText(
            QRectF(MARGIN, top, LABEL_WIDTH - 12, ROW_HEIGHT),
            int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight),
            row.name,
        )
        ratio = min(row.ratio, scale_max)
        colour = QColor("#2f9e44") if row.met else QColor("#e03131")
        painter.fillRect(
            QRectF(bar_left, top + 5, bar_width * ratio / scale_max, ROW_HEIGHT - 10), colour
        )
        target_x = bar_left + bar_width * min(row.target, scale_max) / scale_max
        painter.setPen(QPen(QColor("#1f2933"), 2, Qt.PenStyle.DashLine))
        painter.drawLine(int(target_x), top + 2, int(target_x), top + ROW_HEIGHT - 2)
        painter.setPen(QColor("#1f2933"))
        painter.drawText(
            QRectF(bar_left + bar_width + 8, top, 60, ROW_HEIGHT),
            int(Qt.AlignmentFlag.AlignVCenter),
            f"{row.ratio:.2f}",
        )
    legend_top = MARGIN * 2 + ROW_HEIGHT * len(charted) + 8
    painter.drawText(
        bar_left,
        legend_top + 14,
        "green: target met   red: missed   dashed line: target ratio",
    )
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(str(path))
