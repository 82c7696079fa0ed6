"""The running demo: the embedded server, the device windows and their lifecycles.

:class:`Demo` owns every resource (server, sessions, windows) so the entry
point can create it in its boot coroutine and close it on the way out.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import string
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.link import CatalogueItem, DeviceInUseError, load_catalogue

from .bridge import DeviceBridge
from .device_window import DeviceWindow
from .directory import DeviceDirectory
from .help import HelpDialog
from .sequence_feed import SequenceRecorder
from .sequence_window import SequenceWindow
from .server_bridge import ServerBridge
from .server_window import ServerWindow
from .space_colors import register_spaces
from .space_names import DEFAULT_SPACE, space_of

__all__ = ["Demo", "device_index", "device_name", "extend_catalogue", "keep_on_screen"]

GAP = 12
DEVICE_WIDTH = 440
SERVER_WIDTH = 520
MIN_DEVICE_WIDTH = 380
MIN_SERVER_WIDTH = 440
HEIGHT = 760
TITLE_BAR = 32
CASCADE = 32


def device_name(index: int) -> str:
    """Stable names, so a device's persisted state is found again: Device A, B, ..."""
    letters = string.ascii_uppercase
    return f"Device {letters[index]}" if index < len(letters) else f"Device {index + 1}"


def extend_catalogue(base: Sequence[CatalogueItem], count: int) -> tuple[CatalogueItem, ...]:
    """``count`` items: the catalogue, then numbered copies cycling its icons."""
    items = list(base[:count])
    for n in itertools.count(2):
        if len(items) >= count:
            break
        for item in base:
            if len(items) >= count:
                break
            items.append(CatalogueItem(f"{item.id}-{n}", f"{item.title} #{n}", item.icon))
    return tuple(items)


def _collect_widgets() -> None:
    """Free closed windows now, on the GUI thread.

    Widgets kept alive only by reference cycles (signal connections to
    lambdas) would otherwise be freed whenever the garbage collector next runs,
    which may be on a worker thread (the link's store writer, an executor), and
    destroying a QWidget off the GUI thread crashes.
    """
    gc.collect()


