"""The sync server: websocket connections, request handling and fan-out.

Theory of operation
-------------------
Everything runs on one event loop. Each connection's task only reads frames
and handles them synchronously: a ``get`` or ``hello`` is answered from the
backend's in-memory registers, a ``set`` is queued in the backend (group
commit; see ``backends/``). When writes are durable, the backend reports them
in revision order and :meth:`SyncServer._committed` sends the ack to each
writer and the push to every connection. With a shared backend (Redis) that
report also carries the writes other server processes accepted: they are
pushed the same way, in the same revision order, without an ack. Sends
are synchronous writes to the transport (websockets' ``broadcast``), so
nothing can reorder them: with default settings every connection sees
pushes in revision order, and a ``snapshot`` never misses a write that was
not pushed to that connection after it.

Each push is encoded once and written to every connection. Connections that
said ``batch_pushes`` in their hello instead get one ``pushes`` frame per
event-loop tick holding every push of that tick, also encoded once.

Bad input never reaches the store: frames are validated by msgspec
(``protocol.py``); any failure is an ``error`` reply and the connection stays
open. Frames over 1 MiB close that connection with 1009 (websockets'
``max_size``). A wrong or missing token (when the server has one) closes the
connection with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import msgspec
import platformdirs
from websockets.asyncio.server import Server, ServerConnection, broadcast
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .backends import Backend, Write, create_backend
from .chaos import ChaosControls
from .config import ServerConfig
from .limits import MAX_FRAME_BYTES, TokenBucket
from .protocol import (
    MAX_VALUE_BYTES,
    Ack,
    Chaos,
    ChaosState,
    DeviceInfo,
    Error,
    Get,
    Hello,
    Observe,
    ProtocolError,
    Push,
    RequestId,
    ServerState,
    Set,
    Snapshot,
    SnapshotEntry,
    Unobserve,
    Value,
    decode_client_message,
    encode_bytes,
    read_request_id,
)
from .wire import batch_frame, text_frame, write_frames

__all__ = ["SyncServer", "default_db_path", "serve", "start_server"]

logger = logging.getLogger(__name__)

StateCallback = Callable[[ServerState], None]

_encode_value = msgspec.json.Encoder().encode


def default_db_path() -> Path:
    """Where the server keeps its database unless told otherwise."""
    return platformdirs.user_data_path("optisync", appauthor=False) / "syncserver.sqlite3"


class _Connection:
    __slots__ = ("batch", "bucket", "device_id", "id", "observing", "remote", "requests", "ws")

    def __init__(self, ws: ServerConnection, connection_id: int, bucket: TokenBucket) -> None:
        self.ws = ws
        self.id = connection_id
        self.bucket = bucket
        self.device_id: int | None = None
        self.batch = False
        self.observing = False
        self.requests = 0
        address = ws.remote_address
        self.remote = f"{address[0]}:{address[1]}" if address else "?"


@dataclass(slots=True)
class _SetRequest(Write):
    """A write this process accepted from one of its connections."""

    connection: _Connection | None = None
    request_id: RequestId = 0


class _Unauthorized(Exception):
    """A frame arrived without the token this server asks for."""


class SyncServer:
    """A running sync server. Create it with :func:`serve` or :meth:`start`.

    ``chaos`` holds the demo controls (always usable in-process; the wire
    ``chaos``/``observe`` messages need ``allow_chaos``). :meth:`state`,
    :meth:`observe` and :meth:`states` give the observer feed in-process.
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        config = ServerConfig.from_options(config, **options)
        self.config = config
        host, port, db_path = config.host, config.port, config.db_path
        backend, allow_chaos, token = config.backend, config.allow_chaos, config.token
        max_connections, rate_limit = config.max_connections, config.rate_limit
        rate_burst, synchronous = config.rate_burst, config.synchronous
        observe_interval, max_send_buffer = config.observe_interval, config.max_send_buffer
        self.host = host
        self.port = port
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.allow_chaos = allow_chaos
        self.chaos = ChaosControls(on_change=self._changed)
        self._token = token
        self._max_connections = max_connections
        self._rate_limit = rate_limit
        self._rate_burst = rate_burst
        self._max_send_buffer = max_send_buffer
        self.slow_connections_dropped = 0
        self._observe_interval = observe_interval
        self._store: Backend = create_backend(
            backend, self.db_path, self._committed, self._failed, synchronous=synchronous
        )
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: dict[int, _Connection] = {}
        self._next_connection_id = 1
        # Who gets pushes: one frame per push, or one batch frame per tick.
        self._plain: dict[ServerConnection, _Connection] = {}
        self._batched: dict[ServerConnection, _Connection] = {}
        self._observers: dict[ServerConnection, _Connection] = {}
        self._callbacks: list[StateCallback] = []
        self._notify_scheduled = False
        self.requests_received = 0
        self.requests_in_flight = 0

    # -- lifecycle ----------------------------------------------------------

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: Path | str | None = None,
        *,
        config: ServerConfig | None = None,
        **options: Any,
    ) -> SyncServer:
        """Open the database and start listening; ``port=0`` picks a free port.

        ``options`` are :class:`ServerConfig` fields; they override ``config``.
        """
        if config is None:
            options = {"host": host, "port": port, "db_path": db_path, **options}
        server = cls(config, **options)
        await server._start()
        return server

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._store.open()
        try:
            self._server = await ws_serve(
                self._handle,
                self.host,
                self.port,
                compression=None,
                max_size=MAX_FRAME_BYTES,
                process_request=self._process_request,
            )
        except BaseException:
            await self._store.close()
            raise
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The ``ws://host:port`` clients connect to."""
        host = self.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    @property
    def revision(self) -> int:
        """The newest committed revision."""
        return self._store.revision

    @property
    def backend(self) -> str:
        """Where the registers are (the database file or the Redis server)."""
        return self._store.describe()

    async def close(self) -> None:
        """Close every connection (1001), commit queued writes, close the database."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()
        await self._store.close()

    async def serve_forever(self) -> None:
        """Wait until the server is closed."""
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> SyncServer:
        if self._server is None:
            await self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- connections --------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if len(self._connections) >= self._max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert self._loop is not None
        conn = _Connection(
            ws,
            self._next_connection_id,
            TokenBucket(self._rate_limit, self._rate_burst, self._loop.time()),
        )
        self._next_connection_id += 1
        self._connections[conn.id] = conn
        if self._token is None:
            self._plain[ws] = conn
        self._changed()
        try:
            async for frame in ws:
                try:
                    self._on_frame(conn, frame)
                except _Unauthorized:
                    await ws.close(1008, "hello with the server's token first")
                    break
        except ConnectionClosed:
            pass
        finally:
            del self._connections[conn.id]
            self._plain.pop(ws, None)
            self._batched.pop(ws, None)
            self._observers.pop(ws, None)
            self._changed()

    def _admitted(self, conn: _Connection) -> bool:
        return conn.ws in self._plain or conn.ws in self._batched

    # -- requests -----------------------------------------------------------

    def _on_frame(self, conn: _Connection, frame: str | bytes) -> None:
        assert self._loop is not None
        if not conn.bucket.take(self._loop.time()):
            self._error(conn, read_request_id(frame), "rate_limited", "too many messages")
            return
        try:
            message = decode_client_message(frame)
        except ProtocolError as exc:
            self._error(conn, read_request_id(frame), exc.code, exc.message)
            return
        kind = type(message)
        if kind is Hello:
            self._on_hello(conn, message)  # type: ignore[arg-type]
            return
        if self._token is not None and not self._admitted(conn):
            raise _Unauthorized
        if kind is Set or kind is Get:
            # Only reads and writes count as requests: a resync or the link's
            # heartbeat must not show up in the coalescing figures.
            conn.requests += 1
            self.requests_received += 1
            self._changed()
            if kind is Set:
                self._on_set(conn, message)  # type: ignore[arg-type]
            else:
                self._on_get(conn, message)  # type: ignore[arg-type]
        else:
            self._on_demo_control(conn, message)  # type: ignore[arg-type]

    def _on_hello(self, conn: _Connection, hello: Hello) -> None:
        if self._token is not None and hello.token != self._token:
            raise _Unauthorized
        ws = conn.ws
        conn.device_id = hello.device_id
        conn.batch = hello.batch_pushes
        self._plain.pop(ws, None)
        self._batched.pop(ws, None)
        (self._batched if hello.batch_pushes else self._plain)[ws] = conn
        values = [_snapshot_entry(write) for write in self._store.changed_since(hello.since)]
        self._send(conn, encode_bytes(Snapshot(self._store.revision, values)))

    def _on_get(self, conn: _Connection, get: Get) -> None:
        if self.chaos.take_failure():
            self._error(conn, get.request_id, "injected_failure", "failed on purpose (demo)")
            return
        found = self._store.values.get(get.key)
        if found is None:
            reply = Value(get.request_id, get.key, None, 0)
        else:
            reply = Value(get.request_id, get.key, msgspec.Raw(found.value), found.revision)
        self._send(conn, encode_bytes(reply))

    def _on_set(self, conn: _Connection, set_: Set) -> None:
        value = _encode_value(set_.value)
        if len(value) > MAX_VALUE_BYTES:
            self._error(
                conn,
                set_.request_id,
                "too_large",
                f"value is {len(value)} bytes of JSON; the limit is {MAX_VALUE_BYTES}",
            )
            return
        if self.chaos.take_failure():
            self._error(conn, set_.request_id, "injected_failure", "failed on purpose (demo)")
            return
        request = _SetRequest(
            set_.key,
            value,
            0,
            set_.local_revision,
            set_.device_id if set_.device_id is not None else (conn.device_id or 0),
            conn,
            set_.request_id,
        )
        self.requests_in_flight += 1
        delay = self.chaos.settings.write_delay
        if delay:
            assert self._loop is not None
            self._loop.call_later(delay, self._submit, request)
        else:
            self._store.submit(request)

    def _submit(self, request: _SetRequest) -> None:
        try:
            self._store.submit(request)
        except RuntimeError:
            self._failed([request], RuntimeError("the server is shutting down"))

    def _on_demo_control(self, conn: _Connection, message: Chaos | Observe | Unobserve) -> None:
        if not self.allow_chaos:
            self._error(
                conn,
                message.request_id,
                "chaos_disabled",
                "demo controls are off; start the server with --allow-chaos",
            )
            return
        if isinstance(message, Chaos):
            self.chaos.apply(message)
            self._send(conn, encode_bytes(ChaosState(message.request_id, self.chaos.settings)))
        elif isinstance(message, Observe):
            self._observers[conn.ws] = conn
            conn.observing = True
            self._send(conn, encode_bytes(self.state()))
        else:
            self._observers.pop(conn.ws, None)
            conn.observing = False

    # -- commits and fan-out ------------------------------------------------

    def _committed(self, writes: Sequence[Write]) -> None:
        """Writes are durable: ack each writer here, push to everyone, in revision order."""
        settings = self.chaos.settings
        if (
            settings.ack_delay
            or not settings.push_enabled
            or settings.push_delay
            or (settings.push_jitter)
        ):
            self._committed_with_chaos(writes)
            return
        # Fast path. Each push is encoded once; each connection gets everything
        # this transaction produced for it (its acks, then the pushes) in one
        # transport write rather than one write per frame.
        outgoing: dict[_Connection, list[bytes]] = {}
        pushes: list[bytes] = []
        local = 0
        for write in writes:
            raw = msgspec.Raw(write.value)
            if type(write) is _SetRequest and write.connection is not None:
                local += 1
                ack = encode_bytes(Ack(write.request_id, write.key, raw, write.revision))
                frames = outgoing.get(write.connection)
                if frames is None:
                    outgoing[write.connection] = [ack]
                else:
                    frames.append(ack)
            pushes.append(
                encode_bytes(
                    Push(write.key, raw, write.revision, write.local_revision, write.device_id)
                )
            )
        self.requests_in_flight -= local
        # Serialize the push frames once; every connection gets the same bytes.
        push_frames = b"".join(text_frame(push) for push in pushes)
        slow: list[ServerConnection] = []
        limit = self._max_send_buffer
        for ws, conn in self._plain.items():
            acks = outgoing.pop(conn, None)
            if write_frames(ws, acks or [], push_frames) > limit:
                slow.append(ws)
        if self._batched:
            batched_pushes = text_frame(batch_frame(pushes))
            for ws, conn in self._batched.items():
                acks = outgoing.pop(conn, None)
                if write_frames(ws, acks or [], batched_pushes) > limit:
                    slow.append(ws)
        for conn, acks in outgoing.items():
            write_frames(conn.ws, acks, b"")
        for ws in slow:
            self._drop_slow(ws)
        self._changed()

    def _committed_with_chaos(self, writes: Sequence[Write]) -> None:
        """The same as :meth:`_committed`, one frame at a time, with the demo delays."""
        settings = self.chaos.settings
        loop = self._loop
        assert loop is not None
        plain = self._plain
        batched = self._batched
        for write in writes:
            raw = msgspec.Raw(write.value)
            if type(write) is _SetRequest:
                ack = encode_bytes(Ack(write.request_id, write.key, raw, write.revision))
                if settings.ack_delay:
                    loop.call_later(settings.ack_delay, self._ack, write, ack)
                else:
                    self._ack(write, ack)
            if not settings.push_enabled:
                continue
            push = encode_bytes(
                Push(write.key, raw, write.revision, write.local_revision, write.device_id)
            )
            for conn in (*plain.values(), *batched.values()):
                frame = batch_frame([push]) if conn.batch else push
                delay = self.chaos.push_delay()
                if delay:
                    loop.call_later(delay, self._send, conn, frame)
                else:
                    self._send(conn, frame)
        self._changed()

    def _ack(self, write: _SetRequest, ack: bytes) -> None:
        self.requests_in_flight -= 1
        if write.connection is not None:
            self._send(write.connection, ack)
        self._changed()

    def _failed(self, writes: Sequence[Write], exc: BaseException) -> None:
        logger.error("could not commit %d writes: %s", len(writes), exc)
        for write in writes:
            self.requests_in_flight -= 1
            if isinstance(write, _SetRequest) and write.connection is not None:
                self._error(write.connection, write.request_id, "unavailable", "write failed")
        self._changed()

    def _send(self, conn: _Connection, frame: bytes) -> None:
        broadcast((conn.ws,), frame, text=True)
        if conn.ws.transport.get_write_buffer_size() > self._max_send_buffer:
            self._drop_slow(conn.ws)

    def _drop_slow(self, ws: ServerConnection) -> None:
        """A device that stopped reading would make pushes pile up without bound:
        drop it; when it reads again it reconnects and catches up."""
        self.slow_connections_dropped += 1
        logger.warning(
            "dropping connection %s: %d bytes of pushes unread",
            ws.id,
            ws.transport.get_write_buffer_size(),
        )
        ws.transport.abort()

    def _error(
        self, conn: _Connection, request_id: RequestId | None, code: str, message: str
    ) -> None:
        self._send(conn, encode_bytes(Error(request_id, code, message)))

    # -- observer feed ------------------------------------------------------

    def state(self) -> ServerState:
        """What the server holds and is doing right now."""
        devices = [
            DeviceInfo(c.id, c.device_id, c.remote, c.batch, c.requests)
            for c in self._connections.values()
        ]
        values = [_snapshot_entry(write) for _, write in sorted(self._store.values.items())]
        return ServerState(
            revision=self._store.revision,
            devices=devices,
            requests_received=self.requests_received,
            requests_in_flight=self.requests_in_flight,
            values=values,
            chaos=self.chaos.settings,
        )

    def observe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with a :class:`ServerState` now and after changes
        (at most every ``observe_interval`` seconds). Returns an unsubscribe function."""
        self._callbacks.append(callback)
        callback(self.state())

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def states(self) -> AsyncIterator[ServerState]:
        """The observer feed as an async iterator (latest state only; slow readers skip)."""
        latest: list[ServerState] = []
        ready = asyncio.Event()

        def keep(state: ServerState) -> None:
            latest[:] = [state]
            ready.set()

        unsubscribe = self.observe(keep)
        try:
            while True:
                await ready.wait()
                ready.clear()
                yield latest[0]
        finally:
            unsubscribe()

    def _changed(self) -> None:
        if self._notify_scheduled or not (self._observers or self._callbacks):
            return
        if self._loop is None:
            return
        self._notify_scheduled = True
        self._loop.call_later(self._observe_interval, self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        state = self.state()
        if self._observers:
            broadcast(self._observers, encode_bytes(state), text=True)
        for callback in list(self._callbacks):
            try:
                callback(state)
            except Exception:
                logger.exception("observer callback failed")


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: Path | str | None = None,
    **options: Any,
) -> SyncServer:
    """Start a server without ``async with``; stop it with ``await server.close()``."""
    return await SyncServer.start(host, port, db_path, **options)


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: Path | str | None = None,
    *,
    config: ServerConfig | None = None,
    **options: Any,
) -> AsyncIterator[SyncServer]:
    """Run a sync server for the duration of the ``async with`` block.

    ``options`` are :class:`ServerConfig` fields (``allow_chaos=True``, ...).
    """
    server = await SyncServer.start(host, port, db_path, config=config, **options)
    try:
        yield server
    finally:
        await server.close()


def _snapshot_entry(write: Write) -> SnapshotEntry:
    return SnapshotEntry(
        write.key, msgspec.Raw(write.value), write.revision, write.local_revision, write.device_id
    )
