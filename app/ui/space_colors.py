"""One colour per space, the same in every window: chips, diagram lanes, server tables.

The default space keeps the app's indigo. The spaces the demo was started with
take the other colours in command-line order, most distinct first (teal, then
orange, ...), so two spaces never look alike. A space seen only on the server
(another process's) gets a free colour chosen by its name's hash.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from .space_names import DEFAULT_SPACE

__all__ = ["SPACE_TONES", "SpaceTone", "register_spaces", "space_icon", "space_tone"]


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
    _tone("#E0702A", "#FDEDE2", "#9A4512"),  # orange
    _tone("#C93F8A", "#FBE7F2", "#8E2460"),  # magenta
    _tone("#4E9A2C", "#EAF5E3", "#356B1D"),  # green
    _tone("#8B5CF6", "#F1EBFF", "#5B32C4"),  # violet
    _tone("#1C8FD6", "#E3F2FC", "#12649A"),  # sky
    _tone("#B0862A", "#F8F0DC", "#7A5B14"),  # ochre
)

_taken: dict[str, int] = {DEFAULT_SPACE: 0}


def _preferred(name: str) -> int:
    return 1 + zlib.crc32(name.encode("utf-8")) % (len(SPACE_TONES) - 1)


def register_spaces(names: list[str] | tuple[str, ...]) -> None:
    """Give ``names`` (not yet coloured) the free colours in order, most distinct first."""
    for name in names:
        if name not in _taken:
            used = set(_taken.values())
            free = [i for i in range(1, len(SPACE_TONES)) if i not in used]
            _taken[name] = free[0] if free else _preferred(name)


def space_tone(name: str) -> SpaceTone:
    """The colours of space ``name`` (the same for the whole process)."""
    index = _taken.get(name)
    if index is None:
        used = set(_taken.values())
        start, count = _preferred(name), len(SPACE_TONES) - 1
        candidates = [1 + (start - 1 + step) % count for step in range(count)]
        index = next((i for i in candidates if i not in used), start)
        _taken[name] = index
    return SPACE_TONES[index]


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
