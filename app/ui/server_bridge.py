"""The Qt bridge of the embedded sync server: its observer feed as signals, its demo
controls as slots, plus stop/start and writes "from another device".

The server runs on the same qasync loop as the windows, so none of this blocks
the UI. Demo settings live here too and are re-applied after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from websockets.asyncio.client import connect

from syncserver import ServerState, SyncServer
from syncserver.protocol import Ack, Error, Hello, Set, Snapshot, decode_server_message, encode

from .directory import EXTERNAL_DEVICE_ID
from .space_names import DEFAULT_SPACE

__all__ = ["ServerBridge"]


class ServerBridge(QObject):
    """The embedded server; see the module docstring."""

    stateChanged = Signal(object)
    runningChanged = Signal(bool)
    settingsChanged = Signal()
    externalWritten = Signal(str, int, str)  # key, revision, space
    failed = Signal(str)  # a demo action could not be carried out

    def __init__(
        self,
        db_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 600,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._db_path = db_path
        self._host = host
        self._port = port
        self._server: SyncServer | None = None
        self._unobserve: Callable[[], None] | None = None
        self._state: ServerState | None = None
        self._latency_ms = latency_ms
        self._push_enabled = True
        self._jitter_ms = 0
        self._external_revision = itertools.count(1)
        self._tasks: set[asyncio.Task[object]] = set()
        self._busy = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the same port after a restart, so devices find it again)."""
        if self._server is not None:
            return
        server = await SyncServer.start(
            self._host, self._port, self._db_path, allow_chaos=True, observe_interval=0.05
        )
        self._server, self._port = server, server.port
        self._apply_settings()
        self._unobserve = server.observe(self._on_state)
        self.runningChanged.emit(True)

    async def stop(self) -> None:
        """Close every connection and the database; devices go offline and retry."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._unobserve is not None:
            self._unobserve()
            self._unobserve = None
        await server.close()
        self.runningChanged.emit(False)

    async def restart(self, pause: float = 4.0) -> None:
        """Stop, stay down for ``pause`` seconds (so the offline state is visible), start."""
        if self._busy:
            return
        self._busy = True
        try:
            await self.stop()
            await asyncio.sleep(pause)
            await self.start()
        finally:
            self._busy = False

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"ws://{host}:{self._port}"

    @property
    def state(self) -> ServerState | None:
        return self._state

    # -- demo controls ----------------------------------------------------------------

    @property
    def latency_ms(self) -> int:
        return self._latency_ms

    @property
    def push_enabled(self) -> bool:
        return self._push_enabled

    @property
    def jitter_ms(self) -> int:
        return self._jitter_ms

    def set_latency(self, ms: int) -> None:
        """Simulated round trip: half before the write, half before the ack."""
        if ms != self._latency_ms:
            self._latency_ms = ms
            self._apply_settings()

    def set_push_enabled(self, enabled: bool) -> None:
        if enabled != self._push_enabled:
            self._push_enabled = enabled
            self._apply_settings()

    def set_push_jitter(self, ms: int) -> None:
        """Delay each push by up to ``ms`` at random, so pushes and acks cross."""
        if ms != self._jitter_ms:
            self._jitter_ms = ms
            self._apply_settings()

    def fail_next_request(self) -> None:
        if self._server is not None:
            self._server.chaos.fail_next(self._server.chaos.settings.fail_next + 1)

    def _apply_settings(self) -> None:
        server = self._server
        if server is not None:
            half = self._latency_ms / 2000
            server.chaos.set_write_delay(half)
            server.chaos.set_ack_delay(half)
            server.chaos.set_push_enabled(self._push_enabled)
            server.chaos.set_push_delay(0.0, self._jitter_ms / 1000)
        self.settingsChanged.emit()

    # -- writes from another device ---------------------------------------------------

    async def set_from_another_device(
        self, key: str, value: object, space: str = DEFAULT_SPACE
    ) -> int:
        """Write ``value`` to ``key`` in ``space`` as a device outside this app; returns
        its revision."""
        async with connect(self.url, compression=None) as ws:
            await ws.send(encode(Hello(device_id=EXTERNAL_DEVICE_ID, since=2**62, space=space)))
            await ws.send(
                encode(
                    Set(
                        request_id="external",
                        key=key,
                        value=value,
                        local_revision=next(self._external_revision),
                        device_id=EXTERNAL_DEVICE_ID,
                        space=space,
                    )
                )
            )
            async for frame in ws:
                message = decode_server_message(frame)
                if isinstance(message, Ack):
                    return message.server_revision
                if isinstance(message, Error):
                    raise RuntimeError(f"{message.code}: {message.message}")
                if isinstance(message, Snapshot):
                    continue
        raise ConnectionError("the server closed the connection before acking")

    # -- the same, for widget slots (they cannot await) -----------------------------

    def request_restart(self) -> None:
        self._spawn(self.restart())

    def request_stop(self) -> None:
        self._spawn(self.stop())

    def request_start(self) -> None:
        self._spawn(self.start())

    def request_external_write(self, key: str, value: object, space: str = DEFAULT_SPACE) -> None:
        async def write() -> None:
            revision = await self.set_from_another_device(key, value, space)
            self.externalWritten.emit(key, revision, space)

        self._spawn(write())

    def _spawn(self, work: Coroutine[object, object, object]) -> None:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.failed.emit(f"{type(error).__name__}: {error}")

    # -- observer feed ------------------------------------------------------------------

    def _on_state(self, state: ServerState) -> None:
        if state == self._state:
            return
        self._state = state
        self.stateChanged.emit(state)

    async def close(self) -> None:
        """Cancel pending demo actions and stop the server."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.stop()
