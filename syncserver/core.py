"""The sync server without I/O: frames in, frames out, per connection.

Theory of operation
-------------------
:class:`ServerCore` holds every connection's state, answers requests, and
decides what each connection receives when writes commit. It never touches a
socket or starts a task: the shell (``server.py`` for websockets, or a test
harness) hands it frames with :meth:`ServerCore.receive` and reaches each
connection through a :class:`Peer` it supplies (send frames, close with a
code, abort). Timers (the demo delays, the observer feed) come from an
injected :class:`Clock`, which an asyncio loop satisfies.

The backend reports durable writes in revision order through
:meth:`ServerCore.committed`; each writer gets its ack, then every
connection that said hello gets the pushes, in that order, all frames of one
commit in one :meth:`Peer.send` per connection (pushes encoded once, in a
:class:`Shared` the shell serializes once). Sends are synchronous, so with
default settings a connection sees pushes in revision order and a snapshot
never misses a write that is not pushed to that connection after it.

Rules a connection lives by (``PROTOCOL.md`` has the wire details):

* a ``hello`` binds the connection to its ``device_id``; before it, ``set``
  and ``get`` get ``hello_required`` and no pushes are sent; a ``set`` or a
  second ``hello`` naming another device gets ``device_mismatch``;
* each ``hello`` joins its space (``--space-access`` may refuse it with
  ``forbidden``, ``max_spaces_per_connection`` with ``too_many_spaces``) and
  is answered by a snapshot of that space; from its first page on the
  connection gets the space's pushes. A ``set`` or ``get`` on a space not
  joined gets ``not_joined``. A commit touches only the subscribers of the
  spaces it wrote: its pushes are encoded once and shared per space (a
  connection in several of them gets its own frames, in revision order);
* on a server with a token or that requires device secrets, any frame but a
  good ``hello`` before one closes the connection with 1008; a hello's
  ``device_secret`` is checked against the backend's record (the first one
  recorded for that id wins), and frames that arrive meanwhile wait;
* limits that protect the whole server (``access.py``): the bytes queued for
  all connections together are capped (the biggest queues are dropped first);
  each client address has a message budget (:meth:`ServerCore.read_pause`
  tells the shell how long to stop reading) and a catch-up budget in bytes (a
  hello is answered once it is in credit; a newer hello replaces a waiting one);
* every frame the server sends is at most MAX_PAGE_BYTES (snapshots and
  ``pushes`` frames are split; the observer feed is capped);
* :meth:`ServerCore.begin_shutdown` refuses new work with ``unavailable``
  while the backend drains; :meth:`ServerCore.finish_shutdown` closes every
  connection with 1001 once each committed write has been acked and pushed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from .access import AddressLimits, secret_digest, secrets_match
from .backends import Backend, ChangePage, CommitCallback, FailureCallback, Write
from .catchup import BUFFER_BEFORE_NEXT_PAGE, PAGE_WAIT, CatchUp
from .chaos import ChaosControls
from .config import ServerConfig
from .connection import (
    CLOSE_GOING_AWAY,
    CLOSE_HISTORY_CHANGED,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    Cancellable,
    Clock,
    Connection,
    Peer,
    Shared,
)
from .feed import ObserverFeed, StateCallback, capped_state
from .frames import SnapshotPage, batch_frame, batch_frames, push_payload
from .limits import TokenBucket
from .protocol import (
    MAX_VALUE_BYTES,
    PROTOCOL_VERSION,
    Ack,
    Chaos,
    ChaosState,
    Error,
    ErrorCode,
    Get,
    Hello,
    Observe,
    ProtocolError,
    RequestId,
    ServerState,
    Set,
    Unobserve,
    Value,
    decode_client_message,
    encode_bytes,
    read_request_id,
)
from .reads import ReadQueue
from .stats import ServerStats

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_HISTORY_CHANGED",
    "CLOSE_POLICY",
    "BackendFactory",
    "Cancellable",
    "Clock",
    "Connection",
    "Peer",
    "ServerCore",
    "Shared",
    "StateCallback",
]

logger = logging.getLogger(__name__)

BackendFactory = Callable[[CommitCallback, FailureCallback], Backend]

_encode_value = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _SetRequest(Write):
    """A write this process accepted from one of its connections."""

    connection: Connection | None = None
    request_id: RequestId = 0
    received: float | None = None
    """The clock when its ``set`` arrived (for the commit latency metric)."""


_MAX_HELD_FRAMES = 256
"""Frames a connection may send while its device secret is being checked."""


def _queued(conn: Connection) -> int:
    return conn.queued


class ServerCore:
    """Request handling and fan-out decisions; see the module docstring.

    ``make_backend(on_commit, on_failure)`` creates the backend (for instance
    ``MemoryBackend``); the shell opens and closes it.
    """

    def __init__(
        self,
        make_backend: BackendFactory,
        clock: Clock,
        config: ServerConfig | None = None,
    ) -> None:
        self.config = config if config is not None else ServerConfig()
        self.clock = clock
        self.chaos = ChaosControls(on_change=self._changed)
        self.backend: Backend = make_backend(self.committed, self.failed)
        self.connections: dict[int, Connection] = {}
        self.requests_received = 0
        self.slow_connections_dropped = 0
        self.stats = ServerStats()
        """Counters for ``GET /metrics``."""
        self.closing = False
        self._reads = ReadQueue()
        """Snapshot page reads waiting for the backend, fairly, one at a time."""
        self._epoch: str | None = None
        self._next_id = 1
        # Who gets each space's pushes (insertion-ordered sets): a frame per
        # push, or batches.
        self._plain: dict[str, dict[Connection, None]] = {}
        self._batched: dict[str, dict[Connection, None]] = {}
        self.feed = ObserverFeed(self.clock, self.config.observe_interval, self.state)
        self._outstanding: dict[int, _SetRequest] = {}
        """Sets accepted and not yet answered (acked or refused)."""
        self._delayed: dict[object, tuple[Cancellable, Callable[[], None]]] = {}
        """Demo-delayed steps: their timer and what to do instead at shutdown."""
        self._waiting_gets: list[tuple[Connection, RequestId, Write]] = []
        """Gets whose answer was committed and is not pushed yet."""
        self._guarded = self.config.token is not None or self.config.require_device_secrets
        """Whether anything but a good hello closes a new connection."""
        self._addresses: dict[str, AddressLimits] = {}
        self.total_queued = 0
        """Bytes queued for every connection, as last reported (an overestimate)."""

    @property
    def revision(self) -> int:
        """The newest committed revision."""
        return self.backend.revision

    @property
    def spaces_joined(self) -> int:
        """Spaces at least one connection gets the pushes of."""
        return len(self._plain.keys() | self._batched.keys())

    @property
    def requests_in_flight(self) -> int:
        """Sets accepted and not yet acked or refused."""
        return len(self._outstanding)

    # -- connections --------------------------------------------------------

    def _limited(self, address: str) -> bool:
        if self.config.limit_loopback:
            return True
        try:
            return not ipaddress.ip_address(address).is_loopback
        except ValueError:
            return True

    def admits(self, address: str) -> bool:
        """Whether ``address`` may open one more connection."""
        limits = self._addresses.get(address)
        return limits is None or limits.connections < self.config.max_connections_per_address

    def connect(self, peer: Peer, remote: str = "?", address: str | None = None) -> Connection:
        """A new connection: it gets nothing until its hello (or observe).

        ``address`` is the client's (an IP): the per-address limits apply to it.
        """
        config = self.config
        now = self.clock.time()
        limits = None
        if address is not None and self._limited(address):
            limits = self._addresses.get(address)
            if limits is None:
                limits = self._addresses[address] = AddressLimits(
                    now,
                    message_rate=config.address_rate_limit,
                    message_burst=config.address_rate_burst,
                    catchup_rate=config.catchup_rate,
                    catchup_burst=config.catchup_burst,
                )
            limits.connections += 1
        conn = Connection(
            peer,
            self._next_id,
            remote,
            TokenBucket(config.rate_limit, config.rate_burst, now),
            config.max_send_buffer,
            address,
            limits,
        )
        self._next_id += 1
        self.stats.connections += 1
        self.connections[conn.id] = conn
        self._changed()
        return conn

    def disconnect(self, conn: Connection) -> None:
        """The connection is gone; its pending acks are dropped when they come."""
        self._forget(conn)
        if self.connections.pop(conn.id, None) is not None and conn.device_id is not None:
            logger.info("device %d disconnected from %s", conn.device_id, conn.remote)
        limits = conn.limits
        if limits is not None and conn.address is not None:
            conn.limits = None
            limits.connections -= 1
            now = self.clock.time()
            # An address in debt keeps its debt when it reconnects.
            if (
                limits.connections <= 0
                and not limits.messages.wait(now)
                and not limits.catchup.wait(now)
            ):
                self._addresses.pop(conn.address, None)
        self._changed()

    def _forget(self, conn: Connection) -> None:
        """Stop sending to ``conn``: no pushes, no feed, no pending catch-up."""
        conn.closed = True
        for space in conn.followed:
            self.backend.unfollow(space)
        conn.followed.clear()
        for space in conn.subscribed:
            self._unsubscribe(conn, space)
        conn.subscribed.clear()
        conn.catch_ups.clear()
        self.feed.unwatch(conn)
        conn.pending_hellos.clear()
        conn.held = None
        if conn.catchup_timer is not None:
            conn.catchup_timer.cancel()
            conn.catchup_timer = None
        self.total_queued -= conn.queued
        conn.queued = 0

    def read_pause(self, conn: Connection) -> float:
        """Seconds the shell should wait before reading ``conn``'s next frame:
        its address sent more than its message budget."""
        limits = conn.limits
        return 0.0 if limits is None else limits.messages.wait(self.clock.time())

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection with ``code``."""
        for conn in list(self.connections.values()):
            self._close(conn, code, reason)

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closed:
            return
        self._forget(conn)
        conn.peer.close(code, reason)

    # -- requests -----------------------------------------------------------

    def receive(self, conn: Connection, frame: str | bytes) -> None:
        """Handle one frame from ``conn``; everything it causes is sent at once."""
        if conn.closed:
            return
        if conn.held is not None:
            if len(conn.held) >= _MAX_HELD_FRAMES:
                self._close(conn, CLOSE_POLICY, "wait for the snapshot after hello")
            else:
                conn.held.append(frame)
            return
        now = self.clock.time()
        if conn.limits is not None:
            conn.limits.messages.spend(1, now)
        guarded = self._guarded and not conn.authorized
        if not conn.bucket.take(now):
            if guarded:
                self._close(conn, CLOSE_POLICY, "hello with the server's credentials first")
                return
            self._error(conn, read_request_id(frame), "rate_limited", "too many messages")
            return
        try:
            message = decode_client_message(frame)
        except ProtocolError as exc:
            if guarded:
                self._close(conn, CLOSE_POLICY, "hello with the server's credentials first")
                return
            request_id = exc.request_id if exc.request_id is not None else read_request_id(frame)
            self._error(conn, request_id, exc.code, exc.message)
            return
        kind = type(message)
        if guarded and kind is not Hello:
            self._close(conn, CLOSE_POLICY, "hello with the server's credentials first")
            return
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
        elif kind is Hello:
            self._on_hello(conn, message)  # type: ignore[arg-type]
        else:
            self._on_demo_control(conn, message)  # type: ignore[arg-type]

    def _on_hello(self, conn: Connection, hello: Hello) -> None:
        if self.closing:
            return
        config = self.config
        # Every hello carries the token, the first and every resync.
        if config.token is not None and not secrets_match(hello.token, config.token):
            self._close(conn, CLOSE_POLICY, "hello with the server's token first")
            return
        if conn.authorized:
            self._accept_hello(conn, hello)
            return
        secret = hello.device_secret
        if secret is None:
            if config.require_device_secrets:
                self._close(conn, CLOSE_POLICY, "this server needs the device's secret in hello")
                return
            conn.authorized = True
            self._accept_hello(conn, hello)
            return
        digest = secret_digest(secret)
        conn.held = []

        def claimed(recorded: bytes | None) -> None:
            self._claimed(conn, hello, digest, recorded)

        self.backend.claim_device(hello.device_id, digest, claimed)

    def _claimed(
        self, conn: Connection, hello: Hello, digest: bytes, recorded: bytes | None
    ) -> None:
        """The backend answered which secret ``hello.device_id`` has."""
        held, conn.held = conn.held, None
        if conn.closed or self.closing:
            return
        if recorded is None:
            self._close(conn, CLOSE_TRY_AGAIN_LATER, "cannot check the device's secret now")
            return
        if not hmac.compare_digest(recorded, digest):
            logger.warning(
                "connection %d (%s): hello as device %d with the wrong secret",
                conn.id,
                conn.remote,
                hello.device_id,
            )
            self._close(conn, CLOSE_POLICY, "this device id has another secret")
            return
        conn.authorized = True
        self._accept_hello(conn, hello)
        for frame in held or ():
            self.receive(conn, frame)

    def _accept_hello(self, conn: Connection, hello: Hello) -> None:
        if conn.device_id is not None and hello.device_id != conn.device_id:
            self._error(
                conn,
                None,
                "device_mismatch",
                f"this connection belongs to device {conn.device_id}",
            )
            return
        self._check_epoch()
        if conn.closed:
            return
        if conn.device_id is None:
            logger.info("device %d connected from %s", hello.device_id, conn.remote)
        conn.device_id = hello.device_id
        space = hello.space
        if not self._may_join(hello.device_id, space):
            self._error(
                conn, None, "forbidden", f"device {hello.device_id} may not join this space", space
            )
            return
        if space not in conn.spaces and len(conn.spaces) >= self.config.max_spaces_per_connection:
            self._error(
                conn,
                None,
                "too_many_spaces",
                f"a connection joins at most {self.config.max_spaces_per_connection} spaces",
                space,
            )
            return
        conn.protocol = min(hello.protocol, PROTOCOL_VERSION)
        joining = space not in conn.spaces
        conn.spaces[space] = None
        # A newer hello replaces one still waiting for the catch-up budget.
        conn.pending_hellos[space] = hello
        if joining and not self._follow(conn, space):
            return  # resumes once the backend follows the space
        if conn.catchup_timer is None:
            self._catch_up(conn)

    def _follow(self, conn: Connection, space: str) -> bool:
        """Have the backend follow ``space`` for ``conn``; False while it starts
        to (Redis subscribes first): the connection's frames wait meanwhile, so
        nothing reaches a space before this process gets its pushes."""
        conn.followed.append(space)

        def followed(ok: bool) -> None:
            held, conn.held = conn.held, None
            if conn.closed or self.closing:
                return
            if not ok:
                conn.followed.remove(space)
                self._close(conn, CLOSE_TRY_AGAIN_LATER, "cannot follow the space now")
                return
            if conn.catchup_timer is None:
                self._catch_up(conn)
            for frame in held or ():
                self.receive(conn, frame)

        if self.backend.follow(space, followed):
            return True
        conn.held = []
        return False

    def _may_join(self, device_id: int, space: str) -> bool:
        access = self.config.space_access
        if access is None:
            return True
        if space not in access:
            return False
        devices = access[space]
        return devices is None or device_id in devices

    def _catch_up(self, conn: Connection) -> None:
        """Answer the connection's pending hellos, once its address may catch up."""
        conn.catchup_timer = None
        while conn.pending_hellos and not conn.closed and not self.closing:
            limits = conn.limits
            if limits is not None:
                wait = limits.catchup.wait(self.clock.time())
                if wait > 0:
                    conn.catchup_timer = self.clock.call_later(wait, lambda: self._catch_up(conn))
                    return
            space = next(iter(conn.pending_hellos))
            self._answer_hello(conn, space, conn.pending_hellos.pop(space))

    def _answer_hello(self, conn: Connection, space: str, hello: Hello) -> None:
        """Snapshot ``space`` for ``conn`` from ``hello.since`` on, and push its writes."""
        backend = self.backend
        if conn.batch != hello.batch_pushes:
            conn.batch = hello.batch_pushes
            for joined in conn.subscribed:  # switch to the asked form now
                self._subscribe(conn, joined)
        since = hello.since if hello.epoch is None or hello.epoch == backend.epoch else 0
        if since >= backend.head(space):
            # Nothing in the space after ``since`` (the heartbeat's usual case):
            # one empty page, no read at all.
            conn.catch_ups.pop(space, None)
            self._subscribe(conn, space)
            page = SnapshotPage(
                backend.reported(space),
                epoch=backend.epoch,
                since=since,
                protocol=conn.protocol,
                space=space,
            )
            conn.peer.send((page.frame([], more=False),))
        else:
            run = conn.catch_ups[space] = CatchUp(
                since, epoch=backend.epoch, protocol=conn.protocol, space=space
            )
            self._read_page(conn, run)
        self._changed()

    def _subscribe(self, conn: Connection, space: str) -> None:
        """``conn`` gets every push of ``space`` from now on, one frame each or in batches."""
        self._unsubscribe(conn, space)
        table = self._batched if conn.batch else self._plain
        subscribers = table.get(space)
        if subscribers is None:
            subscribers = table[space] = {}
        subscribers[conn] = None
        conn.subscribed[space] = None

    def _unsubscribe(self, conn: Connection, space: str) -> None:
        for table in (self._plain, self._batched):
            subscribers = table.get(space)
            if subscribers is not None and subscribers.pop(conn, 0) is None and not subscribers:
                del table[space]

    # -- catch-up, page by page (catchup.py) ---------------------------------

    def _read_page(self, conn: Connection, run: CatchUp) -> None:
        """Queue the next page read; reads take turns between addresses (reads.py)."""
        if conn.closed or conn.catch_ups.get(run.space) is not run:
            return  # gone, or a newer hello started another snapshot

        def start(finish: Callable[[], None]) -> None:
            if conn.closed or conn.catch_ups.get(run.space) is not run or self.closing:
                finish()  # dropped while it waited
                return

            def deliver(page: ChangePage | None) -> None:
                try:
                    if page is None:
                        # The device would wait for the rest forever: let it reconnect.
                        if conn.catch_ups.get(run.space) is run:
                            self._close(conn, CLOSE_TRY_AGAIN_LATER, "could not read the snapshot")
                        return
                    self._on_page(conn, run, page)
                finally:
                    finish()

            self.backend.read_changes(run.space, run.after, run.revision, run.budget, deliver)

        owner = conn.address if conn.limits is not None else conn
        self._reads.add(owner, (conn, run.space), start)

    def _on_page(self, conn: Connection, run: CatchUp, page: ChangePage) -> None:
        if conn.closed or conn.catch_ups.get(run.space) is not run:
            return
        if page.read_at < self.backend.head(run.space):
            # Pushes of the space newer than this read went out already (or, on
            # the first page, would be missed): the page might show older values. Again,
            # paid for like a page sent, so re-reads cannot read for free.
            if conn.limits is not None:
                stale = sum(len(entry) + 1 for entry in page.entries)
                conn.limits.catchup.spend(stale, self.clock.time())
            self._next_page(conn, run, conn.peer.send(()))
            return
        frame = run.page
        if frame is None:
            frame = run.start(page.read_at)
            self._subscribe(conn, run.space)
        run.after = page.last
        more = not page.complete
        # A snapshot is as big as the database, not a sign of a stalled reader:
        # it is sent a page at a time, each page once the reader has taken most
        # of the last, so the connection may have one page more queued than
        # max_send_buffer before it counts as slow (it still counts in the total,
        # max_total_send_buffer).
        payload = frame.frame(page.entries, more=more)
        now = self.clock.time()
        if conn.limits is not None:
            conn.limits.catchup.spend(len(payload), now)
        conn.send_allowance = self.config.max_send_buffer + BUFFER_BEFORE_NEXT_PAGE + len(payload)
        buffered = conn.peer.send((payload,))
        self._note_queued(conn, buffered)
        self._shed_if_over()
        if not more:
            del conn.catch_ups[run.space]
            self._changed()
            return
        self._next_page(conn, run, buffered)

    def _next_page(self, conn: Connection, run: CatchUp, buffered: int) -> None:
        """Read the next page on a later loop iteration, once the reader keeps up
        and its address may catch up further."""
        if conn.closed or conn.catch_ups.get(run.space) is not run:
            return
        wait = 0.0
        if buffered > BUFFER_BEFORE_NEXT_PAGE:
            wait = PAGE_WAIT
        elif conn.limits is not None:
            wait = conn.limits.catchup.wait(self.clock.time())
        if wait > 0:

            def look_again() -> None:
                if not conn.closed and conn.catch_ups.get(run.space) is run:
                    self._next_page(conn, run, conn.peer.send(()))

            self.clock.call_later(wait, look_again)
        else:
            self.clock.call_later(0, lambda: self._read_page(conn, run))

    def _refuse_request(
        self,
        conn: Connection,
        request_id: RequestId,
        space: str,
        device_id: int | None = None,
    ) -> bool:
        """Refuse a set or get before a hello, for another device, or on a space
        the connection has not joined; True if it was refused."""
        if self.closing:
            self._error(conn, request_id, "unavailable", "the server is shutting down")
            return True
        if conn.device_id is None:
            self._error(conn, request_id, "hello_required", "send a hello first")
            return True
        if device_id is not None and device_id != conn.device_id:
            self._error(
                conn,
                request_id,
                "device_mismatch",
                f"this connection belongs to device {conn.device_id}, not {device_id}",
            )
            return True
        if space not in conn.spaces:
            self._error(conn, request_id, "not_joined", "send a hello for this space first", space)
            return True
        return False

    def _refuse_injected(self, conn: Connection, request_id: RequestId) -> None:
        """An injected failure answers after the demo's round trip, as a real answer
        would, so a device shows its optimistic value for that long first."""
        settings = self.chaos.settings
        delay = settings.write_delay + settings.ack_delay
        message = "failed on purpose (demo)"
        if delay:
            self._later(delay, lambda: self._error(conn, request_id, "injected_failure", message))
        else:
            self._error(conn, request_id, "injected_failure", message)

    def _on_get(self, conn: Connection, get: Get) -> None:
        if self._refuse_request(conn, get.request_id, get.space):
            return
        if self.chaos.take_failure():
            self._refuse_injected(conn, get.request_id)
            return
        self.backend.lookup(
            get.space,
            get.key,
            lambda found: self._found(conn, get, found),
            lambda: self._error(conn, get.request_id, "unavailable", "cannot read the database"),
        )

    def _found(self, conn: Connection, get: Get, found: Write | None) -> None:
        if conn.closed:
            return
        if found is not None and found.revision > self.backend.reported(get.space):
            # Durable, but its push has not gone out yet (the backend read the
            # database): answer right after that push, so no reply is ahead of the pushes.
            self._waiting_gets.append((conn, get.request_id, found))
            return
        self._answer_get(conn, get.request_id, get.space, get.key, found)

    def _answer_get(
        self,
        conn: Connection,
        request_id: RequestId,
        space: str,
        key: str,
        found: Write | None,
    ) -> None:
        if found is None:
            reply = Value(request_id, key, None, 0, space)
        else:
            reply = Value(request_id, key, msgspec.Raw(found.value), found.revision, space)
        self._send(conn, encode_bytes(reply))

    def _answer_waiting_gets(self) -> None:
        reported = self.backend.reported
        waiting, self._waiting_gets = self._waiting_gets, []
        for conn, request_id, found in waiting:
            if found.revision > reported(found.space):
                self._waiting_gets.append((conn, request_id, found))
            elif not conn.closed:
                self._answer_get(conn, request_id, found.space, found.key, found)

    def _on_set(self, conn: Connection, set_: Set) -> None:
        if self._refuse_request(conn, set_.request_id, set_.space, set_.device_id):
            return
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
            self._refuse_injected(conn, set_.request_id)
            return
        device_id = conn.device_id
        assert device_id is not None
        request = _SetRequest(
            set_.key, value, 0, set_.local_revision, device_id, set_.space, 0, conn,
            set_.request_id, self.clock.time(),
        )  # fmt: skip
        self._outstanding[id(request)] = request
        delay = self.chaos.settings.write_delay
        if delay:
            self._later(
                delay,
                lambda: self._submit(request),
                lambda: self._refuse(request, "the server is shutting down"),
            )
        else:
            self._submit(request)

    def _submit(self, request: _SetRequest) -> None:
        try:
            self.backend.submit(request)
        except RuntimeError:
            self._refuse(request, "the server is shutting down")

    def _on_demo_control(self, conn: Connection, message: Chaos | Observe | Unobserve) -> None:
        if self.closing:
            return
        if self.config.token is not None and conn.device_id is None:
            # The feed shows every value: on a server with a token, only to its holders.
            self._error(conn, message.request_id, "hello_required", "hello with the token first")
            return
        if not self.config.allow_chaos:
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
            conn.observing = True
            self.feed.watch(conn)
        else:
            self.feed.unwatch(conn)
            conn.observing = False

    # -- commits and fan-out ------------------------------------------------

    def committed(self, writes: Sequence[Write]) -> None:
        """Writes are durable: ack each writer, push to everyone, in revision order."""
        try:
            self._committed(writes)
        finally:
            if self._waiting_gets:
                self._answer_waiting_gets()

    def _committed(self, writes: Sequence[Write]) -> None:
        self._check_epoch()
        if not writes:
            return
        settings = self.chaos.settings
        if not self.closing and (
            settings.ack_delay
            or not settings.push_enabled
            or settings.push_delay
            or settings.push_jitter
        ):
            self.stats.committed(writes, self.clock.time(), self._push_count(writes))
            self._committed_with_chaos(writes)
            return
        if not settings.push_enabled:
            self.stats.committed(writes, self.clock.time(), 0)
            self._committed_without_pushes(writes)
            return
        # Fast path: each push is encoded once; each connection gets its acks,
        # then the pushes of its spaces, in one send. Only the spaces written
        # are looked at, whatever the number of spaces.
        outgoing: dict[Connection, list[bytes]] = {}
        payloads: list[bytes] = []
        by_space: dict[str, list[bytes]] = {}
        outstanding = self._outstanding
        for write in writes:
            if type(write) is _SetRequest and write.connection is not None:
                outstanding.pop(id(write), None)
                ack = encode_bytes(
                    Ack(
                        write.request_id,
                        write.key,
                        msgspec.Raw(write.value),
                        write.revision,
                        write.space,
                    )
                )
                frames = outgoing.get(write.connection)
                if frames is None:
                    outgoing[write.connection] = [ack]
                else:
                    frames.append(ack)
            payload = push_payload(write)
            payloads.append(payload)
            pushes = by_space.get(write.space)
            if pushes is None:
                by_space[write.space] = [payload]
            else:
                pushes.append(payload)
        several = len(by_space) > 1
        mixed: dict[Connection, None] = {}
        """Connections in more than one space: they may need pushes of several."""
        slow: list[Connection] = []
        total = self.total_queued
        delivered = 0
        for space, pushes in by_space.items():
            for table, batched in ((self._plain, False), (self._batched, True)):
                subscribers = table.get(space)
                if not subscribers:
                    continue
                delivered += len(pushes) * len(subscribers)
                shared = Shared(batch_frames(pushes) if batched else pushes)
                for conn in subscribers:
                    if several and len(conn.subscribed) > 1:
                        mixed[conn] = None
                        continue
                    queued = conn.peer.send(outgoing.pop(conn, ()), shared)
                    total += queued - conn.queued
                    conn.queued = queued
                    if queued > conn.send_allowance:
                        slow.append(conn)
        self.total_queued = total
        for conn in mixed:
            # One stream in revision order across the spaces it gets.
            spaces = conn.subscribed
            mine = [p for w, p in zip(writes, payloads, strict=True) if w.space in spaces]
            frames = outgoing.pop(conn, [])
            frames.extend(batch_frames(mine) if conn.batch else mine)
            self._note_queued(conn, conn.peer.send(frames))
            if conn.queued > conn.send_allowance:
                slow.append(conn)
        for conn, acks in outgoing.items():
            if not conn.closed:
                self._note_queued(conn, conn.peer.send(acks))
        self.stats.committed(writes, self.clock.time(), delivered)
        for conn in slow:
            self._drop_slow(conn)
        self._shed_if_over()
        self._changed()

    def _push_count(self, writes: Sequence[Write]) -> int:
        """How many pushes ``writes`` make: one per write per subscriber of its space."""
        count = 0
        for write in writes:
            count += len(self._plain.get(write.space, ())) + len(self._batched.get(write.space, ()))
        return count

    def _committed_without_pushes(self, writes: Sequence[Write]) -> None:
        for write in writes:
            if type(write) is _SetRequest:
                self._ack(write)
        self._changed()

    def _committed_with_chaos(self, writes: Sequence[Write]) -> None:
        """The same as the fast path, one frame at a time, with the demo delays."""
        settings = self.chaos.settings
        for write in writes:
            if type(write) is _SetRequest:
                if settings.ack_delay:
                    self._later(settings.ack_delay, self._ack_action(write))
                else:
                    self._ack(write)
            if not settings.push_enabled:
                continue
            push = push_payload(write)
            space = write.space
            for conn in (*self._plain.get(space, ()), *self._batched.get(space, ())):
                frame = batch_frame([push]) if conn.batch else push
                delay = self.chaos.push_delay()
                if delay:
                    self._later(delay, self._send_action(conn, frame))
                else:
                    self._send(conn, frame)
        self._changed()

    def _ack_action(self, write: _SetRequest) -> Callable[[], None]:
        return lambda: self._ack(write)

    def _send_action(self, conn: Connection, frame: bytes) -> Callable[[], None]:
        return lambda: self._send(conn, frame)

    def _ack(self, write: _SetRequest) -> None:
        self._outstanding.pop(id(write), None)
        conn = write.connection
        if conn is not None and not conn.closed:
            raw = msgspec.Raw(write.value)
            ack = Ack(write.request_id, write.key, raw, write.revision, write.space)
            self._send(conn, encode_bytes(ack))
        self._changed()

    def failed(self, writes: Sequence[Write], exc: BaseException) -> None:
        """Writes that could not be made durable: their writers get ``unavailable``."""
        logger.error("could not commit %d writes: %s", len(writes), exc)
        self.stats.failed(writes)
        for write in writes:
            if isinstance(write, _SetRequest):
                self._refuse(write, "not stored; try again later")

    def _refuse(self, request: _SetRequest, message: str) -> None:
        if self._outstanding.pop(id(request), None) is None:
            return
        conn = request.connection
        if conn is not None and not conn.closed:
            self._error(conn, request.request_id, "unavailable", message)
        self._changed()

    def _check_epoch(self) -> None:
        epoch = self.backend.epoch
        if self._epoch is None:
            self._epoch = epoch
        elif epoch != self._epoch:
            logger.warning("the database's history changed (epoch %s); resyncing devices", epoch)
            self._epoch = epoch
            self.close_all(CLOSE_HISTORY_CHANGED, "the database's history changed; resync")

    def _send(self, conn: Connection, frame: bytes) -> None:
        if conn.closed:
            return
        queued = conn.peer.send((frame,))
        self._note_queued(conn, queued)
        if queued > conn.send_allowance:
            self._drop_slow(conn)
        else:
            self._shed_if_over()

    def _note_queued(self, conn: Connection, queued: int) -> None:
        if conn.closed:
            return
        self.total_queued += queued - conn.queued
        conn.queued = queued

    def _shed_if_over(self) -> None:
        """Past ``max_total_send_buffer`` (as last reported), ask every peer what
        it still holds; drop the connections holding most until under the cap."""
        limit = self.config.max_total_send_buffer
        if self.total_queued <= limit:
            return
        total = 0
        for conn in self.connections.values():
            if not conn.closed:
                conn.queued = conn.peer.send(())
                total += conn.queued
        self.total_queued = total
        if total <= limit:
            return
        for conn in sorted(self.connections.values(), key=_queued, reverse=True):
            if self.total_queued <= limit:
                break
            if not conn.closed:
                logger.warning(
                    "%d bytes queued for all connections: dropping the biggest reader",
                    self.total_queued,
                )
                self._drop_slow(conn)

    def _drop_slow(self, conn: Connection) -> None:
        """A device that stopped reading would make pushes pile up without bound:
        drop it; when it reads again it reconnects and catches up."""
        if conn.closed:
            return
        self.slow_connections_dropped += 1
        logger.warning("dropping connection %d: it stopped reading its pushes", conn.id)
        self._forget(conn)
        conn.peer.abort()

    def _error(
        self,
        conn: Connection,
        request_id: RequestId | None,
        code: ErrorCode | str,
        message: str,
        space: str | None = None,
    ) -> None:
        self.stats.errors[code] += 1
        self._send(conn, encode_bytes(Error(request_id, code, message, space)))

    def _later(
        self,
        delay: float,
        action: Callable[[], None],
        at_shutdown: Callable[[], None] | None = None,
    ) -> None:
        token = object()

        def fire() -> None:
            if self._delayed.pop(token, None) is not None:
                action()

        handle = self.clock.call_later(delay, fire)
        self._delayed[token] = (handle, at_shutdown if at_shutdown is not None else action)

    # -- shutdown -----------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Refuse new work; send delayed acks and pushes now; refuse delayed writes.

        The shell then closes the backend (which commits or fails what is
        queued, through :meth:`committed` and :meth:`failed`) and calls
        :meth:`finish_shutdown`.
        """
        self.closing = True
        self._reads.close()  # the connections are closing: their pages are not read
        delayed, self._delayed = self._delayed, {}
        for handle, at_shutdown in delayed.values():
            handle.cancel()
            at_shutdown()

    def finish_shutdown(self) -> None:
        """Refuse whatever the backend neither committed nor failed, then close
        every connection with 1001."""
        for request in list(self._outstanding.values()):
            self._refuse(request, "the server is shutting down")
        self.close_all(CLOSE_GOING_AWAY, "the server is shutting down")

    # -- observer feed ------------------------------------------------------

    def state(self) -> ServerState:
        """What the server holds and is doing right now (capped to one page)."""
        return capped_state(
            self.backend,
            self.connections.values(),
            requests_received=self.requests_received,
            requests_in_flight=len(self._outstanding),
            chaos=self.chaos.settings,
        )

    def observe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with a state now and after changes (at most every
        ``observe_interval`` seconds). Returns an unsubscribe function."""
        return self.feed.subscribe(callback)

    def _changed(self) -> None:
        self.feed.changed()
