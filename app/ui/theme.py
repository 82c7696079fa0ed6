"""Colours, fonts, the stylesheet and cached SVG pixmaps shared by every window."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from app.link.catalogue import ASSETS_DIR

__all__ = [
    "ASSETS",
    "Palette",
    "app_icon",
    "apply_theme",
    "asset",
    "icon_pixmap",
    "mono_font",
]

ASSETS = ASSETS_DIR
"""The packaged assets folder: catalogue, icons, stylesheet."""


class Palette:
    """The few colours the painted (non-stylesheet) parts use, kept in one place."""

    text = QColor("#1F2430")
    muted = QColor("#6B7280")
    faint = QColor("#9AA3AE")
    line = QColor("#E6E8EE")
    row_hover = QColor("#F5F7FF")
    row_selected = QColor("#EBEEFF")
    focus = QColor("#5B6CF0")
    accent = QColor("#5B6CF0")
    synced = QColor("#1E9E6A")
    saving = QColor("#D98A00")
    follow_up = QColor("#7C5CE0")
    failed = QColor("#D93A3A")
    overridden = QColor("#1C8FD6")
    online = QColor("#1E9E6A")
    connecting = QColor("#D98A00")
    offline = QColor("#D93A3A")


def asset(name: str) -> Path:
    """A file in assets/ or, for bare icon names, assets/icons/."""
    direct = ASSETS / name
    return direct if direct.exists() else ASSETS / "icons" / name


@lru_cache(maxsize=256)
def icon_pixmap(name: str, size: int, ratio: float = 1.0) -> QPixmap:
    """An SVG asset rendered once per size (painting 1,000 rows must not re-parse SVG)."""
    pixels = max(1, round(size * ratio))
    image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(str(asset(name)))
    if renderer.isValid():
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, pixels, pixels))
        painter.end()
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addPixmap(icon_pixmap("app-icon.svg", size))
    return icon


def mono_font(point_size: float = 9.0) -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(point_size)
    return font


def apply_theme(app: QApplication) -> None:
    """Fusion style (the same on every platform), our font, stylesheet and icon."""
    app.setStyle("Fusion")
    font = QFont("DejaVu Sans")
    font.setStyleHint(QFont.StyleHint.SansSerif)
    font.setPointSizeF(9.5)
    app.setFont(font)
    app.setWindowIcon(app_icon())
    sheet = (ASSETS / "style.qss").read_text(encoding="utf-8")
    app.setStyleSheet(sheet.replace("@ICONS", (ASSETS / "icons").as_posix()))
