"""Small building blocks shared by the windows: stat tiles, status pills, avatars."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QFrame,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .space_colors import space_tone

__all__ = [
    "Avatar",
    "Note",
    "Pill",
    "SpaceChip",
    "StatTile",
    "make_searchable",
    "repolish",
    "space_tip",
]


def repolish(widget: QWidget) -> None:
    """Re-apply the stylesheet after a dynamic property used by a selector changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)
    widget.update()


MAX_VISIBLE_CHOICES = 15


def make_searchable(combo: QComboBox) -> None:
    """Let a long choice list be typed into (any part of a title, any case) and open
    as a bounded, scrolling popup rather than a screen-high list."""
    combo.setEditable(True)
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    combo.setMaxVisibleItems(MAX_VISIBLE_CHOICES)
    completer = QCompleter(combo.model(), combo)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
    completer.setMaxVisibleItems(MAX_VISIBLE_CHOICES)
    combo.setCompleter(completer)
    line = combo.lineEdit()
    assert line is not None  # editable combos have one
    line.setPlaceholderText("Type to search")
    line.setToolTip(combo.toolTip())

    def settle() -> None:
        # A typed title chooses its item; text that names none shows the current one again.
        found = combo.findText(line.text(), Qt.MatchFlag.MatchFixedString)
        if found >= 0:
            combo.setCurrentIndex(found)
        line.setText(combo.itemText(combo.currentIndex()))

    line.editingFinished.connect(settle)


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
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(0)
        layout.addWidget(self.value)
        layout.addWidget(self.caption)

    def set_value(self, text: str) -> None:
        if self.value.text() != text:
            self.value.setText(text)


