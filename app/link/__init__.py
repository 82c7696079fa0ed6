"""optisync's device link: the websocket client, persistence and the demo's cubit.

Free of Qt, so it runs (and is tested) on a plain asyncio loop. The app binds
to :class:`DeviceSession`::

    session = await DeviceSession.open("Device A", ["ws://127.0.0.1:8765"], space="family")
    session.cubit.subscribe(show_state)
    session.subscribe_status(show_connection)
    session.toggle_like("coffee")
    ...
    await session.close()

Seams for simulators: :class:`SyncClient` takes a transport factory
(``connect=``), :class:`LinkEngine` is the I/O-free protocol it drives, and
:class:`DeviceSession` takes any :class:`StateStore` (:class:`MemoryStore`
keeps state in memory).
"""

from syncserver.protocol import DEFAULT_SPACE

from .backoff import Backoff
from .catalogue import ASSETS_DIR, CatalogueItem, load_catalogue
from .client import Connect, SyncClient, Transport
from .device import DeviceSession
from .engine import LinkEngine
from .errors import (
    AckTimeoutError,
    ClientClosedError,
    DeviceInUseError,
    DisconnectedError,
    LinkError,
    NetworkError,
    RequestTimeoutError,
    ServerRefusedError,
    ServerUnavailableError,
)
from .keystatus import KeyStatus, SyncPhase
from .likes import Item, LikesCubit, LikesState, item_id_of, like_key
from .status import ConnectionState, ConnectionStatus, Observable
from .store import DeviceStore, Intent, MemoryStore, StateStore, default_data_dir

__all__ = [
    "ASSETS_DIR",
    "DEFAULT_SPACE",
    "AckTimeoutError",
    "Backoff",
    "CatalogueItem",
    "ClientClosedError",
    "Connect",
    "ConnectionState",
    "ConnectionStatus",
    "DeviceInUseError",
    "DeviceSession",
    "DeviceStore",
    "DisconnectedError",
    "Intent",
    "Item",
    "KeyStatus",
    "LikesCubit",
    "LikesState",
    "LinkEngine",
    "LinkError",
    "MemoryStore",
    "NetworkError",
    "Observable",
    "RequestTimeoutError",
    "ServerRefusedError",
    "ServerUnavailableError",
    "StateStore",
    "SyncClient",
    "SyncPhase",
    "Transport",
    "default_data_dir",
    "item_id_of",
    "like_key",
    "load_catalogue",
]
