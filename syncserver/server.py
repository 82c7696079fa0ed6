"""The sync server's websockets shell around :class:`~syncserver.core.ServerCore`.

Theory of operation
-------------------
Everything runs on one event loop. The core decides (request handling,
fan-out, the observer feed, shutdown order; see ``core.py``); this module
owns the sockets: it accepts connections, hands each frame to the core, and
writes what the core sends straight to the transport (``wire.py``), the
pushes of one commit serialized once for every connection.

Frames over 1 MiB close that connection with 1009 (websockets' ``max_size``).
A hello without the server's token (when it has one) closes the connection
with 1008. With ``certfile`` the server speaks TLS (``wss://``). Each
connection's client address is its peer's IP, or the last ``X-Forwarded-For``
entry when the peer is a trusted proxy (``forwarded_allow``); past the
address' message budget the shell pauses reading its frames.
:meth:`SyncServer.close` stops accepting connections, refuses new frames,
lets the backend commit its queue, sends every ack and push for what was
committed, answers the other pending sets ``unavailable`` and then closes
each connection with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import platformdirs
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .backends import CommitCallback, FailureCallback, create_backend
from .chaos import ChaosControls
from .config import ServerConfig
from .core import ServerCore, Shared, StateCallback
from .limits import MAX_FRAME_BYTES
from .observability import Observability
from .protocol import ServerState
from .wire import text_frame, write_frames

__all__ = ["CLOSE_GRACE", "SyncServer", "default_db_path", "serve", "start_server"]

logger = logging.getLogger(__name__)

CLOSE_GRACE: Final = 1.0
"""Seconds a shutting-down server waits for clients to answer its close frame.
Then it ends the TCP connections itself, gracefully (FIN after every queued
byte, never RST), so a client that was not reading still finds every ack,
push and the 1001 close frame once it reads."""


def default_db_path() -> Path:
    """Where the server keeps its database unless told otherwise."""
    return platformdirs.user_data_path("optisync", appauthor=False) / "syncserver.sqlite3"


class _WebSocketPeer:
    """A websockets connection as the core's :class:`~syncserver.core.Peer`."""

    __slots__ = ("closing", "ws")

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.closing: asyncio.Task[None] | None = None

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        wire = b""
        if shared is not None:
            wire = shared.wire if shared.wire is not None else b""
            if shared.wire is None:
                wire = shared.wire = b"".join(map(text_frame, shared.payloads))
        return write_frames(self.ws, frames, wire)

    def close(self, code: int, reason: str) -> None:
        self.closing = asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    def abort(self) -> None:
        self.ws.transport.abort()

    def buffered(self) -> int:
        """Bytes written and not yet taken by the network (for /metrics)."""
        return self.ws.transport.get_write_buffer_size()


class _RunningLoopClock:
    """The core's clock: whichever event loop is running the server."""

    __slots__ = ()

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


