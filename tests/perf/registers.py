"""Write registers straight into a SQLite database file, for big set-ups.

Over the socket a million writes take minutes; straight into the file (one
transaction, the server's own schema) they take seconds. The server opening
the file afterwards cannot tell the difference.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from syncserver.backends.sqlite import SQLiteBackend

__all__ = ["create_database", "fill_registers"]


def create_database(path: Path) -> str:
    """An empty database with the server's schema; returns its epoch."""

    async def create() -> str:
        backend = SQLiteBackend(path, lambda _writes: None, lambda _writes, _exc: None)
        await backend.open()
        await backend.close()
        return backend.epoch

    # In a thread of its own, so a test already running an event loop can call it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, create()).result()


def fill_registers(path: Path, count: int, *, value: str = "true", first_key: int = 0) -> int:
    """Write ``count`` registers ``k/<n>`` after the newest revision in one
    transaction; returns the newest revision afterwards."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        (newest,) = db.execute("SELECT COALESCE(MAX(revision), 0) FROM registers").fetchone()

        def rows() -> Iterator[tuple[str, str, int, int, int]]:
            for offset in range(count):
                key = f"k/{first_key + offset:07d}"
                yield (key, value, newest + offset + 1, 1, 1 + offset % 97)

        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO registers (key, value, revision, local_revision, device_id)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (space, key) DO UPDATE SET value = excluded.value,"
            " revision = excluded.revision",
            rows(),
        )
        db.execute("COMMIT")
        return int(newest) + count
    finally:
        db.close()
