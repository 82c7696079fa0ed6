"""Fixtures for the desktop demo's tests: one qasync loop per test, driven by pytest-qt.

Tests here are plain (sync) functions, so pytest-asyncio never touches them
and its loops never meet ours. :func:`qloop` makes a qasync ``QEventLoop`` the
running loop *without* blocking in it (``already_running``): whenever
pytest-qt processes Qt events (``qtbot.waitUntil``, ``waitSignal``), asyncio's
callbacks, sockets and timers run too. On teardown it cancels what is left,
closes the loop, clears the running loop and re-raises anything its exception
handler caught (qasync's own tests do the same).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.ui.demo import Demo
from app.ui.device_window import DeviceWindow
from app.ui.item_delegate import ItemDelegate
from app.ui.space_names import DEFAULT_SPACE
from app.ui.theme import apply_theme
from tests.timeouts import TIMEOUT_MS

T = TypeVar("T")


class LoopErrors(Exception):
    """The loop's exception handler saw errors nobody handled."""


@pytest.fixture
def qloop(qapp: QApplication, qtbot: QtBot) -> Iterator[asyncio.AbstractEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    caught: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: caught.append(context))
    try:
        yield loop
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            qtbot.waitUntil(lambda: all(task.done() for task in pending), timeout=TIMEOUT_MS)
        qapp.aboutToQuit.disconnect(loop._after_run_forever)
        loop._QEventLoop__is_running = False  # stop() would also call app.exit()
        asyncio.events._set_running_loop(None)
        loop.close()
        del loop
        # Free this test's Qt objects here: a collection that happens later on a
        # worker thread (the link's store writer) must not destroy widgets.
        gc.collect()
    if caught:
        first = caught[0]
        raise LoopErrors(first.get("message", "")) from first.get("exception")


class Harness:
    """Runs coroutines on the test's loop and drives a :class:`Demo` like a user would."""

    def __init__(self, qtbot: QtBot, loop: asyncio.AbstractEventLoop, data_dir: Path) -> None:
        self.qtbot = qtbot
        self.loop = loop
        self.data_dir = data_dir
        self.demo: Demo | None = None

    def run(self, work: Coroutine[Any, Any, T], timeout_ms: int = TIMEOUT_MS) -> T:
        """Run ``work`` on the qasync loop while Qt keeps processing events."""
        task = self.loop.create_task(work)
        try:
            self.qtbot.waitUntil(task.done, timeout=timeout_ms)
        except Exception:
            task.print_stack()
            raise
        return task.result()

    def start(
        self,
        devices: int = 2,
        *,
        latency_ms: int = 40,
        items: int | None = None,
        spaces: tuple[str, ...] = (DEFAULT_SPACE,),
    ) -> Demo:
        demo = Demo(data_dir=self.data_dir, latency_ms=latency_ms, items=items, spaces=spaces)
        self.demo = demo
        self.run(demo.start(devices))
        self.wait_online()
        return demo

    def close(self) -> None:
        if self.demo is not None:
            self.run(self.demo.close())
            self.demo = None

    def wait(self, condition: Any, timeout_ms: int = TIMEOUT_MS) -> None:
        """Wait (processing events) until ``condition()`` is true; fail after the timeout."""

        def check() -> None:
            assert condition()

        self.qtbot.waitUntil(check, timeout=timeout_ms)

    def wait_online(self) -> None:
        assert self.demo is not None
        windows = self.demo.windows
        self.wait(lambda: all(w.bridge.status.state == "online" for w in windows))

    def wait_synced(self) -> None:
        """Every window idle: nothing in flight, no intent waiting."""
        assert self.demo is not None
        windows = self.demo.windows
        self.wait(
            lambda: all(
                not w.bridge.state.intents
                and not w.bridge.busy()
                and all(
                    s.phase.value in ("synced", "overridden", "failed")
                    for s in w.bridge.state.statuses.values()
                )
                for w in windows
            )
        )

    # -- what a user does -------------------------------------------------------------

    @staticmethod
    def heart_point(window: DeviceWindow, item_id: str) -> QPoint:
        view = window.list
        index = window.model.index(window.model.row_of(item_id))
        view.scrollTo(index)
        return ItemDelegate.heart_rect(view.visualRect(index)).center()

    def click_heart(self, window: DeviceWindow, item_id: str) -> None:
        point = self.heart_point(window, item_id)
        QTest.mouseClick(window.list.viewport(), Qt.MouseButton.LeftButton, pos=point)

    # -- what the server holds ---------------------------------------------------------

    def server_value(self, item_id: str, space: str = DEFAULT_SPACE) -> tuple[Any, int] | None:
        """(value, revision) the server holds for an item's like in ``space``, or None."""
        assert self.demo is not None
        assert self.demo.server is not None
        state = self.demo.server.state
        assert state is not None
        for entry in state.values:
            if entry.key == f"like/{item_id}" and entry.space == space:
                return msgspec.json.decode(bytes(entry.value)), entry.server_revision
        return None

    def server_requests_from(self, window: DeviceWindow) -> int:
        """Requests (sets and gets) the server received on this device's connection."""
        assert self.demo is not None
        assert self.demo.server is not None
        state = self.demo.server.state
        assert state is not None
        device_id = window.bridge.device_id
        return sum(d.requests for d in state.devices if d.device_id == device_id)


@pytest.fixture
def harness(qloop: asyncio.AbstractEventLoop, qtbot: QtBot, tmp_path: Path) -> Iterator[Harness]:
    apply_theme(QApplication.instance())  # type: ignore[arg-type]
    running = Harness(qtbot, qloop, tmp_path)
    try:
        yield running
    finally:
        running.close()
