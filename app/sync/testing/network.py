"""The simulated network: in-memory connections whose faults are data.

A :class:`Connection` has a client end (a :class:`~app.link.client.Transport`
the real ``SyncClient`` reads and writes) and a server end (a
:class:`~syncserver.core.Peer` the real ``ServerCore`` sends through). Every
frame gets its own latency, drawn from the schedule's seeded generator within
the current range, but frames on one connection stay in order, as TCP keeps
them; frames on different connections overtake each other. A frame bigger than
MAX_FRAME_BYTES is refused by the receiver, which closes the connection with
1009, as websockets' ``max_size`` does. Pushes to a device can be dropped or
duplicated on demand; a device can be cut off for a while; a closed or
aborted connection loses whatever was still travelling on it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from syncserver.core import Shared
from syncserver.protocol import MAX_FRAME_BYTES

__all__ = ["ClientEnd", "Connection", "Network", "Owner", "ServerEnd"]

CLOSE_TOO_BIG = 1009
_STEP = 1e-6
"""The least time between two frames on one connection, so they keep their order."""


class Owner(Protocol):
    """Whoever opened a connection: a device process, or None for a raw client."""

    @property
    def dead(self) -> bool: ...


class Connection:
    """One connection between a client and the server, both directions."""

    def __init__(self, network: Network, device: str | None, owner: Owner | None) -> None:
        self.network = network
        self.device = device
        self.owner = owner
        self.id = network.next_id()
        self.open = True
        self.closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.unread = 0
        self.client = ClientEnd(self)
        self.server = ServerEnd(self)
        self.to_server: Callable[[str], None] = lambda frame: None
        self.server_gone: Callable[[], None] = lambda: None
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._last_up = 0.0
        self._last_down = 0.0

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, device={self.device!r}, open={self.open})"

    def travel(self, up: bool, size: int, arrive: Callable[[], None]) -> None:
        """Deliver after this frame's latency, never before an earlier frame."""
        network = self.network
        loop = asyncio.get_running_loop()
        at = loop.time() + network.delay()
        # Strictly after the previous frame: the loop does not order timers due at
        # the same instant.
        if up:
            at = self._last_up = max(at, self._last_up + _STEP)
        else:
            at = self._last_down = max(at, self._last_down + _STEP)
            self.unread += size
        network.in_transit += 1

        def land() -> None:
            network.in_transit -= 1
            if not up:
                self.unread -= size
            if self.open:
                arrive()

        loop.call_at(at, land)

    def deliver_to_client(self, frame: str) -> None:
        self._inbox.put_nowait(frame)

    def end(self, code: int, reason: str = "") -> None:
        """Both ends learn the connection is gone; what was travelling is lost."""
        if not self.open:
            return
        self.open = False
        self.close_code = code
        self.close_reason = reason
        self.network.connections.discard(self)
        self.network.close_codes[code] += 1
        self._inbox.put_nowait(None)
        self.server_gone()

    def close_after_pending(self, up: bool, code: int, reason: str = "") -> None:
        """A closing handshake: it arrives after the frames already on the way."""
        self.closing = True
        self.travel(up, 0, lambda: self.end(code, reason))

    async def frames(self) -> AsyncIterator[str]:
        while True:
            frame = await self._inbox.get()
            if frame is None:
                return
            yield frame


