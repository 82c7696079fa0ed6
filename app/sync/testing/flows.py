"""Flows: how the harness opens a device, taps a key and reads what it shows.

A device in the simulation is the user's own code: a cubit talking to the
server through the real :class:`~app.link.SyncClient`, which the harness
connects to its in-memory network (``io.connect``) and gives an in-memory
store (``io.store``, a :class:`~app.link.store.MemoryStore`). :class:`Likes`,
the default, is the demo's :class:`~app.link.DeviceSession` with its
:class:`~app.link.LikesCubit`; write a class with the same methods around your
own cubit and pass it as ``Simulation(flow=...)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.link import Backoff, CatalogueItem, DeviceSession, SyncClient, SyncPhase
from app.link.client import Connect
from app.link.likes import item_id_of, like_key
from app.link.store import MemoryStore
from app.sync import Cubit
from syncserver.protocol import DEFAULT_SPACE

__all__ = ["DeviceIO", "Flow", "FlowDevice", "Likes"]


@dataclass(frozen=True, slots=True)
class DeviceIO:
    """Everything a flow needs to open one device inside the simulation.

    Pass ``connect``, ``rng``, ``clock`` and ``space`` to your ``SyncClient`` (or
    to ``DeviceSession.open``) and keep your state in ``store``: then the run is
    deterministic, a killed device reopens from what ``store`` had flushed, and
    the device follows the space the simulation put it in.
    """

    name: str
    urls: tuple[str, ...]
    keys: tuple[str, ...]
    """The keys the schedule taps (``flow.key(index)`` for each index)."""
    connect: Connect
    store: MemoryStore
    rng: random.Random
    clock: Callable[[], float]
    backoff: Backoff
    heartbeat: float
    request_timeout: float
    space: str = DEFAULT_SPACE
    """The space this device follows (``Simulation(spaces=...)`` splits devices)."""


class FlowDevice(Protocol):
    """One open device: ``DeviceSession`` is one."""

    @property
    def device_id(self) -> int: ...

    @property
    def client(self) -> SyncClient: ...

    @property
    def cubit(self) -> Cubit[Any]: ...

    async def close(self) -> None: ...


class Flow(Protocol):
    """What the simulator needs to know about the code under test.

    ``repr(flow)`` should be Python that rebuilds it: it goes into repro scripts.
    """

    def key(self, index: int) -> str:
        """The wire key that ``Tap(device, key=index)`` acts on."""
        ...

    async def open(self, io: DeviceIO) -> FlowDevice:
        """Open (or reopen, after a kill) one device; raise if its identity is in use."""
        ...

    def tap(self, device: FlowDevice, key: str) -> None:
        """The user acts on ``key`` (an ``optimistic_sync_with_push`` starts)."""
        ...

    def read(self, device: FlowDevice, key: str) -> tuple[Any, int]:
        """The value shown for ``key`` and the server revision the device knows (0 if none)."""
        ...

    def expected(self, value: Any, revision: int) -> tuple[Any, int]:
        """What :meth:`read` must give when the server's register holds ``value`` (decoded
        JSON, None if never written) at ``revision`` (0 if never written)."""
        ...

    def synced(self, device: FlowDevice, key: str) -> bool:
        """Whether the device shows ``key`` as synced (nothing pending, server's value)."""
        ...

    def pending(self, device: FlowDevice) -> bool:
        """Whether the device still holds choices the server has not confirmed."""
        ...


class Likes:
    """The demo's likes: a ``DeviceSession`` whose ``LikesCubit`` toggles one like per key."""

    def __repr__(self) -> str:
        return "Likes()"

    def key(self, index: int) -> str:
        return like_key(f"item-{index}")

    async def open(self, io: DeviceIO) -> DeviceSession:
        catalogue = [
            CatalogueItem(item, item.title(), "heart.svg")
            for key in io.keys
            if (item := item_id_of(key)) is not None
        ]
        return await DeviceSession.open(
            io.name,
            io.urls,
            catalogue=catalogue,
            request_timeout=io.request_timeout,
            backoff=io.backoff,
            heartbeat=io.heartbeat,
            store=io.store,
            connect=io.connect,
            rng=io.rng,
            clock=io.clock,
            space=io.space,
        )

    def tap(self, device: FlowDevice, key: str) -> None:
        assert isinstance(device, DeviceSession)
        device.toggle_like(_item(key))

    def read(self, device: FlowDevice, key: str) -> tuple[Any, int]:
        assert isinstance(device, DeviceSession)
        item = _item(key)
        return device.state.liked(item), max(device.cubit.server_revision(item), 0)

    def expected(self, value: Any, revision: int) -> tuple[Any, int]:
        return (False if value is None else value), revision

    def synced(self, device: FlowDevice, key: str) -> bool:
        assert isinstance(device, DeviceSession)
        return device.state.status(_item(key)).phase is SyncPhase.SYNCED

    def pending(self, device: FlowDevice) -> bool:
        assert isinstance(device, DeviceSession)
        return bool(device.state.intents)


def _item(key: str) -> str:
    item = item_id_of(key)
    if item is None:
        raise ValueError(f"{key!r} is not a like key")
    return item