class SyncServer:
    """A running sync server. Create it with :func:`serve` or :meth:`start`.

    ``chaos`` holds the demo controls (always usable in-process; the wire
    ``chaos``/``observe`` messages need ``allow_chaos``). :meth:`state`,
    :meth:`observe` and :meth:`states` give the observer feed in-process.
    Options are :class:`~syncserver.config.ServerConfig` fields, given as a
    ``config`` or as keywords.
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        config = ServerConfig.from_options(config, **options)
        self.config = config
        self.host = config.host
        self.port = config.port
        self.db_path = Path(config.db_path) if config.db_path is not None else default_db_path()
        self.allow_chaos = config.allow_chaos
        db_path = self.db_path

        def make_backend(on_commit: CommitCallback, on_failure: FailureCallback) -> Any:
            return create_backend(
                config.backend, db_path, on_commit, on_failure, synchronous=config.synchronous
            )

        self.core = ServerCore(make_backend, _RunningLoopClock(), config)
        """The I/O-free core: connections, requests, fan-out."""
        self.observability = Observability(self.core)
        """``GET /healthz`` and ``GET /metrics`` on the same port."""
        self._server: Server | None = None
        self._open: dict[ServerConnection, None] = {}
        self._ssl: ssl.SSLContext | None = None
        if config.certfile is not None:
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(config.certfile, config.keyfile)

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
        """Bind the address, open the database, then accept connections;
        ``port=0`` picks a free port. An address it cannot bind leaves the database untouched.

        ``options`` are :class:`ServerConfig` fields; they override ``config``.
        """
        if config is None:
            options = {"host": host, "port": port, "db_path": db_path, **options}
        server = cls(config, **options)
        await server._start()
        return server

    async def _start(self) -> None:
        # Bound before the backend opens (which may create or migrate the
        # database), so a bad host or a taken port changes nothing on disk;
        # connections are accepted only once the backend is open.
        server = await ws_serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            process_request=self._process_request,
            ssl=self._ssl,
            start_serving=False,
        )
        backend = self.core.backend
        try:
            await backend.open()
        except BaseException:
            server.close()
            await server.wait_closed()
            raise
        try:
            await server.start_serving()
        except BaseException:
            server.close()
            await server.wait_closed()
            await backend.close()
            raise
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    @property
    def chaos(self) -> ChaosControls:
        """The demo controls."""
        return self.core.chaos

    @property
    def url(self) -> str:
        """The ``ws://host:port`` (``wss://`` with TLS) clients connect to."""
        host = self.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://{host}:{self.port}"

    @property
    def revision(self) -> int:
        """The newest committed revision."""
        return self.core.revision

    @property
    def epoch(self) -> str:
        """The database's epoch (sent in every snapshot)."""
        return self.core.backend.epoch

    @property
    def backend(self) -> str:
        """Where the registers are (the database file or the Redis server)."""
        return self.core.backend.describe()

    @property
    def requests_received(self) -> int:
        """Sets and gets received since the start."""
        return self.core.requests_received

    @property
    def requests_in_flight(self) -> int:
        """Sets accepted and not yet acked or refused."""
        return self.core.requests_in_flight

    @property
    def slow_connections_dropped(self) -> int:
        """Connections dropped for not reading their pushes."""
        return self.core.slow_connections_dropped

    async def close(self) -> None:
        """Shut down: stop accepting, commit the queue, ack and push what was
        committed, refuse the rest with ``unavailable``, close with 1001."""
        if self._server is None:
            return
        server, self._server = self._server, None
        core = self.core
        server.close(close_connections=False)
        core.begin_shutdown()
        try:
            await core.backend.close()
        finally:
            core.finish_shutdown()
            try:
                await asyncio.wait_for(asyncio.shield(server.wait_closed()), CLOSE_GRACE)
            except TimeoutError:
                for ws in list(self._open):
                    ws.transport.close()
                await server.wait_closed()

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

    def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Awaitable[Response] | Response | None:
        answer = self.observability.process_request(connection, request)
        if answer is not None:
            return answer
        core = self.core
        if core.closing:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down\n")
        if len(core.connections) >= self.config.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        address = self._client_address(connection.remote_address, request)
        if address is not None and not core.admits(address):
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from your address\n"
            )
        return None

    def _client_address(self, peer: Any, request: Request | None) -> str | None:
        """The client's IP: the peer's, or a trusted proxy's ``X-Forwarded-For``."""
        if not peer:
            return None
        address = str(peer[0])
        if request is not None and address in self.config.forwarded_allow:
            forwarded = request.headers.get_all("X-Forwarded-For")
            if forwarded:
                # The last entry is the one the trusted proxy added itself.
                address = forwarded[-1].rsplit(",", 1)[-1].strip() or address
        return address

    async def _handle(self, ws: ServerConnection) -> None:
        core = self.core
        peer_address = ws.remote_address
        remote = f"{peer_address[0]}:{peer_address[1]}" if peer_address else "?"
        peer = _WebSocketPeer(ws)
        conn = core.connect(peer, remote, self._client_address(peer_address, ws.request))
        receive = core.receive
        self._open[ws] = None
        read_pause = core.read_pause
        try:
            async for frame in ws:
                receive(conn, frame)
                if conn.limits is not None:
                    pause = read_pause(conn)
                    if pause > 0:
                        # Its address is over its message budget: read slower.
                        await asyncio.sleep(pause)
        except ConnectionClosed:
            pass
        finally:
            self._open.pop(ws, None)
            core.disconnect(conn)
            if peer.closing is not None:
                with contextlib.suppress(Exception):
                    await peer.closing

    # -- observer feed ------------------------------------------------------

    def state(self) -> ServerState:
        """What the server holds and is doing right now."""
        return self.core.state()

    def observe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with a :class:`ServerState` now and after changes
        (at most every ``observe_interval`` seconds). Returns an unsubscribe function."""
        return self.core.observe(callback)

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


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    db_path: Path | str | None = None,
    *,
    config: ServerConfig | None = None,
    **options: Any,
) -> SyncServer:
    """Start a server without ``async with``; stop it with ``await server.close()``."""
    return await SyncServer.start(host, port, db_path, config=config, **options)


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
