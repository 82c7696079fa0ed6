"""The device's link to the sync server: the asyncio shell around :class:`LinkEngine`.

Theory of operation
-------------------
The decisions (request ids, ``newest_seen``, gap detection, resync, epochs,
snapshot pages, heartbeat) live in :mod:`app.link.engine`, which does no I/O.
This shell owns the rest: one connection per device, kept up forever by
:meth:`SyncClient.start`'s background task (connect, feed every frame to the
engine, send what it queues, let its heartbeat tick), then a backoff delay
(exponential, jittered, interruptible) and the next URL in the list. The
status (:class:`ConnectionStatus`) turns ``online`` only once the engine is
caught up.

The transport is pluggable: ``connect(url)`` returns an open
:class:`Transport` (send text frames, iterate received ones, close). The
default is websockets' client; a simulator passes an in-memory network and
runs the real client on a virtual-clock loop (every wait here is on the
loop's clock; ``clock`` only stamps :attr:`ConnectionStatus.retry_at`).

Requests (``set``/``get``) wait for the link to be online, but never longer
than ``request_timeout`` in total; a dropped connection fails every request
in flight at once with :class:`DisconnectedError`. Errors are described in
:mod:`app.link.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from ssl import SSLContext, create_default_context
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from syncserver.protocol import DEFAULT_SPACE, MAX_FRAME_BYTES, Ack, Error, Push, Snapshot, Value

from .backoff import Backoff
from .engine import (
    NOT_SERVED,
    CaughtUp,
    LinkEngine,
    PushesReceived,
    ReplyReceived,
    SnapshotPage,
    SpaceRefused,
)
from .errors import (
    AckTimeoutError,
    ClientClosedError,
    DisconnectedError,
    LinkError,
    RequestTimeoutError,
    ServerRefusedError,
    ServerUnavailableError,
)
from .status import ConnectionStatus, Observable
from .urls import check_server_url

__all__ = [
    "ID_CLAIMED_REASON",
    "Backoff",
    "Connect",
    "RenewIdentity",
    "SyncClient",
    "Transport",
    "client_ssl_context",
    "connect_websocket",
]

log = logging.getLogger(__name__)

PushListener = Callable[[Push], None]
PushesListener = Callable[[Sequence[Push]], None]
SnapshotListener = Callable[[Snapshot], None]

_CONNECT_ERRORS = (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI)

ID_CLAIMED_REASON = "this device id has another secret"
"""The reason of the 1008 close that says another secret owns this device id."""

RenewIdentity = Callable[[], Awaitable[tuple[int, str]]]
"""Make, persist and adopt a fresh (device id, device secret); see :class:`SyncClient`."""


def _id_claimed(transport: object) -> bool:
    """Whether the server closed ``transport`` because another secret owns our device id.

    Exactly that close: any other 1008 (a wrong token) is not retried under a new id.
    """
    return (
        getattr(transport, "close_code", None) == 1008
        and getattr(transport, "close_reason", None) == ID_CLAIMED_REASON
    )


def _failure_reason(exc: BaseException) -> str:
    """Why a connection attempt failed or a connection ended, in a few words for a user."""
    match exc:
        case ConnectionClosed(rcvd=close) if close is not None:
            if close.code == 1008:
                return f"rejected: {close.reason or 'policy violation'} (1008)"
            return f"closed by the server ({close.code} {close.reason})".replace(" )", ")")
        case ConnectionClosed():
            return "connection lost"
        case InvalidStatus():
            return f"refused by the server (HTTP {exc.response.status_code})"
        case ssl.SSLCertVerificationError():
            return f"TLS: {exc.verify_message or exc.reason}"
        case ssl.SSLError():
            return f"TLS: {exc.reason or exc}"
        case ConnectionRefusedError():
            return "refused"
        case TimeoutError():
            return "timed out"
        case socket.gaierror():
            return f"unknown host ({exc.strerror})"
        case OSError(strerror=str(text)):
            return text
        case InvalidURI():
            return "not a valid ws:// URL"
    return str(exc) or type(exc).__name__


class Transport(Protocol):
    """One open connection carrying text frames (websockets' ``ClientConnection`` is one).

    Iterating yields every frame received and ends (or raises) when the
    connection closes; ``send`` raises once it is closed.
    """

    async def send(self, message: str) -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...

    async def close(self) -> None: ...


Connect = Callable[[str], Awaitable[Transport]]
"""Open a transport to a server URL, or raise (``OSError``, ``TimeoutError``...)."""


def client_ssl_context(cafile: str | Path | None = None) -> SSLContext:
    """TLS settings for ``wss://``: the system's CAs, or only those in ``cafile``."""
    return create_default_context(cafile=None if cafile is None else str(cafile))


async def connect_websocket(
    url: str, *, open_timeout: float = 10.0, ssl: SSLContext | None = None
) -> Transport:
    """The default transport: websockets' client, sized for the protocol's frames.

    ``ssl`` is used for ``wss://`` URLs (default: the system's CAs).
    """
    from websockets.asyncio.client import connect

    options: dict[str, Any] = {}
    if url.startswith("wss://") and ssl is not None:
        options["ssl"] = ssl
    connection = await connect(
        url,
        open_timeout=open_timeout,
        close_timeout=1.0,
        compression=None,  # small JSON frames gain nothing from deflate
        max_size=MAX_FRAME_BYTES,
        **options,
    )
    return connection


class SyncClient:
    """One device's connection to one space: requests, pushes, catch-up and reconnects.

    ``space`` is the space it joins (the protocol's ``"default"`` unless given):
    its sets and gets go there and only that space's pushes and snapshots reach
    the listeners; ``since`` and ``epoch`` are what the device stored for it. A
    server that refuses the space (``forbidden``, ``too_many_spaces``) ends the
    connection; the status says why and the client retries after the backoff.
    ``urls`` are tried in turn (failover). ``on_push`` gets every push (or
    ``on_pushes`` every batch at once), ``on_snapshot`` every snapshot page,
    ``on_new_epoch`` the server's new epoch before its first page, and
    ``on_caught_up`` the end of every snapshot; all on the event loop, before
    ``newest_seen`` moves past them (so a persisted ``newest_seen`` never
    claims more than was applied). ``drop_push`` may lose a push on purpose,
    as a flaky network would. ``connect``, ``rng`` and ``clock`` replace the
    transport, the backoff's randomness and the status clock.

    ``token`` is the server's shared token and ``device_secret`` this device's
    secret (PROTOCOL.md, "Credentials"); both go in every hello. For
    ``wss://`` URLs, ``ssl`` (an ``ssl.SSLContext``) or ``cafile`` (the CAs to
    trust instead of the system's) set up TLS.

    ``renew_identity`` is for a device whose id the server has bound to another
    secret (closed 1008 with reason :data:`ID_CLAIMED_REASON`: its database is
    new and another connection claimed the id first). It must make a fresh id and
    secret, persist them and return them; the client then reconnects under them.
    Without it such a device keeps retrying under the old id.
    """

    def __init__(
        self,
        urls: Sequence[str],
        device_id: int,
        *,
        since: int = 0,
        epoch: str | None = None,
        on_push: PushListener | None = None,
        on_pushes: PushesListener | None = None,
        on_snapshot: SnapshotListener | None = None,
        on_new_epoch: Callable[[str], None] | None = None,
        on_caught_up: Callable[[CaughtUp], None] | None = None,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        drop_push: Callable[[Push], bool] | None = None,
        rng: random.Random | None = None,
        heartbeat: float | None = 15.0,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
        device_secret: str | None = None,
        ssl: SSLContext | None = None,
        cafile: str | Path | None = None,
        renew_identity: RenewIdentity | None = None,
        space: str = DEFAULT_SPACE,
    ) -> None:
        if not urls:
            raise ValueError("SyncClient needs at least one server URL")
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        if connect is None:  # websockets will dial these: a typo fails here, not for ever
            urls = [check_server_url(url) for url in urls]
        self.urls: tuple[str, ...] = tuple(urls)
        self.device_id = device_id
        self.request_timeout = request_timeout
        self.on_push = on_push
        self.on_pushes = on_pushes
        self.on_snapshot = on_snapshot
        self.on_new_epoch = on_new_epoch
        self.on_caught_up = on_caught_up
        self.backoff = backoff if backoff is not None else Backoff()
        self.engine = LinkEngine(
            device_id,
            since=since,
            epoch=epoch,
            heartbeat=heartbeat,
            drop_push=drop_push,
            token=token,
            device_secret=device_secret,
            space=space,
        )
        if ssl is not None and cafile is not None:
            raise ValueError("give ssl or cafile, not both")
        self._ssl = ssl if cafile is None else client_ssl_context(cafile)
        self.newest_seen: Observable[int] = Observable(self.engine.newest_seen)
        """How far this device has applied every write of its space (a revision)."""
        self._status: Observable[ConnectionStatus] = Observable(ConnectionStatus("offline"))
        self._why: str | None = None
        """Why the last attempt failed or the last connection ended."""
        self._refused: str | None = None
        """Why the server refused this connection's hello for the space (None: it did not)."""
        self._connect: Connect = connect or self._connect_websocket
        self._clock = clock
        self._rng = rng or random.Random()
        self._pending: dict[int, asyncio.Future[Ack | Value | Error]] = {}
        self._online = asyncio.Event()
        self._wake = asyncio.Event()
        self._outbox = asyncio.Event()
        self._timer_moved = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._renew_identity = renew_identity
        self._id_claimed = False
        """The last connection was closed because another secret owns our id."""

    async def _connect_websocket(self, url: str) -> Transport:
        return await connect_websocket(url, open_timeout=self.request_timeout, ssl=self._ssl)

    # -- what the engine knows -------------------------------------------------------

    @property
    def space(self) -> str:
        """The space this client joins."""
        return self.engine.space

    @property
    def epoch(self) -> str | None:
        """The epoch of the server history this device follows (None: none yet)."""
        return self.engine.epoch

    @property
    def gaps_detected(self) -> int:
        return self.engine.gaps_detected

    @property
    def snapshots_applied(self) -> int:
        return self.engine.snapshots_applied

    @property
    def heartbeat(self) -> float | None:
        return self.engine.heartbeat

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
            "set", key, lambda: self.engine.send_set(key, value, local_revision)
        )
        if not isinstance(reply, Ack):
            raise LinkError(f"the server answered set {key!r} with {type(reply).__name__}")
        return reply

    async def get(self, key: str) -> Value:
        """Read ``key`` from the server (value None and revision 0 if never written)."""
        reply = await self._request("get", key, lambda: self.engine.send_get(key))
        if not isinstance(reply, Value):
            raise LinkError(f"the server answered get {key!r} with {type(reply).__name__}")
        return reply

    def resync(self) -> None:
        """Ask for everything after ``newest_seen`` again (no-op while offline)."""
        self.engine.resync(asyncio.get_running_loop().time())
        self._outbox.set()

    async def _request(self, kind: str, key: str, queue: Callable[[], int]) -> Ack | Value:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self.wait_online()
        except TimeoutError:
            raise DisconnectedError(
                f"{kind} {key!r}: not connected to the server within {self.request_timeout:g} s"
            ) from None
        if not self.engine.connected_now:
            raise DisconnectedError(f"{kind} {key!r}: the connection dropped")
        request_id = queue()
        future: asyncio.Future[Ack | Value | Error] = loop.create_future()
        self._pending[request_id] = future
        self._outbox.set()
        try:
            async with asyncio.timeout_at(deadline):
                reply = await future
        except TimeoutError:
            self.engine.forget_request(request_id)
            if kind == "set":
                raise AckTimeoutError(key, self.request_timeout) from None
            raise RequestTimeoutError(kind, key, self.request_timeout) from None
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            if reply.code == "unavailable":
                raise ServerUnavailableError(reply.code, reply.message)
            raise ServerRefusedError(reply.code, reply.message)
        return reply

    def _fail_pending(self, error: LinkError, request_ids: frozenset[int] | None = None) -> None:
        for request_id in tuple(self._pending if request_ids is None else request_ids):
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
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
            if self._id_claimed and self._renew_identity is not None:
                await self._take_new_identity()
                if self._closed:
                    return
            if caught_up:
                attempt = 1  # a good connection dropped: retry the same server soon
            else:
                attempt += 1
                index = (index + 1) % len(self.urls)  # fail over to the next server
            delay = self.backoff.delay(attempt, self._rng)
            retry_at = self._clock() + delay
            self._status.set(ConnectionStatus("offline", url, retry_at, attempt, self._why))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _take_new_identity(self) -> None:
        """Go on under a fresh id and secret, persisted by ``renew_identity`` first."""
        assert self._renew_identity is not None
        old = self.device_id
        try:
            device_id, secret = await self._renew_identity()
        except Exception:
            log.exception("device %s: taking a new device id failed", old)
            return
        self.device_id = self.engine.device_id = device_id
        self.engine.device_secret = secret
        log.warning(
            "device %s: the server has this device id bound to another secret (its "
            "database is new and another connection claimed the id first); "
            "continuing as device %s",
            old,
            device_id,
        )

    async def _connect_once(self, url: str) -> bool:
        """One connection's life; returns whether it got as far as online."""
        self._why = None
        self._refused = None
        self._id_claimed = False
        try:
            transport = await self._connect(url)
        except _CONNECT_ERRORS as exc:
            self._why = _failure_reason(exc)
            log.info("device %s: cannot connect to %s: %s", self.device_id, url, self._why)
            return False
        except Exception as exc:
            self._why = _failure_reason(exc)
            log.exception("device %s: connecting to %s failed", self.device_id, url)
            return False
        loop = asyncio.get_running_loop()
        self.engine.connected(loop.time())
        writer = loop.create_task(self._write(transport), name=f"optisync send {self.device_id}")
        beat = loop.create_task(self._beat(), name=f"optisync heartbeat {self.device_id}")
        self._outbox.set()
        caught_up = False
        try:
            async for frame in transport:
                if self._receive(frame, url):
                    caught_up = True
                if self._refused is not None:
                    break  # no snapshot will come: retry after the backoff
            self._why = self._refused or "closed by the server"
        except _CONNECT_ERRORS as exc:
            self._why = _failure_reason(exc)
            log.info("device %s: link to %s down: %s", self.device_id, url, self._why)
        except Exception as exc:
            # Whatever went wrong, the device keeps reconnecting: log it, retry.
            self._why = _failure_reason(exc)
            log.exception("device %s: link to %s failed", self.device_id, url)
        finally:
            writer.cancel()
            beat.cancel()
            self._id_claimed = _id_claimed(transport)
            lost = self.engine.disconnected()
            self._online.clear()
            if not self._closed:
                self._fail_pending(DisconnectedError(f"the connection to {url} dropped"), lost)
            with contextlib.suppress(Exception):
                await transport.close()
        return caught_up

    async def _write(self, transport: Transport) -> None:
        """Send whatever the engine queues, in order; a failed send ends the connection."""
        while True:
            await self._outbox.wait()
            self._outbox.clear()
            for frame in self.engine.data_to_send():
                try:
                    await transport.send(frame)
                except Exception as exc:
                    log.info("device %s: send failed: %s", self.device_id, exc)
                    with contextlib.suppress(Exception):
                        await transport.close()  # ends the read loop, which reconnects
                    return

    async def _beat(self) -> None:
        """Let the engine's heartbeat tick, so a lost last push is found without a successor."""
        loop = asyncio.get_running_loop()
        while True:
            due = self.engine.heartbeat_due
            self._timer_moved.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._timer_moved.wait()
                continue  # the due time moved (or appeared): look again
            self.engine.tick(loop.time())
            self._outbox.set()

    # -- incoming frames -------------------------------------------------------------

    def _receive(self, frame: str | bytes, url: str) -> bool:
        """Feed one frame to the engine and act on what it meant; returns True when
        this frame made the link online."""
        engine = self.engine
        due = engine.heartbeat_due
        engine.receive(frame, asyncio.get_running_loop().time())
        went_online = False
        for event in engine.events_received():
            try:
                went_online |= self._dispatch(event, url)
            except Exception:
                # A failing listener loses this one message, never the connection.
                log.exception("device %s: handling %s failed", self.device_id, event)
        self.newest_seen.set(engine.newest_seen)
        self._outbox.set()
        if engine.heartbeat_due != due:
            self._timer_moved.set()
        return went_online

    def _dispatch(self, event: object, url: str) -> bool:
        match event:
            case PushesReceived(pushes=pushes):
                if self.on_pushes is not None:
                    self.on_pushes(pushes)
                elif self.on_push is not None:
                    for push in pushes:
                        self.on_push(push)
            case SnapshotPage(snapshot=page, new_epoch=new_epoch):
                if new_epoch and self.on_new_epoch is not None:
                    self.on_new_epoch(page.epoch)
                if self.on_snapshot is not None:
                    self.on_snapshot(page)
            case CaughtUp(went_online=went_online):
                if self.on_caught_up is not None:
                    try:
                        self.on_caught_up(event)
                    except Exception:  # still online: later resyncs repair the state
                        log.exception("device %s: catching up failed", self.device_id)
                if went_online:
                    self._online.set()
                    self._status.set(ConnectionStatus("online", url, None, 0))
                    return True
            case ReplyReceived(request_id=request_id, reply=reply):
                future = self._pending.get(request_id)
                if future is not None and not future.done():
                    future.set_result(reply)
            case SpaceRefused(space=space, code=code):
                if code == NOT_SERVED:
                    self._refused = f"the server does not serve space {space!r} (older server?)"
                else:
                    self._refused = f"the server refused space {space!r} ({code})"
                log.warning("device %s: %s", self.device_id, self._refused)
        return False
