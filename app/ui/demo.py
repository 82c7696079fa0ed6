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

import filelock
from PySide6.QtCore import QEvent, QObject, QRect, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.link import CatalogueItem, DeviceInUseError, load_catalogue

from .bridge import DeviceBridge
from .device_window import DeviceWindow
from .directory import DeviceDirectory
from .help import HelpDialog
from .placement import GAP, TITLE_BAR, SharedPlaces, WindowWidth, tile
from .sequence_feed import SequenceRecorder
from .sequence_window import SequenceWindow
from .server_bridge import ServerBridge
from .server_window import ServerWindow
from .space_names import DEFAULT_SPACE, space_of

__all__ = [
    "DEVICE_WIDTH",
    "HEIGHT",
    "SERVER_WIDTH",
    "TITLE_BAR",
    "Demo",
    "device_index",
    "device_name",
    "extend_catalogue",
    "keep_on_screen",
]

DEVICE_WIDTH = 440
SERVER_WIDTH = 520
HEIGHT = 760


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
        places_dir: Path | None = None,
    ) -> None:
        """``places_dir``: a folder every demo process of this user shares, where each
        says where its windows are so the next one opens clear of them (None: this
        process alone)."""
        super().__init__()
        self.data_dir = data_dir
        self.spaces = tuple(spaces) or (DEFAULT_SPACE,)
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
        self._claims: dict[str, filelock.FileLock] = {}  # device names this process uses
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shared = SharedPlaces(places_dir) if places_dir is not None else None
        # Moves and resizes are published once they settle, not at every step of a drag.
        self._publish_timer = QTimer(self)
        self._publish_timer.setSingleShot(True)
        self._publish_timer.setInterval(250)
        self._publish_timer.timeout.connect(self.publish_places)

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
            self.server_window.installEventFilter(self)
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
        for name in list(self._claims):
            self._release(name)
        self._publish_timer.stop()
        if self._shared is not None:
            self._shared.close()
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

    def _claim(self, name: str) -> None:
        """Hold device ``name`` for this process, in every space: another process with
        the same data folder takes the next free name (raises DeviceInUseError)."""
        if name in self._claims:
            return
        path = self.data_dir / "open" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        claim = filelock.FileLock(path, thread_local=False)
        try:
            claim.acquire(timeout=0)
        except filelock.Timeout:
            raise DeviceInUseError(name, path) from None
        self._claims[name] = claim

    def _release(self, name: str) -> None:
        claim = self._claims.pop(name, None)
        if claim is not None:
            claim.release()

    async def _open_named(self, name: str) -> DeviceWindow:
        self._opening.add(name)
        try:
            self._claim(name)
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
        except BaseException:
            self._release(name)
            raise
        finally:
            self._opening.discard(name)
        self.recorder.watch_device(bridge)
        window = DeviceWindow(bridge)
        window.installEventFilter(self)
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
                self._release(name)
            self.publish_places()
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
        """Side by side without overlap, each as narrow as shows all of it, clear of
        other demo processes' windows; cascaded when they cannot fit. Without ``fit``
        (screenshots) every window has its roomier full size."""
        area = area if area is not None else _screen_area()
        windows = self._all_windows()
        if not fit:
            x = area.left() + GAP
            for window in windows:
                window.resize(self._full_width(window), HEIGHT)
                window.move(x, area.top() + GAP)
                x += window.width() + GAP
            return
        height = min(HEIGHT, area.height() - 2 * GAP - TITLE_BAR)
        taken = self._shared.others() if self._shared is not None else []
        places = tile([self._width_of(w) for w in windows], area, height, taken)
        for window, place in zip(windows, places, strict=True):
            window.resize(place.size())
            window.move(place.topLeft())  # the frame's corner, title bar included
        self.publish_places()

    def _width_of(self, window: QWidget) -> WindowWidth:
        """A window opens as narrow as shows all of it: a wider one only adds blank room,
        and the room it leaves lets more devices (other processes' too) sit beside it."""
        smallest = max(window.minimumSizeHint().width(), window.minimumWidth())
        frame = window.frameGeometry().width() - window.width() if window.isVisible() else 0
        return WindowWidth(smallest, smallest, frame)

    def _full_width(self, window: QWidget) -> int:
        return SERVER_WIDTH if window is self.server_window else DEVICE_WIDTH

    def _place(self, window: QWidget) -> None:
        """A device window where it was last, else in the first free room beside the
        others (this process's and other processes'), else cascaded."""
        name = window.bridge.name if isinstance(window, DeviceWindow) else ""
        if name in self._places:
            place = self._places[name]
            window.resize(place.size())
            window.move(place.topLeft())  # a frame position, as saved: no drift
            keep_on_screen(window)
        else:
            area = _screen_area()
            height = min(HEIGHT, area.height() - 2 * GAP - TITLE_BAR)
            taken = [
                w.frameGeometry() for w in self._all_windows() if w is not window and w.isVisible()
            ]
            if self._shared is not None:
                taken += self._shared.others()
            (place,) = tile([self._width_of(window)], area, height, taken)
            window.resize(place.size())
            window.move(place.topLeft())
        self.publish_places()

    def publish_places(self) -> None:
        """Tell other demo processes where this one's windows are."""
        if self._shared is None:
            return
        frames = []
        for window in self._all_windows():
            frame = window.frameGeometry()
            if not window.isVisible():  # not mapped yet: Qt cannot know the title bar
                frame = QRect(window.pos(), window.size()).adjusted(0, 0, 0, TITLE_BAR)
            frames.append(frame)
        self._shared.publish(frames)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Move, QEvent.Type.Resize, QEvent.Type.Show):
            self._publish_timer.start()
        return super().eventFilter(watched, event)


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
