"""The device's websocket link to the sync server.

Theory of operation
-------------------
One connection per device, kept up forever by :meth:`SyncClient.start`'s
background task: connect, ``hello`` with the newest revision seen, apply the
``snapshot`` that answers it, then read frames until the connection drops;
wait a backoff delay (exponential, jittered, interruptible) and try the next
URL in the list. The status (:class:`ConnectionStatus`) turns ``online`` only
once the snapshot is applied: before that the device is not caught up.

Revisions are one global counter, so the pushes a connection receives should
count up by one. ``newest_seen`` is the end of that unbroken run. A push that
skips past ``newest_seen + 1`` means something was missed: it is applied (the
core's revision rules make that harmless), and a ``hello since newest_seen``
asks for what is missing rather than trusting the stream. While that resync is
pending further pushes are applied without being counted; the snapshot moves
``newest_seen`` to the server's revision. A lost *last* push has no successor to
reveal it, so an online link also sends ``hello since`` every ``heartbeat``
seconds; when nothing was missed the snapshot is empty.

Requests (``set``/``get``) carry an increasing ``request_id``; replies resolve
the matching future. A request waits for the link to be online, but never
longer than ``request_timeout`` in total; a dropped connection fails every
request in flight at once with :class:`DisconnectedError`. Errors are described
in :mod:`app.link.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from syncserver.protocol import (
    Ack,
    Error,
    Get,
    Hello,
    ProtocolError,
    Push,
    PushBatch,
    Set,
    Snapshot,
    Value,
    decode_server_message,
    encode,
)

from .backoff import Backoff
from .errors import (
    AckTimeoutError,
    ClientClosedError,
    DisconnectedError,
    LinkError,
    RequestTimeoutError,
    ServerRefusedError,
)
from .status import ConnectionStatus, Observable

__all__ = ["Backoff", "SyncClient"]

log = logging.getLogger(__name__)

PushListener = Callable[[Push], None]
SnapshotListener = Callable[[Snapshot], None]

_CONNECT_ERRORS = (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI)


class SyncClient:
    """One device's connection: requests, pushes, catch-up and reconnects.

    ``urls`` are tried in turn (failover). ``on_push`` gets every push and
    ``on_snapshot`` every catch-up snapshot, both on the event loop, before
    ``newest_seen`` moves past them (so a persisted ``newest_seen`` never
    claims more than was applied). ``drop_push`` is a hook that may lose a push
    on purpose, as a flaky network would.
    """

    def __init__(
        self,
        urls: Sequence[str],
        device_id: int,
        *,
        since: int = 0,
        on_push: PushListener | None = None,
        on_snapshot: SnapshotListener | None = None,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        drop_push: Callable[[Push], bool] | None = None,
        rng: random.Random | None = None,
        heartbeat: float | None = 15.0,
    ) -> None:
        if not urls:
            raise ValueError("SyncClient needs at least one server URL")
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self.urls: tuple[str, ...] = tuple(urls)
        self.device_id = device_id
        self.request_timeout = request_timeout
        self.on_push = on_push
        self.on_snapshot = on_snapshot
        self.drop_push = drop_push
        self.heartbeat = heartbeat
        self.backoff = backoff if backoff is not None else Backoff()
        self.newest_seen: Observable[int] = Observable(max(since, 0))
        """The end of the unbroken run of revisions this device has applied."""
        self.gaps_detected = 0
        self.snapshots_applied = 0
        self._status: Observable[ConnectionStatus] = Observable(ConnectionStatus("offline"))
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ws: ClientConnection | None = None
        self._online = asyncio.Event()
        self._wake = asyncio.Event()
        self._resyncing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # -- status ------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        return self._status.value

    def subscribe_status(self, listener: Callable[[ConnectionStatus], None]) -> Callable[[], None]:
        """Call ``listener(status)`` on every change; returns an unsubscribe function."""
        return self._status.subscribe(listener)

    @property
    def online(self) -> bool:
        return self._online.is_set() and not self._closed

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._closed:
            raise ClientClosedError("this client was closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"optisync link {self.device_id}"
            )

    def retry_now(self) -> None:
        """Skip the rest of the backoff countdown and reconnect at once."""
        self._wake.set()

    async def close(self) -> None:
        """Drop the connection for good; requests still waiting fail with ClientClosedError."""
        if self._closed:
            return
        self._closed = True
        self._online.set()  # wake requests waiting for the link; they see _closed
        self._fail_pending(ClientClosedError("the client was closed"))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._status.set(ConnectionStatus("offline"))

    async def wait_online(self) -> None:
        """Wait until connected and caught up (wrap it in ``asyncio.timeout``)."""
        while not self.online:
            if self._closed:
                raise ClientClosedError("the client was closed")
            await self._online.wait()
        if self._closed:
            raise ClientClosedError("the client was closed")

    # -- requests ------------------------------------------------------------------

    async def set(self, key: str, value: Any, local_revision: int) -> Ack:
        """Write ``value`` to ``key``; returns the ack once the server made it durable."""
        reply = await self._request(
            "set",
            key,
            lambda request_id: Set(request_id, key, value, local_revision, self.device_id),
        )
        if not isinstance(reply, Ack):
            raise LinkError(f"the server answered set {key!r} with {type(reply).__name__}")
        return reply

    async def get(self, key: str) -> Value:
        """Read ``key`` from the server (value None and revision 0 if never written)."""
        reply = await self._request("get", key, lambda request_id: Get(request_id, key))
        if not isinstance(reply, Value):
            raise LinkError(f"the server answered get {key!r} with {type(reply).__name__}")
        return reply

    def resync(self) -> None:
        """Ask for everything after ``newest_seen`` again (no-op while offline)."""
        self._send_hello()

    async def _request(
        self, kind: str, key: str, build: Callable[[int], msgspec.Struct]
    ) -> Ack | Value:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.wait_online()
        except TimeoutError:
            raise DisconnectedError(
                f"{kind} {key!r}: not connected to the server within {self.request_timeout:g} s"
            ) from None
        ws = self._ws
        if ws is None:
            raise DisconnectedError(f"{kind} {key!r}: the connection dropped")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = future
        try:
            try:
                await ws.send(encode(build(request_id)))
            except ConnectionClosed:
                raise DisconnectedError(f"{kind} {key!r}: the connection dropped") from None
            try:
                async with asyncio.timeout_at(deadline):
                    reply = await future
            except TimeoutError:
                if kind == "set":
                    raise AckTimeoutError(key, self.request_timeout) from None
                raise RequestTimeoutError(kind, key, self.request_timeout) from None
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise ServerRefusedError(reply.code, reply.message)
        assert isinstance(reply, Ack | Value)
        return reply

    def _fail_pending(self, error: LinkError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # -- the connection loop -------------------------------------------------------

    async def _run(self) -> None:
        index = 0
        attempt = 0
        while not self._closed:
            url = self.urls[index]
            self._status.set(ConnectionStatus("connecting", url, None, attempt))
            caught_up = await self._connect_once(url)
            if self._closed:
                return
            if caught_up:
                attempt = 1  # a good connection dropped: retry the same server soon
            else:
                attempt += 1
                index = (index + 1) % len(self.urls)  # fail over to the next server
            delay = self.backoff.delay(attempt, self._rng)
            retry_at = time.monotonic() + delay
            self._status.set(ConnectionStatus("offline", url, retry_at, attempt))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _connect_once(self, url: str) -> bool:
        """One connection's life; returns whether it got as far as online."""
        caught_up = False
        try:
            async with connect(
                url,
                open_timeout=self.request_timeout,
                close_timeout=1.0,
                compression=None,  # small JSON frames gain nothing from deflate
                max_size=2**20,
            ) as ws:
                self._ws = ws
                self._resyncing = False
                self._send_hello()
                heartbeat = asyncio.get_running_loop().create_task(self._beat())
                try:
                    async for frame in ws:
                        if self._on_frame(frame, url):
                            caught_up = True
                finally:
                    heartbeat.cancel()
        except _CONNECT_ERRORS as exc:
            log.info("device %s: link to %s down: %s", self.device_id, url, exc)
        except Exception:
            # Whatever went wrong, the device keeps reconnecting: log it, retry.
            log.exception("device %s: link to %s failed", self.device_id, url)
        finally:
            self._ws = None
            self._online.clear()
            if not self._closed:
                self._fail_pending(DisconnectedError(f"the connection to {url} dropped"))
        return caught_up

    async def _beat(self) -> None:
        """Resync now and then, so a lost last push is found without a successor."""
        if self.heartbeat is None:
            return
        while True:
            await asyncio.sleep(self.heartbeat)
            if self._online.is_set():
                self._send_hello()

    def _send_hello(self) -> None:
        ws = self._ws
        if ws is None or self._resyncing:
            return
        self._resyncing = True
        # Batched pushes: one frame per server tick instead of one per write, which
        # roughly halves the cost of a burst of writes on every device.
        frame = encode(Hello(self.device_id, self.newest_seen.value, batch_pushes=True))
        # Sending is fire-and-forget: a drop surfaces in the read loop.
        task = asyncio.get_running_loop().create_task(self._send_quietly(ws, frame))
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    @staticmethod
    async def _send_quietly(ws: ClientConnection, frame: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)

    # -- incoming frames -------------------------------------------------------------

    def _on_frame(self, frame: str | bytes, url: str) -> bool:
        """Handle one frame; returns True when it was the snapshot that made us online."""
        try:
            message = decode_server_message(frame)
        except ProtocolError as exc:
            log.warning("device %s: dropped a bad frame from %s: %s", self.device_id, url, exc)
            return False
        try:
            return self._dispatch(message, url)
        except Exception:
            # A failing listener loses this one message, never the connection.
            log.exception("device %s: handling %s failed", self.device_id, type(message).__name__)
            return False

    def _dispatch(self, message: object, url: str) -> bool:
        if isinstance(message, Push):
            self._on_push(message)
        elif isinstance(message, PushBatch):
            for push in message.pushes:
                self._on_push(push)
        elif isinstance(message, Snapshot):
            return self._on_snapshot(message, url)
        elif isinstance(message, Ack | Value | Error):
            self._on_reply(message)
        return False

    def _on_reply(self, reply: Ack | Value | Error) -> None:
        request_id = reply.request_id
        future = self._pending.get(request_id) if isinstance(request_id, int) else None
        if future is None:
            if isinstance(reply, Error):
                log.warning(
                    "device %s: server error %s: %s", self.device_id, reply.code, reply.message
                )
            return  # a late reply to a request that already timed out
        if not future.done():
            future.set_result(reply)

    def _on_snapshot(self, snapshot: Snapshot, url: str) -> bool:
        self._resyncing = False
        if self.on_snapshot is not None:
            try:
                self.on_snapshot(snapshot)
            except Exception:  # still online: later pushes and resyncs repair the state
                log.exception("device %s: applying a snapshot failed", self.device_id)
        self.snapshots_applied += 1
        self.newest_seen.set(max(self.newest_seen.value, snapshot.revision))
        if self._online.is_set():
            return False
        self._online.set()
        self._status.set(ConnectionStatus("online", url, None, 0))
        return True

    def _on_push(self, push: Push) -> None:
        if self.drop_push is not None and self.drop_push(push):
            return
        if self.on_push is not None:
            self.on_push(push)
        if not self._online.is_set() or self._resyncing:
            return  # a snapshot is on its way and will cover this revision
        newest = self.newest_seen.value
        if push.server_revision == newest + 1:
            self.newest_seen.set(push.server_revision)
        elif push.server_revision > newest + 1:
            self.gaps_detected += 1
            log.info(
                "device %s: push %d after %d: missed some, resyncing",
                self.device_id,
                push.server_revision,
                newest,
            )
            self._send_hello()
