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

from .chaos import ChaosControls
from .protocol import ChaosSettings, DeviceInfo, ServerState
from .server import SyncServer, default_db_path, serve, start_server

__all__ = [
    "ChaosControls",
    "ChaosSettings",
    "DeviceInfo",
    "ServerState",
    "SyncServer",
    "default_db_path",
    "serve",
    "start_server",
]
