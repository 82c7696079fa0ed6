"""Small building blocks shared by the windows: stat tiles, status pills, avatars."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["Avatar", "Pill", "StatTile", "repolish"]


def repolish(widget: QWidget) -> None:
    """Re-apply the stylesheet after a dynamic property used by a selector changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)
    widget.update()


class StatTile(QFrame):
    """A big number over a small caption."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statTile")
        self.value = QLabel("0")
        self.value.setObjectName("statValue")
        self.caption = QLabel(caption)
        self.caption.setObjectName("statCaption")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(9, 7, 9, 7)
        layout.setSpacing(0)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)

    def set_value(self, text: str) -> None:
        if self.value.text() != text:
            self.value.setText(text)


class Pill(QLabel):
    """A rounded label whose colour follows its ``tone`` property (see style.qss).

    Its text never sets the window's minimum width: it asks for its whole text
    when there is room and is elided (…) when there is not, never narrower than
    ``min_chars`` average characters. :attr:`full_text` keeps the words.
    """

    def __init__(
        self,
        text: str = "",
        tone: str = "neutral",
        parent: QWidget | None = None,
        *,
        min_chars: int = 8,
    ) -> None:
        super().__init__(text, parent)
        self.setObjectName("pill")
        self.setProperty("tone", tone)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.full_text = text
        self._min_chars = min_chars

    def set(self, text: str, tone: str) -> None:
        if self.full_text != text:
            self.full_text = text
            self._elide()
            self.updateGeometry()
        if self.property("tone") != tone:
            self.setProperty("tone", tone)
            repolish(self)

    def _margins(self) -> int:
        margins = self.contentsMargins()
        return margins.left() + margins.right() + 2 * self.margin() + 2 * self.indent() + 2

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        width = self.fontMetrics().horizontalAdvance(self.full_text) + self._margins()
        return QSize(max(width, self.minimumSizeHint().width()), hint.height())

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        width = self.fontMetrics().averageCharWidth() * self._min_chars + self._margins()
        return QSize(width, hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width() - 2 * self.margin() - 2
        shown = self.fontMetrics().elidedText(self.full_text, Qt.TextElideMode.ElideRight, room)
        if self.text() != shown:
            self.setText(shown)


class Avatar(QLabel):
    """A round badge with a device's letter."""

    def __init__(self, letter: str, parent: QWidget | None = None) -> None:
        super().__init__(letter, parent)
        self.setObjectName("avatar")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFixedSize(40, 40)
