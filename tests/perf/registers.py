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


def fill_registers(
    path: Path,
    count: int,
    *,
    value: str = "true",
    first_key: int = 0,
    space: str = "default",
) -> int:
    """Write ``count`` registers ``k/<n>`` in ``space`` after the newest revision in
    one transaction; returns the newest revision afterwards. A database made before
    spaces (no ``space`` column) gets them without one."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(registers)")}
        (newest,) = db.execute("SELECT COALESCE(MAX(revision), 0) FROM registers").fetchone()
        names = ["key", "value", "revision", "local_revision", "device_id"]
        conflict = "key"
        head = newest
        if "space" in columns:
            names.append("space")
            conflict = "space, key"
            (head,) = db.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM registers WHERE space = ?", (space,)
            ).fetchone()
        if "prev" in columns:
            names.append("prev")

        def rows() -> Iterator[tuple[object, ...]]:
            for offset in range(count):
                revision = newest + offset + 1
                row: tuple[object, ...] = (
                    f"k/{first_key + offset:07d}",
                    value,
                    revision,
                    1,
                    1 + offset % 97,
                )
                if "space" in columns:
                    row += (space,)
                if "prev" in columns:  # the space's head before this write
                    row += (head if offset == 0 else revision - 1,)
                yield row

        db.execute("BEGIN")
        db.executemany(
            f"INSERT INTO registers ({', '.join(names)})"
            f" VALUES ({', '.join('?' for _ in names)}) ON CONFLICT ({conflict})"
            " DO UPDATE SET value = excluded.value, revision = excluded.revision"
            + (", prev = excluded.prev" if "prev" in columns else ""),
            rows(),
        )
        db.execute("COMMIT")
        return int(newest) + count
    finally:
        db.close()
