"""The legend and help panel (F1): badges, revisions, local revisions, the diagram, shortcuts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .sequence_view import LEGEND, LEGEND_NAMES, legend_color
from .status_text import BADGE_HELP
from .theme import Palette

__all__ = ["BADGE_HELP", "HelpDialog", "help_html"]


# The app's type scale and colours inside the help text (see assets/style.qss).
HELP_CSS = f"""
h3 {{ color: {Palette.text.name()}; font-size: 11pt; margin-top: 14px; margin-bottom: 4px; }}
p, td {{ color: #3A4150; }}
td {{ padding: 2px 6px 2px 0; vertical-align: top; }}
"""


def help_html() -> str:
    badges = "".join(
        f"<tr><td><b>{name}</b></td><td>{text}</td></tr>" for name, text in BADGE_HELP.items()
    )
    diagram = "".join(
        f"<tr><td><b style='color:{legend_color(kind).name()}'>{glyph} "
        f"{LEGEND_NAMES.get(kind, kind)}</b></td><td>{text}</td></tr>"
        for glyph, kind, text in LEGEND
    )
    return f"""
<h3>Badges</h3><table cellspacing=4>{badges}</table>
<h3>Spaces</h3>
<p>A <b>space</b> (an account, a document, a room) is a set of values of its own: each
device joins one, shown by the coloured chip beside its name, and sees only the writes of
its space, so a tap in one space never reaches a device in another. <code>python -m app
--spaces family,work</code> puts the device windows in turn in each space.</p>
<h3>Revisions</h3>
<p><b>rev N</b> (server revision): the server counts every write it stores, across all
items and spaces: 1, 2, 3, … A device shows the newest revision it knows for each item and ignores
anything older, so late or repeated messages never undo a newer write.</p>
<p><b>local rev</b> (L in the diagram): each device counts its own changes per item. A
request carries the local rev of the value it sends, so when the answer comes back the
device can tell whether you changed the value since (then a follow-up goes out) and
recognise the echo of its own older request.</p>
<h3>Sequence diagram</h3>
<p>One lane per device and one for the server; time flows down, idle stretches are cut
short. Each lane's header names its device's space; with several spaces, lanes and the
server's stored writes take their space's colour. Taps carried by one request are
bracketed together. Hover anything for an explanation; click a write to light it up on
every lane.</p>
<table cellspacing=4>{diagram}</table>
<h3>Shortcuts</h3>
<table cellspacing=4>
<tr><td><b>Ctrl+N</b></td><td>Add device</td></tr>
<tr><td><b>Ctrl+W</b></td><td>Close the window (a device keeps its state)</td></tr>
<tr><td><b>Ctrl+Q</b></td><td>Quit</td></tr>
<tr><td><b>Ctrl+D</b></td><td>Sequence diagram</td></tr>
<tr><td><b>Ctrl+T</b>, <b>Ctrl+L</b></td><td>Show or hide the device window's timeline;
clear it</td></tr>
<tr><td><b>Ctrl+R</b></td><td>Reset stats</td></tr>
<tr><td><b>Ctrl+F</b></td><td>Filter the items</td></tr>
<tr><td><b>↑ ↓</b>, <b>Space</b>, <b>Enter</b></td><td>Move through the items (in the list
or the filter box); like or unlike the current one (Enter in the filter box)</td></tr>
<tr><td><b>F1</b></td><td>This help</td></tr>
</table>
"""


class HelpDialog(QDialog):
    """A non-modal window with :func:`help_html`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("helpDialog")
        self.setWindowTitle("Legend and help — optisync")
        self.setModal(False)
        self.resize(520, 620)
        title = QLabel("Legend and help")
        title.setObjectName("windowTitle")
        self.browser = QTextBrowser()
        self.browser.setObjectName("helpBrowser")
        self.browser.setOpenExternalLinks(False)
        self.browser.document().setDefaultStyleSheet(HELP_CSS)
        self.browser.setHtml(help_html())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 14)
        layout.setSpacing(10)
        layout.addWidget(title)
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setToolTip("Close the help (Esc)")
        layout.addWidget(buttons)
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
