"""The simulated device link: what a real client does with the connection.

It connects (and reconnects after a cut or a server restart) and says
``hello since W``, where W, the *watermark*, is the newest revision up to
which this device has seen every write. The server's revision counter is
global and every write is pushed to every device, so revisions arrive
without holes unless something was lost: any revision above W + 1 (in a
push, an ack or a snapshot) opens a gap, and if the gap is still open after
``gap_grace`` seconds (frames overtake each other) the link catches up with
``hello since W``. A periodic hello (``heartbeat``) finds a gap left by a
lost last push. Snapshot entries reach the cubit through ``server_push``
like any other push.

Writes fail at once when offline and fail when the connection drops before
their ack; the flow's ``on_finish`` then reloads the key with :meth:`read`,
which waits for the connection and retries until it gets an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from app.sync import PushMetadata

from .messages import Ack, Error, Get, Hello, Push, ServerFrame, Set, Snapshot, Value
from .network import Connection, Network

__all__ = ["Link", "LinkTimings", "SimLink", "WriteRefused", "Written"]


@dataclass(frozen=True, slots=True)
class Written:
    """The server's answer to a write or a read: the value and its revision."""

    value: Any
    server_revision: int


class WriteRefused(Exception):
    """The server answered a write with an error."""


class Link(Protocol):
    """What a flow may ask of its device's link."""

    async def write(self, key: Hashable, value: Any, local_revision: int) -> Written:
        """Send a write; return the ack, or raise if it fails."""
        ...

    async def read(self, key: Hashable) -> Written:
        """Read a key from the server, waiting for a connection if need be."""
        ...


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """How patient a simulated link is, in virtual seconds."""

    reconnect: float = 0.2
    gap_grace: float = 0.2
    heartbeat: float = 1.0


PushHandler = Callable[[Hashable, Any, PushMetadata], None]
Observer = Callable[[str, Hashable, Any], None]


