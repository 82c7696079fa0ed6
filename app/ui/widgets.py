"""Small building blocks shared by the windows: stat tiles, status pills, avatars."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

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
    """A rounded label whose colour follows its ``tone`` property (see style.qss)."""

    def __init__(
        self, text: str = "", tone: str = "neutral", parent: QWidget | None = None
    ) -> None:
        super().__init__(text, parent)
        self.setObjectName("pill")
        self.setProperty("tone", tone)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def set(self, text: str, tone: str) -> None:
        if self.text() != text:
            self.setText(text)
        if self.property("tone") != tone:
            self.setProperty("tone", tone)
            repolish(self)


class Avatar(QLabel):
    """A round badge with a device's letter."""

    def __init__(self, letter: str, parent: QWidget | None = None) -> None:
        super().__init__(letter, parent)
        self.setObjectName("avatar")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFixedSize(40, 40)
