"""optisync's bundled sync server: a durable last-write-wins register store
that assigns global revisions and pushes every write to every device.

Run it with ``python -m syncserver`` (or the ``syncserver`` script), or embed
it on your own event loop::

    async with serve(db_path="sync.sqlite3") as server:
        print(server.url)

With ``backend="redis://HOST:PORT/DB"`` (``--backend`` on the command line)
several server processes share their registers through Redis instead of a
SQLite file; ``BACKENDS.md`` describes both backends.

``server.chaos`` holds the demo controls and ``server.observe()`` /
``server.states()`` the observer feed; ``PROTOCOL.md`` documents the wire
protocol.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .chaos import ChaosControls
from .config import ServerConfig
from .protocol import ChaosSettings, DeviceInfo, ServerState

if TYPE_CHECKING:
    from .server import SyncServer, default_db_path, serve, start_server

__all__ = [
    "ChaosControls",
    "ChaosSettings",
    "DeviceInfo",
    "ServerConfig",
    "ServerState",
    "SyncServer",
    "default_db_path",
    "serve",
    "start_server",
]

# The runtime (websockets' server, the backends) loads on first use, so a
# client that only needs ``syncserver.protocol`` does not import it.
_LAZY = {
    "SyncServer": "server",
    "default_db_path": "server",
    "serve": "server",
    "start_server": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
