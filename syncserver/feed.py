"""The observer feed: ``server_state`` at most every interval, kept under MAX_PAGE_BYTES.

Every change asks for a state; one shared timer coalesces them, so a state
goes out at most once per ``observe_interval`` to every observer at once (a
new observer's first state included) and to in-process subscribers.

A big database or thousands of connections would make a full state frame
exceed what a client accepts, so the lists are capped: at most half a page
of devices (the oldest connections first) and the newest writes that fit in
the rest, shown in key order; ``values_total`` and ``devices_total`` say how
many there are in all. Sizes are upper estimates, so nothing is encoded twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Final

from .backends import Backend, Write
from .connection import Shared
from .frames import snapshot_entry
from .protocol import MAX_PAGE_BYTES, ChaosSettings, DeviceInfo, ServerState, encode_bytes

if TYPE_CHECKING:
    from .connection import Clock, Connection

__all__ = ["ObserverFeed", "StateCallback", "capped_state"]

logger = logging.getLogger(__name__)

StateCallback = Callable[[ServerState], None]

_ENTRY_OVERHEAD: Final = 160
"""Upper bound of an entry's JSON besides its key and value (field names, numbers)."""
_DEVICE_BYTES: Final = 200
"""Upper bound of one device's JSON besides its spaces (its remote address is at
most ~60 bytes)."""
_FIXED_BYTES: Final = 2048
"""Upper bound of everything else in the frame."""


def _entry_bytes(write: Write) -> int:
    # A key's JSON is at most 6 bytes per character (\uXXXX escapes).
    return len(write.value) + 6 * (len(write.key) + len(write.space)) + _ENTRY_OVERHEAD


def capped_state(
    backend: Backend,
    connections: Collection[Connection],
    *,
    requests_received: int,
    requests_in_flight: int,
    chaos: ChaosSettings,
) -> ServerState:
    """What the server holds and is doing, small enough for one frame."""
    budget = MAX_PAGE_BYTES - _FIXED_BYTES
    device_budget = budget // 2
    devices: list[DeviceInfo] = []
    for conn in connections:
        size = _DEVICE_BYTES + sum(6 * len(space) + 3 for space in conn.spaces)
        if size > device_budget:
            break
        device_budget -= size
        budget -= size
        devices.append(
            DeviceInfo(
                conn.id, conn.device_id, conn.remote, conn.batch, conn.requests, list(conn.spaces)
            )
        )
    # The newest writes that fit, read newest first: never every register.
    writes: list[Write] = []
    for write in backend.newest():
        budget -= _entry_bytes(write)
        if budget < 0:
            break
        writes.append(write)
    writes.sort(key=_by_key)
    return ServerState(
        revision=backend.revision,
        devices=devices,
        requests_received=requests_received,
        requests_in_flight=requests_in_flight,
        values=[snapshot_entry(write) for write in writes],
        chaos=chaos,
        values_total=backend.count,
        devices_total=len(connections),
    )


def _by_key(write: Write) -> str:
    return write.key


class ObserverFeed:
    """Who watches the server, and the one timer that sends them states."""

    def __init__(self, clock: Clock, interval: float, state: Callable[[], ServerState]) -> None:
        self._clock = clock
        self._interval = interval
        self._state = state
        self._observers: dict[Connection, None] = {}
        self._callbacks: list[StateCallback] = []
        self._scheduled = False

    def watch(self, conn: Connection) -> None:
        """Send ``conn`` states; the first comes with the next tick, so an
        observer never gets two states closer than the interval."""
        self._observers[conn] = None
        self.changed()

    def unwatch(self, conn: Connection) -> None:
        """Stop sending ``conn`` states."""
        self._observers.pop(conn, None)

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback`` with a state now and at every tick; returns an unsubscribe."""
        self._callbacks.append(callback)
        callback(self._state())

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def changed(self) -> None:
        """Something observers see changed: a state goes out at the next tick."""
        if self._scheduled or not (self._observers or self._callbacks):
            return
        self._scheduled = True
        self._clock.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self._scheduled = False
        if not (self._observers or self._callbacks):
            return
        state = self._state()
        if self._observers:
            shared = Shared([encode_bytes(state)])
            for conn in self._observers:
                conn.peer.send((), shared)
        for callback in list(self._callbacks):
            try:
                callback(state)
            except Exception:
                logger.exception("observer callback failed")