class Pill(QLabel):
    """A rounded label whose colour follows its ``tone`` property (see style.qss).

    Its text never sets the window's minimum width: it asks for its whole text
    when there is room; when there is not it shows the longest of the shorter
    wordings given to :meth:`set` that fits, else elides (…) the shortest. It is
    never narrower than ``min_text``. :attr:`full_text` keeps the whole words.
    """

    def __init__(
        self,
        text: str = "",
        tone: str = "neutral",
        parent: QWidget | None = None,
        *,
        min_text: str = "Online",
    ) -> None:
        super().__init__(text, parent)
        self.setObjectName("pill")
        self.setProperty("tone", tone)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.full_text = text
        self._wordings: tuple[str, ...] = (text,)
        self._min_text = min_text

    def set(self, text: str, tone: str, *shorter: str) -> None:
        """Show ``text`` (or, when it does not fit, the first of ``shorter`` that does)."""
        if self._wordings != (text, *shorter):
            self.full_text = text
            self._wordings = (text, *shorter)
            self._fit()
            self.updateGeometry()
        if self.property("tone") != tone:
            self.setProperty("tone", tone)
            repolish(self)

    def _padding(self) -> int:
        margins = self.contentsMargins()
        return margins.left() + margins.right() + 2 * self.margin() + 4

    def sizeHint(self) -> QSize:
        width = self.fontMetrics().horizontalAdvance(self.full_text) + self._padding()
        return QSize(max(width, self.minimumSizeHint().width()), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        width = self.fontMetrics().horizontalAdvance(self._min_text) + self._padding()
        return QSize(width, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        room = self.width() - self._padding()
        shown = next(
            (words for words in self._wordings if metrics.horizontalAdvance(words) <= room),
            None,
        )
        if shown is None:
            shown = metrics.elidedText(self._wordings[-1], Qt.TextElideMode.ElideRight, room)
        if self.text() != shown:
            self.setText(shown)


class Note(QLabel):
    """A one-line message that takes the same room shown or not, and clears itself.

    The line is always there (empty when there is nothing to say), so news never
    moves the widgets below it; a long message is elided, with the whole of it in
    the tooltip, and it clears ``clear_after_ms`` after it was said.
    """

    def __init__(self, parent: QWidget | None = None, *, clear_after_ms: int = 8000) -> None:
        super().__init__("", parent)
        self.full_text = self._shown = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 2)
        self._clear = QTimer(self)
        self._clear.setSingleShot(True)
        self._clear.setInterval(clear_after_ms)
        self._clear.timeout.connect(lambda: self.say(""))

    def say(self, text: str, short: str | None = None) -> None:
        """Say ``text`` (shown as ``short`` when given; the tooltip has all of it)."""
        self.full_text = text
        self._shown = text if short is None else short
        self.setToolTip(text)
        self._elide()
        if text:
            self._clear.start()

    def set_clear_after(self, ms: int) -> None:
        self._clear.setInterval(ms)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.setFixedHeight(self.fontMetrics().height() + 2)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(
            self._shown, Qt.TextElideMode.ElideRight, max(0, self.contentsRect().width())
        )
        if self.text() != shown:
            self.setText(shown)


class Avatar(QLabel):
    """A round badge with a device's letter."""

    def __init__(
        self, letter: str, parent: QWidget | None = None, *, space: str | None = None
    ) -> None:
        super().__init__(letter, parent)
        self.setObjectName("avatar")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFixedSize(40, 40)
        if space is not None:
            # Devices of one space share a colour, so a glance groups the windows.
            accent = space_tone(space).accent
            self.setStyleSheet(
                "QLabel#avatar { background: qlineargradient(x1:0, y1:0, x2:1, y2:1, "
                f"stop:0 {accent.lighter(118).name()}, stop:1 {accent.darker(118).name()}); }}"
            )


SPACE_CHIP_MAX_WIDTH = 150
SPACE_CHIP_MIN_TEXT = "family-wo…"
"""How much of a long space name a chip keeps when the window is at its narrowest."""


def space_tip(space: str, who: str = "This device") -> str:
    """What a space chip's tooltip says."""
    return (
        f"Space {space!r}: {who} syncs the items of this space only. A write reaches the "
        "devices in the same space and never those in another (each space is its own set "
        "of values on the server)."
    )


class SpaceChip(QLabel):
    """A small rounded label with a space's name, in that space's colours.

    It asks for the whole name (up to :data:`SPACE_CHIP_MAX_WIDTH`) and gives
    room back down to a few letters, eliding (…) what does not fit: a long
    name never widens the window. The tooltip has the whole name.
    """

    def __init__(self, space: str, parent: QWidget | None = None, *, who: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("spaceChip")
        self.space = space
        tone = space_tone(space)
        self.setStyleSheet(
            f"QLabel#spaceChip {{ background: {tone.fill.name()}; color: {tone.ink.name()};"
            f" border: 1px solid {tone.accent.name()}; border-radius: 9px;"
            " padding: 0px 7px; font-weight: 600; font-size: 8pt; }"
        )
        self.setFixedHeight(20)  # rounded needs the radius to be at most half the height
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setToolTip(space_tip(space, who or "This device"))
        self.setAccessibleName(f"Space {space}")
        self.ensurePolished()
        self._fit(SPACE_CHIP_MAX_WIDTH)

    def _padding(self) -> int:
        margins = self.contentsMargins()
        return margins.left() + margins.right() + 4  # the stylesheet's padding and border

    def sizeHint(self) -> QSize:
        # Rounded up: elidedText measures in fractions of a pixel.
        width = self.fontMetrics().horizontalAdvance(self.space) + self._padding() + 2
        return QSize(min(width, SPACE_CHIP_MAX_WIDTH), 20)

    def minimumSizeHint(self) -> QSize:
        # A short name is always shown whole; a long one gives room down to a few letters.
        shortest = self.fontMetrics().horizontalAdvance(SPACE_CHIP_MIN_TEXT) + self._padding()
        return QSize(min(shortest, self.sizeHint().width()), 20)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit(self.width())

    def _fit(self, width: int) -> None:
        room = max(0, width - self._padding())
        shown = self.fontMetrics().elidedText(self.space, Qt.TextElideMode.ElideRight, room)
        if self.text() != shown:
            self.setText(shown)
