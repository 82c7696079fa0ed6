"""The observer feed's ``server_state``, kept under MAX_PAGE_BYTES.

A big database or thousands of connections would make a full state frame
exceed what a client accepts, so the lists are capped: at most half a page
of devices (the oldest connections first) and the newest writes that fit in
the rest, shown in key order; ``values_total`` and ``devices_total`` say how
many there are in all. Sizes are upper estimates, so nothing is encoded twice.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from .backends import Backend, Write
from .frames import snapshot_entry
from .protocol import MAX_PAGE_BYTES, ChaosSettings, DeviceInfo, ServerState

if TYPE_CHECKING:
    from .core import Connection

__all__ = ["capped_state"]

_ENTRY_OVERHEAD: Final = 160
"""Upper bound of an entry's JSON besides its key and value (field names, numbers)."""
_DEVICE_BYTES: Final = 200
"""Upper bound of one device's JSON (its remote address is at most ~60 bytes)."""
_FIXED_BYTES: Final = 2048
"""Upper bound of everything else in the frame."""


def _entry_bytes(write: Write) -> int:
    # A key's JSON is at most 6 bytes per character (\uXXXX escapes).
    return len(write.value) + 6 * len(write.key) + _ENTRY_OVERHEAD


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
    device_budget = budget // 2 // _DEVICE_BYTES
    devices = [
        DeviceInfo(c.id, c.device_id, c.remote, c.batch, c.requests)
        for _, c in zip(range(device_budget), connections, strict=False)
    ]
    budget -= len(devices) * _DEVICE_BYTES
    registers = backend.values
    writes = list(registers.values())
    total = sum(map(_entry_bytes, writes))
    if total > budget:
        kept: list[Write] = []
        for write in sorted(writes, key=_by_revision, reverse=True):
            budget -= _entry_bytes(write)
            if budget < 0:
                break
            kept.append(write)
        writes = kept
    writes.sort(key=_by_key)
    return ServerState(
        revision=backend.revision,
        devices=devices,
        requests_received=requests_received,
        requests_in_flight=requests_in_flight,
        values=[snapshot_entry(write) for write in writes],
        chaos=chaos,
        values_total=len(registers),
        devices_total=len(connections),
    )


def _by_revision(write: Write) -> int:
    return write.revision


def _by_key(write: Write) -> str:
    return write.key
