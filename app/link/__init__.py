"""optisync's device link: the websocket client, persistence and the demo's cubit.

Free of Qt, so it runs (and is tested) on a plain asyncio loop. The app binds
to :class:`DeviceSession`::

    session = await DeviceSession.open("Device A", ["ws://127.0.0.1:8765"])
    session.cubit.subscribe(show_state)
    session.subscribe_status(show_connection)
    session.toggle_like("coffee")
    ...
    await session.close()
"""

from .backoff import Backoff
from .catalogue import ASSETS_DIR, CatalogueItem, load_catalogue
from .client import SyncClient
from .device import DeviceSession
from .errors import (
    AckTimeoutError,
    ClientClosedError,
    DisconnectedError,
    LinkError,
    NetworkError,
    RequestTimeoutError,
    ServerRefusedError,
)
from .keystatus import KeyStatus, SyncPhase
from .likes import Intent, Item, LikesCubit, LikesState, item_id_of, like_key
from .status import ConnectionState, ConnectionStatus, Observable
from .store import DeviceStore, default_data_dir

__all__ = [
    "ASSETS_DIR",
    "AckTimeoutError",
    "Backoff",
    "CatalogueItem",
    "ClientClosedError",
    "ConnectionState",
    "ConnectionStatus",
    "DeviceSession",
    "DeviceStore",
    "DisconnectedError",
    "Intent",
    "Item",
    "KeyStatus",
    "LikesCubit",
    "LikesState",
    "LinkError",
    "NetworkError",
    "Observable",
    "RequestTimeoutError",
    "ServerRefusedError",
    "SyncClient",
    "SyncPhase",
    "default_data_dir",
    "item_id_of",
    "like_key",
    "load_catalogue",
]
