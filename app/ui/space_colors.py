"""One colour per space, the same in every window and every process.

The default space keeps the app's indigo. Any other space takes a colour by
a hash of its name (MD5, not Python's per-process ``hash``), so a space looks
the same in every demo process that shows it, whatever order its spaces were
named in. With seven colours for the other spaces two names can share one;
the chips and lane headers always print the name as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from .space_names import DEFAULT_SPACE

__all__ = ["SPACE_TONES", "SpaceTone", "space_icon", "space_tone", "tone_index"]


@dataclass(frozen=True, slots=True)
class SpaceTone:
    """``accent`` for lines and dots, ``fill`` for a chip's background, ``ink`` for its text."""

    accent: QColor
    fill: QColor
    ink: QColor


def _tone(accent: str, fill: str, ink: str) -> SpaceTone:
    return SpaceTone(QColor(accent), QColor(fill), QColor(ink))


SPACE_TONES: tuple[SpaceTone, ...] = (
    _tone("#5B6CF0", "#EEF0FF", "#3A47C8"),  # indigo: the default space
    _tone("#0E9F8E", "#E1F5F2", "#0B6B60"),  # teal
    _tone("#1C8FD6", "#E3F2FC", "#12649A"),  # sky
    _tone("#C93F8A", "#FBE7F2", "#8E2460"),  # magenta
    _tone("#4E9A2C", "#EAF5E3", "#356B1D"),  # green
    _tone("#8B5CF6", "#F1EBFF", "#5B32C4"),  # violet
    _tone("#E0702A", "#FDEDE2", "#9A4512"),  # orange
    _tone("#B0862A", "#F8F0DC", "#7A5B14"),  # ochre
)


def tone_index(name: str) -> int:
    """Which of :data:`SPACE_TONES` space ``name`` wears: 0 for the default space,
    else one of the others chosen by the name's MD5 (stable across processes)."""
    if name == DEFAULT_SPACE:
        return 0
    digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()
    return 1 + int.from_bytes(digest[:4], "big") % (len(SPACE_TONES) - 1)


def space_tone(name: str) -> SpaceTone:
    """The colours of space ``name``: a function of the name alone."""
    return SPACE_TONES[tone_index(name)]


def space_icon(name: str, size: int = 12) -> QIcon:
    """A dot in the space's colour, for menus and combo boxes."""
    tone = space_tone(name)
    pixmap = QPixmap(size * 2, size * 2)
    pixmap.setDevicePixelRatio(2.0)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(tone.accent)
    painter.setBrush(tone.fill)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.setBrush(tone.accent)
    painter.drawEllipse(3, 3, size - 6, size - 6)
    painter.end()
    return QIcon(pixmap)