class SimLink:
    """One device's connection to the model server (see the module docstring)."""

    def __init__(
        self,
        device: int,
        device_id: int,
        network: Network,
        can_connect: Callable[[int], bool],
        on_push: PushHandler,
        observe: Observer,
        timings: LinkTimings,
    ) -> None:
        self.device = device
        self.device_id = device_id
        self._network = network
        self._can_connect = can_connect
        self._on_push = on_push
        self._observe = observe
        self.timings = timings
        self.connection: Connection | None = None
        self.watermark = 0
        self.newest_seen = 0
        self._seen: set[int] = set()
        self.resyncing = False
        self._gap_timer: asyncio.TimerHandle | None = None
        self._next_request = 1
        self._writes: dict[int, asyncio.Future[Written]] = {}
        self._reads: dict[int, asyncio.Future[Written]] = {}
        self.reads_waiting = 0
        self._online = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
        self.resyncs = 0
        self.gap_resyncs = 0

    # -- connecting ------------------------------------------------------------------

    def start(self) -> None:
        self._try_connect()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    def _try_connect(self) -> None:
        if self.connection is not None:
            return
        if not self._can_connect(self.device):
            asyncio.get_running_loop().call_later(self.timings.reconnect, self._try_connect)
            return
        self.connection = self._network.open(self.device, self)
        self._online.set()
        self._hello()

    def connection_lost(self) -> None:
        self.connection = None
        self.resyncing = False
        self._online.clear()
        lost = ConnectionError("connection lost before the answer")
        for future in [*self._writes.values(), *self._reads.values()]:
            if not future.done():
                future.set_exception(lost)
        self._writes.clear()
        self._reads.clear()
        asyncio.get_running_loop().call_later(self.timings.reconnect, self._try_connect)

    def _hello(self) -> None:
        assert self.connection is not None
        self.resyncing = True
        self.resyncs += 1
        self._network.send_up(self.connection, Hello(self.device_id, self.watermark))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.timings.heartbeat)
            if self.connection is not None and not self.resyncing:
                self._hello()

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    @property
    def settled(self) -> bool:
        """Connected, caught up, and waiting for no answer."""
        return (
            self.connection is not None
            and not self.resyncing
            and not self._writes
            and not self._reads
            and self.reads_waiting == 0
        )

    # -- requests ----------------------------------------------------------------------

    async def write(self, key: Hashable, value: Any, local_revision: int) -> Written:
        if self.connection is None:
            raise ConnectionError("offline")
        request_id = self._next_request
        self._next_request += 1
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._writes[request_id] = future
        self._observe("write", key, value)
        try:
            self._network.send_up(
                self.connection, Set(request_id, key, value, local_revision, self.device_id)
            )
            return await future
        finally:
            self._writes.pop(request_id, None)
            self._observe("write_done", key, value)

    async def read(self, key: Hashable) -> Written:
        self.reads_waiting += 1
        try:
            while True:
                while self.connection is None:
                    await self._online.wait()  # woken, it may have dropped again already
                request_id = self._next_request
                self._next_request += 1
                future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
                self._reads[request_id] = future
                self._network.send_up(self.connection, Get(request_id, key))
                try:
                    return await future
                except ConnectionError:
                    continue
                finally:
                    self._reads.pop(request_id, None)
        finally:
            self.reads_waiting -= 1

    # -- frames from the server ----------------------------------------------------------

    def receive(self, frame: ServerFrame) -> None:
        if isinstance(frame, Push):
            self._saw(frame.server_revision)
            self._on_push(
                frame.key,
                frame.value,
                PushMetadata(frame.server_revision, frame.local_revision, frame.device_id),
            )
        elif isinstance(frame, Ack):
            self._answer(self._writes, frame.request_id, frame.value, frame.server_revision)
            self._observe("ack", frame.key, Written(frame.value, frame.server_revision))
            self._hint(frame.server_revision)
        elif isinstance(frame, Snapshot):
            self.resyncing = False
            for entry in frame.values:
                self._on_push(
                    entry.key,
                    entry.value,
                    PushMetadata(
                        entry.server_revision, entry.local_revision or 0, entry.device_id or 0
                    ),
                )
            self.watermark = max(self.watermark, frame.revision)
            self._saw(frame.revision)
        elif isinstance(frame, Value):
            self._answer(self._reads, frame.request_id, frame.value, frame.server_revision)
        elif isinstance(frame, Error):
            future = self._writes.get(frame.request_id)
            if future is not None and not future.done():
                future.set_exception(WriteRefused(f"{frame.code}: {frame.message}"))

    @staticmethod
    def _answer(
        pending: dict[int, asyncio.Future[Written]], request_id: int, value: Any, revision: int
    ) -> None:
        future = pending.get(request_id)
        if future is not None and not future.done():
            future.set_result(Written(value, revision))

    # -- gap detection --------------------------------------------------------------------

    def _saw(self, revision: int) -> None:
        """Record a revision this device has received the write of."""
        if revision > self.watermark:
            self._seen.add(revision)
        while self.watermark + 1 in self._seen:
            self.watermark += 1
        self._seen = {r for r in self._seen if r > self.watermark}
        self._hint(revision)

    def _hint(self, revision: int) -> None:
        """Note that the server has reached ``revision``; check for a gap later."""
        self.newest_seen = max(self.newest_seen, revision)
        if self.newest_seen > self.watermark and self._gap_timer is None:
            self._gap_timer = asyncio.get_running_loop().call_later(
                self.timings.gap_grace, self._check_gap
            )

    def _check_gap(self) -> None:
        self._gap_timer = None
        if self.newest_seen <= self.watermark:
            return
        if self.connection is not None and not self.resyncing:
            self.gap_resyncs += 1
            self._hello()
        else:
            self._hint(self.newest_seen)  # look again once the current resync is answered
