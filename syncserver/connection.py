"""What the server core knows of one connection, and how it reaches it.

The shell implements :class:`Peer` (send frames, close, abort) for each
connection and gives the core a :class:`Clock`; the core keeps a
:class:`Connection` per peer. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .access import AddressLimits
from .limits import TokenBucket
from .protocol import PROTOCOL_VERSION, Hello

if TYPE_CHECKING:
    from .catchup import CatchUp

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_HISTORY_CHANGED",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN_LATER",
    "Cancellable",
    "Clock",
    "Connection",
    "Peer",
    "Shared",
]

CLOSE_GOING_AWAY = 1001
"""The server is shutting down."""
CLOSE_POLICY = 1008
"""A hello without the server's token or the device's secret, or (on a server
that checks either) any other frame before a good hello."""
CLOSE_TRY_AGAIN_LATER = 1013
"""The device's secret could not be checked (the backend is down)."""
CLOSE_HISTORY_CHANGED = 1012
"""The database's epoch changed under a running server: reconnect and resync."""


class Cancellable(Protocol):
    """A timer that can be called off (an asyncio TimerHandle is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time and timers for the core; an asyncio event loop is one."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Cancellable: ...


class Shared:
    """Frames that go to many connections: ``payloads`` are encoded once, and
    the shell may keep their serialized form in ``wire`` for the next peer."""

    __slots__ = ("payloads", "wire")

    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads
        self.wire: bytes | None = None


class Peer(Protocol):
    """How the core reaches one connection; the shell implements it."""

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        """Queue text frames: ``frames``, then ``shared.payloads``, in that order,
        in one write. Returns the bytes now queued and unread by the peer."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with this code."""
        ...

    def abort(self) -> None:
        """Drop the connection at once (it stopped reading)."""
        ...


class Connection:
    """One client connection as the core sees it."""

    __slots__ = (
        "address",
        "authorized",
        "batch",
        "bucket",
        "catch_ups",
        "catchup_timer",
        "closed",
        "device_id",
        "followed",
        "held",
        "id",
        "limits",
        "observing",
        "peer",
        "pending_hellos",
        "protocol",
        "queued",
        "remote",
        "requests",
        "send_allowance",
        "spaces",
        "subscribed",
    )

    def __init__(
        self,
        peer: Peer,
        connection_id: int,
        remote: str,
        bucket: TokenBucket,
        send_allowance: int,
        address: str | None = None,
        limits: AddressLimits | None = None,
    ) -> None:
        self.peer = peer
        self.id = connection_id
        self.remote = remote
        self.bucket = bucket
        self.address = address
        """The client's address, as the per-address limits count it."""
        self.limits = limits
        """Its address' budgets; None when the address is not limited."""
        self.authorized = False
        """A hello passed the token and device-secret checks."""
        self.held: list[str | bytes] | None = None
        """Frames that arrived while the device secret was being checked, or while
        the backend started following a space it joined."""
        self.pending_hellos: dict[str, Hello] = {}
        """Per space, the newest hello not answered yet (its address' catch-up
        budget is spent)."""
        self.catchup_timer: Cancellable | None = None
        self.queued = 0
        """Bytes queued for it and unread, as last reported by its peer."""
        self.device_id: int | None = None
        """Bound by the first hello; None until then."""
        self.batch = False
        self.observing = False
        self.requests = 0
        self.protocol = PROTOCOL_VERSION
        self.closed = False
        self.send_allowance = send_allowance
        """Unread bytes past which the connection is dropped as slow: the
        server's max_send_buffer plus what its snapshot may have queued."""
        self.catch_ups: dict[str, CatchUp] = {}
        """Per space, the snapshot being sent to this connection, page by page."""
        self.spaces: dict[str, None] = {}
        """The spaces it joined, in the order it joined them."""
        self.followed: list[str] = []
        """The spaces the backend was asked to follow for it (undone when it goes)."""
        self.subscribed: dict[str, None] = {}
        """The spaces whose pushes it gets (joined, and its snapshot begun)."""