class Demo(QObject):
    """Server window (when the server is embedded) plus one window per device."""

    deviceOpened = Signal(object)
    deviceClosed = Signal(str)

    def __init__(
        self,
        *,
        data_dir: Path,
        server_urls: Sequence[str] = (),
        latency_ms: int = 600,
        items: int | None = None,
        spaces: Sequence[str] = (DEFAULT_SPACE,),
        request_timeout: float = 10.0,
        token: str | None = None,
        cafile: Path | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.spaces = tuple(spaces) or (DEFAULT_SPACE,)
        register_spaces(self.spaces)  # their colours, in the order given
        self._token = token
        self._cafile = cafile
        base = load_catalogue()
        self.catalogue = extend_catalogue(base, items) if items is not None else base
        self.directory = DeviceDirectory()
        self.request_timeout = request_timeout
        self.server: ServerBridge | None = None
        self.server_window: ServerWindow | None = None
        self._urls = list(server_urls)
        if not self._urls:
            self.server = ServerBridge(data_dir / "server.sqlite3", latency_ms=latency_ms)
        self.windows: list[DeviceWindow] = []
        self._titles = {item.id: item.title for item in self.catalogue}
        self.recorder = SequenceRecorder(self.directory, self, title_of=self._title_of_key)
        self.sequence_window: SequenceWindow | None = None
        self.help_dialog: HelpDialog | None = None
        self._places: dict[str, QRect] = {}  # where each device's window was last
        self._opening: set[str] = set()
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._in_use_elsewhere: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def server_urls(self) -> list[str]:
        return [self.server.url] if self.server is not None else list(self._urls)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self, devices: int) -> None:
        """Start the embedded server (if any) and open ``devices`` device windows."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.server is not None:
            await self.server.start()
            self.recorder.watch_server(self.server)
            self.server.stateChanged.connect(
                lambda state: self.directory.learn(d.device_id for d in state.devices)
            )
            self.server_window = ServerWindow(
                self.server,
                self.catalogue,
                self.directory.name,
                recorder=self.recorder,
                spaces=self.spaces,
            )
            self.server_window.addDeviceRequested.connect(self.request_new_device)
            self._connect_menu(self.server_window)
        for _ in range(devices):
            await self.open_device()
        self.arrange()
        for window in self._all_windows():
            window.show()

    async def close(self) -> None:
        """Close every session and the server; persisted state stays for next time."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        windows, self.windows = self.windows, []
        for window in windows:
            window.closeRequested.disconnect(self._on_close_requested)
            window.close()
        await asyncio.gather(*(window.bridge.close() for window in windows))
        others = [*self._extra_windows(), *([self.server_window] if self.server_window else [])]
        for other in others:
            other.close()
        self.server_window = self.sequence_window = self.help_dialog = None
        # Destroyed on the GUI thread with their menus and popups, not left for the collector.
        for widget in [*windows, *others]:
            widget.deleteLater()
        if self.server is not None:
            await self.server.close()
        del windows
        _collect_widgets()

    # -- devices ----------------------------------------------------------------------

    def next_name(self) -> str:
        taken = {window.bridge.name for window in self.windows} | self._opening
        taken |= self._in_use_elsewhere
        return next(name for i in itertools.count() if (name := device_name(i)) not in taken)

    async def open_device(self, name: str | None = None) -> DeviceWindow:
        """Open (or reopen, restoring its state) a device and its window. Without a
        name: the first one free, skipping devices another process has open."""
        if name is not None:
            return await self._open_named(name)
        while True:
            name = self.next_name()
            closing = self._closing.get(name)
            if closing is not None:
                await asyncio.shield(closing)  # closing here: reopen it once closed
            try:
                return await self._open_named(name)
            except DeviceInUseError:
                self._in_use_elsewhere.add(name)

    def space_for(self, name: str) -> str:
        """The space of device ``name``: the devices take turns between the spaces."""
        return space_of(device_index(name), self.spaces)

    async def _open_named(self, name: str) -> DeviceWindow:
        self._opening.add(name)
        try:
            bridge = await DeviceBridge.open(
                name,
                self.server_urls,
                self.directory,
                data_dir=self.data_dir,
                catalogue=self.catalogue,
                request_timeout=self.request_timeout,
                token=self._token,
                cafile=self._cafile,
                space=self.space_for(name),
            )
        finally:
            self._opening.discard(name)
        self.recorder.watch_device(bridge)
        window = DeviceWindow(bridge)
        window.closeRequested.connect(self._on_close_requested)
        window.newDeviceRequested.connect(self.request_new_device)
        self._connect_menu(window)
        self.windows.append(window)
        self.deviceOpened.emit(window)
        return window

    def request_new_device(self) -> None:
        """Slot for "add device": open the next device beside the others."""

        async def add() -> None:
            window = await self.open_device()
            self._place(window)
            window.show()
            window.raise_()

        self._spawn(add())

    def window(self, name: str) -> DeviceWindow:
        return next(window for window in self.windows if window.bridge.name == name)

    def _on_close_requested(self, window: DeviceWindow) -> None:
        if window not in self.windows:
            return
        # The frame's corner and the client's size: what move() and resize() take back.
        self._places[window.bridge.name] = QRect(window.pos(), window.size())
        self.windows.remove(window)

        name = window.bridge.name

        async def close() -> None:
            try:
                await window.bridge.close()
            finally:
                self._closing.pop(name, None)
            self.deviceClosed.emit(name)
            window.deleteLater()
            asyncio.get_running_loop().call_later(0.5, _collect_widgets)

        self._closing[name] = self._spawn(close())

    # -- menus ------------------------------------------------------------------------

    def _connect_menu(self, window: DeviceWindow | ServerWindow | SequenceWindow) -> None:
        window.quitRequested.connect(self.quit)
        window.helpRequested.connect(self.show_help)
        if not isinstance(window, SequenceWindow):
            window.diagramRequested.connect(self.show_sequence)

    def quit(self) -> None:
        """File → Quit: close every window; the app ends when the last one is closed."""
        for window in [*self._extra_windows(), *self.windows, *self._all_windows()]:
            window.close()

    def show_help(self) -> HelpDialog:
        """Help → Legend and help (F1)."""
        if self.help_dialog is None:
            self.help_dialog = HelpDialog()
        self.help_dialog.show()
        self.help_dialog.raise_()
        return self.help_dialog

    def show_sequence(self) -> SequenceWindow:
        """View → Sequence diagram (Ctrl+D): the diagram in a big window of its own."""
        if self.sequence_window is None:
            window = SequenceWindow(self.recorder, self._title_of_key)
            window.newDeviceRequested.connect(self.request_new_device)
            self._connect_menu(window)
            self.sequence_window = window
            area = _screen_area()
            width = min(760, area.width() - 2 * GAP)
            height = min(HEIGHT, area.height() - 2 * GAP - TITLE_BAR)  # title bar on screen
            right = max(
                (w.frameGeometry().right() for w in self._all_windows()), default=area.left()
            )
            x = right + GAP if right + GAP + width <= area.right() else area.right() - width - GAP
            window.resize(width, height)
            window.move(max(area.left(), x), area.top() + GAP)  # the frame's corner
        self.sequence_window.show()
        self.sequence_window.raise_()
        return self.sequence_window

    def _title_of_key(self, key: str) -> str:
        item_id = key.removeprefix("like/")
        return self._titles.get(item_id, key)

    def _extra_windows(self) -> list[QWidget]:
        return [w for w in (self.sequence_window, self.help_dialog) if w is not None]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- layout -----------------------------------------------------------------------

    def _all_windows(self) -> list[QWidget]:
        server: list[QWidget] = [self.server_window] if self.server_window is not None else []
        return [*self.windows, *server]

    def arrange(self, *, fit: bool = True, area: QRect | None = None) -> None:
        """Side by side without overlap, shrunk to fit the screen (1366×768 included)
        unless ``fit`` is off (screenshots keep full sizes).

        A process without its own server (several processes on one server) starts
        its row at its first device's slot (Device A first, B second, ...) so each
        process's window tiles beside the others instead of on top of them.
        """
        area = area if area is not None else _screen_area()
        windows = self._all_windows()
        widths = [
            SERVER_WIDTH if window is self.server_window else DEVICE_WIDTH for window in windows
        ]
        room = area.width() - GAP * (len(windows) + 1)
        scale = min(1.0, room / sum(widths)) if widths and fit else 1.0
        # A window manager adds a title bar above the client area we size.
        height = min(HEIGHT, area.height() - 2 * GAP - TITLE_BAR) if fit else HEIGHT
        slot = self._first_slot()
        columns = max(1, area.width() // (DEVICE_WIDTH + GAP))
        row, column = divmod(slot, columns)
        x = area.left() + GAP + column * (DEVICE_WIDTH + GAP)
        y = area.top() + GAP + CASCADE * (row % 8)
        for window, preferred in zip(windows, widths, strict=True):
            smallest = MIN_SERVER_WIDTH if window is self.server_window else MIN_DEVICE_WIDTH
            width = max(smallest, int(preferred * scale))
            window.resize(width, height)
            if fit and x + width > area.right():
                self._place(window)  # no room left in the row: cascade
                continue
            window.move(x, y)  # the frame's corner, title bar included
            x += width + GAP

    def _first_slot(self) -> int:
        """Where this process's row starts: 0, or its first device's index when the
        server runs elsewhere (other processes hold the slots before it)."""
        if self.server is not None or not self.windows:
            return 0
        return device_index(self.windows[0].bridge.name)

    def _place(self, window: QWidget) -> None:
        """A device window where it was last, else beside the others (or cascaded)."""
        area = _screen_area()
        name = window.bridge.name if isinstance(window, DeviceWindow) else ""
        if name in self._places:
            place = self._places[name]
            window.resize(place.size())
            window.move(place.topLeft())  # a frame position, as saved: no drift
            keep_on_screen(window)
            return
        size = window.size()
        others = [
            w.frameGeometry() for w in self._all_windows() if w is not window and w.isVisible()
        ]
        right = max((g.right() for g in others), default=area.left())
        if right + GAP + size.width() <= area.right():
            window.move(right + GAP, area.top() + GAP)
            return
        offset = CASCADE * (len(self.windows) % 8)
        window.move(area.left() + GAP + offset, area.top() + GAP + offset)


def keep_on_screen(window: QWidget, area: QRect | None = None) -> None:
    """Move (and if need be shrink) a window so its title bar and body are on screen.

    Sizes count the window manager's title bar (the frame's extra height, or
    :data:`TITLE_BAR` before the window is first mapped).
    """
    area = area if area is not None else _screen_area(window)
    frame = window.frameGeometry()
    extra_h = frame.height() - window.height()
    extra_w = frame.width() - window.width()
    if not window.isVisible() or extra_h < TITLE_BAR // 2:  # no title bar known yet
        extra_h = max(extra_h, TITLE_BAR)
    width = min(window.width(), area.width() - extra_w)
    height = min(window.height(), area.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    x = min(max(frame.left(), area.left()), area.right() + 1 - width - extra_w)
    y = min(max(frame.top(), area.top()), area.bottom() + 1 - height - extra_h)
    if (x, y) != (frame.left(), frame.top()):
        window.move(x, y)


def device_index(name: str) -> int:
    """The inverse of :func:`device_name` (0 for a name it never makes)."""
    letter = name.removeprefix("Device ")
    if len(letter) == 1 and letter in string.ascii_uppercase:
        return string.ascii_uppercase.index(letter)
    return int(letter) - 1 if letter.isdigit() and int(letter) > 0 else 0


def _screen_area(window: QWidget | None = None) -> QRect:
    screen = window.screen() if window is not None else None
    screen = screen if screen is not None else QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 1600, 900)
