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
from .server_bridge import ServerBridge
from .server_window import ServerWindow

__all__ = ["Demo", "device_name", "extend_catalogue"]

GAP = 12
DEVICE_WIDTH = 460
SERVER_WIDTH = 500


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
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
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
            self.server_window = ServerWindow(self.server, self.catalogue, self.directory.name)
            self.server_window.addDeviceRequested.connect(self.request_new_device)
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
        if self.server_window is not None:
            self.server_window.close()
            self.server_window = None
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
            )
        finally:
            self._opening.discard(name)
        window = DeviceWindow(bridge)
        window.closeRequested.connect(self._on_close_requested)
        window.newDeviceRequested.connect(self.request_new_device)
        self.windows.append(window)
        self.deviceOpened.emit(window)
        return window

    def request_new_device(self) -> None:
        """Slot for "add device": open the next device beside the others."""

        async def add() -> None:
            window = await self.open_device()
            self._place(window, len(self.windows) - 1)
            window.show()
            window.raise_()

        self._spawn(add())

    def window(self, name: str) -> DeviceWindow:
        return next(window for window in self.windows if window.bridge.name == name)

    def _on_close_requested(self, window: DeviceWindow) -> None:
        if window not in self.windows:
            return
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

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- layout -----------------------------------------------------------------------

    def _all_windows(self) -> list[QWidget]:
        server: list[QWidget] = [self.server_window] if self.server_window is not None else []
        return [*self.windows, *server]

    def arrange(self, *, fit: bool = True) -> None:
        """Side by side; shrunk to fit the screen unless ``fit`` is off (screenshots)."""
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1600, 900)
        windows = self._all_windows()
        widths = [
            SERVER_WIDTH if window is self.server_window else DEVICE_WIDTH for window in windows
        ]
        wanted = sum(widths) + GAP * (len(windows) + 1)
        scale = min(1.0, area.width() / wanted) if wanted and fit else 1.0
        x = area.left() + GAP
        height = min(760, area.height() - 2 * GAP) if fit else 760
        for window, preferred in zip(windows, widths, strict=True):
            width = max(360, int(preferred * scale))
            window.setGeometry(x, area.top() + GAP, width, max(480, height))
            x += width + GAP

    def _place(self, window: QWidget, index: int) -> None:
        screen = QGuiApplication.primaryScreen()
        area = screen.availableGeometry() if screen is not None else QRect(0, 0, 1600, 900)
        offset = 32 * (index % 8)
        window.move(area.left() + GAP + offset, area.top() + GAP + offset)
