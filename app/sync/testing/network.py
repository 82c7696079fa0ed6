"""The simulated network: connections whose faults are data.

Every frame gets its own latency, drawn from the schedule's seeded random
generator within the current :class:`~app.sync.testing.schedule.Latency`, so
frames overtake each other. Pushes to a device can be dropped or duplicated
on demand. A closed connection loses whatever was still travelling on it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Protocol

from .messages import ClientFrame, Push, ServerFrame

__all__ = ["Connection", "Endpoint", "Network"]


class Endpoint(Protocol):
    """A device's end of its connection."""

    def receive(self, frame: ServerFrame) -> None: ...

    def connection_lost(self) -> None: ...


class Connection:
    """One connection between a device and the server."""

    __slots__ = ("device", "endpoint", "id", "open")

    def __init__(self, connection_id: int, device: int, endpoint: Endpoint) -> None:
        self.id = connection_id
        self.device = device
        self.endpoint = endpoint
        self.open = True

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, device={self.device}, open={self.open})"


class Network:
    """Carries frames between devices and one server, with latency and faults."""

    def __init__(
        self,
        rng: random.Random,
        deliver_to_server: Callable[[Connection, ClientFrame], None],
        latency: tuple[float, float] = (0.001, 0.05),
    ) -> None:
        self.rng = rng
        self.latency = latency
        self._deliver_to_server = deliver_to_server
        self._next_id = 1
        self.connections: dict[int, Connection] = {}
        self.offline_until: dict[int, float] = {}
        self.drop_pushes: dict[int, int] = {}
        self.duplicate_pushes: dict[int, int] = {}
        self.in_transit = 0
        self.pushes_dropped = 0
        self.pushes_duplicated = 0

    # -- connections ----------------------------------------------------------

    def reachable(self, device: int) -> bool:
        return asyncio.get_running_loop().time() >= self.offline_until.get(device, 0.0)

    def open(self, device: int, endpoint: Endpoint) -> Connection:
        connection = Connection(self._next_id, device, endpoint)
        self._next_id += 1
        self.connections[connection.id] = connection
        return connection

    def close(self, connection: Connection) -> None:
        """Close a connection: both ends learn of it, frames on the way are lost."""
        if not connection.open:
            return
        connection.open = False
        del self.connections[connection.id]
        connection.endpoint.connection_lost()

    def cut(self, device: int, seconds: float) -> None:
        """Close ``device``'s connections and keep it unreachable for ``seconds``."""
        now = asyncio.get_running_loop().time()
        self.offline_until[device] = max(self.offline_until.get(device, 0.0), now + seconds)
        for connection in [c for c in self.connections.values() if c.device == device]:
            self.close(connection)

    # -- frames ---------------------------------------------------------------

    def _delay(self) -> float:
        low, high = self.latency
        return self.rng.uniform(low, high)

    def send_up(self, connection: Connection, frame: ClientFrame) -> None:
        """A device sends ``frame`` to the server."""
        self._travel(connection, lambda: self._deliver_to_server(connection, frame))

    def send_down(self, connection: Connection, frame: ServerFrame) -> None:
        """The server sends ``frame`` to a device; pushes may be dropped or doubled."""
        copies = 1
        if isinstance(frame, Push):
            device = connection.device
            if self.drop_pushes.get(device, 0) > 0:
                self.drop_pushes[device] -= 1
                self.pushes_dropped += 1
                return
            if self.duplicate_pushes.get(device, 0) > 0:
                self.duplicate_pushes[device] -= 1
                self.pushes_duplicated += 1
                copies = 2
        for _ in range(copies):
            self._travel(connection, lambda: connection.endpoint.receive(frame))

    def _travel(self, connection: Connection, arrive: Callable[[], None]) -> None:
        if not connection.open:
            return
        self.in_transit += 1

        def land() -> None:
            self.in_transit -= 1
            if connection.open:
                arrive()

        asyncio.get_running_loop().call_later(self._delay(), land)