class ClientEnd:
    """The client's side of a connection: what ``SyncClient`` reads and writes."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sent: Callable[[str], None] | None = None
        """Sees every frame the client sends (the monitor's tap on the wire)."""
        self.received: Callable[[str], None] | None = None

    async def send(self, message: str) -> None:
        connection = self.connection
        if not connection.open or connection.closing:
            raise ConnectionResetError("the connection is closed")
        if self.sent is not None:
            self.sent(message)
        if len(message) > MAX_FRAME_BYTES // 4 and len(message.encode()) > MAX_FRAME_BYTES:
            connection.close_after_pending(True, CLOSE_TOO_BIG)  # the server refuses it
            return
        connection.travel(True, len(message), lambda: connection.to_server(message))

    @property
    def close_code(self) -> int | None:
        """The close code once closed (None while open), as websockets' connections say."""
        return None if self.connection.open else self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        return None if self.connection.open else self.connection.close_reason

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        async for frame in self.connection.frames():
            if self.received is not None:
                self.received(frame)
            yield frame

    async def close(self) -> None:
        connection = self.connection
        if connection.open and not connection.closing:
            connection.close_after_pending(True, 1000)


class ServerEnd:
    """The server's side of a connection: a :class:`~syncserver.core.Peer`."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        connection = self.connection
        if not connection.open or connection.closing:
            return 0
        payloads = [*frames, *(shared.payloads if shared is not None else ())]
        network = connection.network
        for payload in payloads:
            if len(payload) > MAX_FRAME_BYTES:
                network.oversized.append(len(payload))
                connection.close_after_pending(False, CLOSE_TOO_BIG)  # the client refuses it
                return connection.unread
            copies = 1
            device = connection.device
            if device is not None and payload.startswith(b'{"type":"push'):
                if network.drop_pushes[device] > 0:
                    network.drop_pushes[device] -= 1
                    network.pushes_dropped += 1
                    continue
                if network.duplicate_pushes[device] > 0:
                    network.duplicate_pushes[device] -= 1
                    network.pushes_duplicated += 1
                    copies = 2
            text = payload.decode()
            for _ in range(copies):
                connection.travel(False, len(payload), _deliver(connection, text))
        return connection.unread

    def close(self, code: int, reason: str) -> None:
        connection = self.connection
        if connection.open and not connection.closing:
            connection.close_after_pending(False, code, reason)

    def abort(self) -> None:
        self.connection.end(1006)


def _deliver(connection: Connection, text: str) -> Callable[[], None]:
    return lambda: connection.deliver_to_client(text)


Accept = Callable[[Connection], bool]


class Network:
    """Connections between clients and one server, with latency and faults."""

    def __init__(self, rng: random.Random, latency: tuple[float, float] = (0.001, 0.05)) -> None:
        self.rng = rng
        self.latency = latency
        self.accept: Accept = lambda connection: False
        """Set by the server: admit a new connection (False while it is down)."""
        self.connections: set[Connection] = set()
        self.offline_until: dict[str, float] = {}
        self.drop_pushes: Counter[str] = Counter()
        self.duplicate_pushes: Counter[str] = Counter()
        self.in_transit = 0
        self.pushes_dropped = 0
        self.pushes_duplicated = 0
        self.close_codes: Counter[int] = Counter()
        self.oversized: list[int] = []
        """Sizes of frames the server tried to send over MAX_FRAME_BYTES."""
        self.opened: Callable[[Connection], None] | None = None
        self._ids = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def delay(self) -> float:
        low, high = self.latency
        return self.rng.uniform(low, high)

    def reachable(self, device: str | None) -> bool:
        if device is None:
            return True
        return asyncio.get_running_loop().time() >= self.offline_until.get(device, 0.0)

    async def open(self, device: str | None, owner: Owner | None) -> Connection:
        """Connect to the server (one latency for the handshake), or raise ``OSError``."""
        await asyncio.sleep(self.delay())
        if (owner is not None and owner.dead) or not self.reachable(device):
            raise ConnectionRefusedError(f"{device} cannot reach the server")
        connection = Connection(self, device, owner)
        if not self.accept(connection):
            raise ConnectionRefusedError("the server is down")
        self.connections.add(connection)
        if self.opened is not None:
            self.opened(connection)
        return connection

    def connector(self, device: str, owner: Owner) -> Callable[[str], Awaitable[ClientEnd]]:
        """A ``connect(url)`` for ``SyncClient``: every URL reaches this network's server."""

        async def connect(url: str) -> ClientEnd:
            return (await self.open(device, owner)).client

        return connect

    def cut(self, device: str, seconds: float) -> None:
        """Abort ``device``'s connections and keep it unreachable for ``seconds``."""
        now = asyncio.get_running_loop().time()
        self.offline_until[device] = max(self.offline_until.get(device, 0.0), now + seconds)
        for connection in [c for c in self.connections if c.device == device]:
            connection.end(1006)

    def abort_owner(self, owner: Owner) -> None:
        """A process died: its connections drop at once."""
        for connection in [c for c in self.connections if c.owner is owner]:
            connection.end(1006)

    def abort_all(self) -> None:
        """The server process died."""
        for connection in list(self.connections):
            connection.end(1006)
