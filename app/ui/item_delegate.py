"""Paints one item row (icon, title, status badge, revision, heart) and catches heart clicks.

Rows are painted, not built from widgets, so 1,000 items cost 1,000 cheap
paint calls for the visible rows only. The heart is a hit area of the row.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QHelpEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
    QWidget,
)

from .item_model import ItemRole
from .status_text import badge_help
from .theme import Palette, icon_pixmap, mono_font

__all__ = ["ItemDelegate"]

Index = QModelIndex | QPersistentModelIndex

ROW_HEIGHT = 60
ICON = 36
HEART = 24
HEART_AREA = 44
PAD = 14


class ItemDelegate(QStyledItemDelegate):
    """Row painter; emits ``heartClicked(item_id)`` when the heart is clicked."""

    heartClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title_font = QFont()
        self._title_font.setPointSizeF(10.5)
        self._title_font.setWeight(QFont.Weight.DemiBold)
        self._badge_font = QFont()
        self._badge_font.setPointSizeF(8.0)
        self._badge_font.setWeight(QFont.Weight.DemiBold)
        self._rev_font = mono_font(8.0)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(320, ROW_HEIGHT)

    @staticmethod
    def heart_rect(row: QRect) -> QRect:
        return QRect(
            row.right() - HEART_AREA - 6,
            row.top() + (row.height() - HEART_AREA) // 2,
            HEART_AREA,
            HEART_AREA,
        )

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rect: QRect = option.rect
        state: QStyle.StateFlag = option.state
        ratio = painter.device().devicePixelRatioF()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)

        if state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, Palette.row_selected)
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect, Palette.row_hover)
        if state & QStyle.StateFlag.State_HasFocus:
            painter.fillRect(
                QRect(rect.left(), rect.top() + 8, 3, rect.height() - 16), Palette.focus
            )
        painter.setPen(QPen(Palette.line, 1))
        painter.drawLine(rect.left() + PAD, rect.bottom(), rect.right() - PAD, rect.bottom())

        icon_top = rect.top() + (rect.height() - ICON) // 2
        painter.drawPixmap(
            QPoint(rect.left() + PAD, icon_top),
            icon_pixmap(str(index.data(ItemRole.ICON)), ICON, ratio),
        )

        text_left = rect.left() + PAD + ICON + 12
        heart = self.heart_rect(rect)
        text_width = heart.left() - text_left - 8
        painter.setFont(self._title_font)
        painter.setPen(Palette.text)
        title_metrics = QFontMetrics(self._title_font)
        title = title_metrics.elidedText(str(index.data()), Qt.TextElideMode.ElideRight, text_width)
        painter.drawText(
            QRect(text_left, rect.top() + 9, text_width, title_metrics.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            title,
        )

        badge_bottom = rect.bottom() - 9
        label, color = index.data(ItemRole.BADGE)
        badge_right = self._paint_badge(painter, text_left, badge_bottom, label, color)
        revision = int(index.data(ItemRole.REVISION) or 0)
        painter.setFont(self._rev_font)
        painter.setPen(Palette.faint)
        rev_metrics = QFontMetrics(self._rev_font)
        painter.drawText(
            QRect(badge_right + 8, badge_bottom - 18, text_left + text_width - badge_right - 8, 18),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            rev_metrics.elidedText(
                f"rev {revision}" if revision > 0 else "rev –",
                Qt.TextElideMode.ElideRight,
                max(0, text_left + text_width - badge_right - 8),
            ),
        )

        liked = bool(index.data(ItemRole.LIKED))
        name = "heart-filled.svg" if liked else "heart-outline.svg"
        painter.drawPixmap(
            QPoint(
                heart.left() + (HEART_AREA - HEART) // 2, heart.top() + (HEART_AREA - HEART) // 2
            ),
            icon_pixmap(name, HEART, ratio),
        )
        painter.restore()

    def _paint_badge(
        self, painter: QPainter, left: int, bottom: int, label: str, color: QColor
    ) -> int:
        """A tinted pill with a dot; returns its right edge."""
        metrics = QFontMetrics(self._badge_font)
        width = metrics.horizontalAdvance(label) + 22
        pill = QRect(left, bottom - 18, width, 18)
        tint = QColor(color)
        tint.setAlpha(28)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(tint)
        painter.drawRoundedRect(pill, 9, 9)
        painter.setBrush(color)
        painter.drawEllipse(QRect(pill.left() + 7, pill.center().y() - 2, 5, 5))
        painter.setFont(self._badge_font)
        painter.setPen(color.darker(115))
        painter.drawText(pill.adjusted(15, 0, -5, 0), Qt.AlignmentFlag.AlignCenter, label)
        return pill.right()

    def region_at(self, row: QRect, point: QPoint, index: Index) -> str:
        """Which part of a row ``point`` is over: heart, badge, revision or row."""
        if self.heart_rect(row).contains(point):
            return "heart"
        label, _color = index.data(ItemRole.BADGE)
        text_left = row.left() + PAD + ICON + 12
        width = QFontMetrics(self._badge_font).horizontalAdvance(label) + 22
        bottom = row.bottom() - 9
        if bottom - 18 <= point.y() <= bottom:
            if text_left <= point.x() <= text_left + width:
                return "badge"
            if text_left + width < point.x() <= text_left + width + 70:
                return "revision"
        return "row"

    def tooltip(self, region: str, index: Index) -> str:
        """Words for the part of a row under the mouse."""
        title = str(index.data())
        liked = bool(index.data(ItemRole.LIKED))
        if region == "heart":
            action = "Unlike" if liked else "Like"
            return (
                f"{action} {title}: shown at once, sent to the server in the background. "
                "Click quickly many times: only the final value is sent (coalescing). "
                "Keyboard: Space on the focused row."
            )
        if region == "badge":
            label, _color = index.data(ItemRole.BADGE)
            return f"{label}: {badge_help(label)}"
        if region == "revision":
            revision = int(index.data(ItemRole.REVISION) or 0)
            if revision <= 0:
                return "Server revision: none yet, the server has never stored this item."
            return (
                f"Server revision {revision}: the server's write counter when it stored the "
                "value shown. Anything older that arrives later is ignored."
            )
        return f"{title}: {'liked' if liked else 'not liked'}. Hover the heart, badge or rev."

    def helpEvent(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        if event is None or not index.isValid():
            return False
        region = self.region_at(option.rect, event.pos(), index)
        QToolTip.showText(event.globalPos(), self.tooltip(region, index), view)
        return True

    def editorEvent(
        self, event: QEvent, model: Any, option: QStyleOptionViewItem, index: Index
    ) -> bool:
        # A quick second click arrives as a double-click, not as a release: it is
        # a tap all the same (rapid taps are what coalescing is for).
        if (
            event.type() in (QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick)
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
            and self.heart_rect(option.rect).contains(event.position().toPoint())
        ):
            self.heartClicked.emit(str(index.data(ItemRole.ID)))
            return True
        return super().editorEvent(event, model, option, index)
