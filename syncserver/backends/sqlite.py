"""The default backend: SQLite in WAL mode with group commit, one server process.

Theory of operation
-------------------
Every accepted write gets the next value of one global revision counter. The
counter is never stored on its own: the newest write is always the row with
the highest revision (a newer write to the same key only raises it), so
``MAX(revision)`` after a restart is exactly where the counter stopped.

The database's epoch (a random id, see ``backends/__init__.py``) is kept in
a ``meta`` table, made when the database is created.

Writes are acknowledged only after their transaction has committed. A commit
costs an fsync, so instead of one transaction per write, :class:`SQLiteBackend` keeps
a queue: while one transaction is being committed (in a worker thread, so the
event loop keeps reading frames), new writes pile up, and the next
transaction takes all of them at once. Fifty concurrent writers therefore
share one fsync instead of paying fifty. Revisions are assigned in queue
order just before the transaction starts, so commit order, revision order and
the order of the ``on_commit`` callbacks are the same thing.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` (the default)
fsyncs the WAL on every commit before any ack goes out, so an acknowledged
write survives a crash of the process (SIGKILL, which the tests do) and of
the machine. Group commit shares that one fsync among every write queued
meanwhile, which is why many writers stay fast even though one writer waiting
for each ack is capped by the disk's fsync latency.
``synchronous=NORMAL`` (``--synchronous NORMAL``) skips the per-commit fsync:
the committed transaction is in the WAL in the OS page cache before the ack,
which still survives the process being killed at any moment, but the last
commits can be lost if the machine loses power. Use it where a single writer's
latency matters more than power-loss safety.

The store keeps every current value in memory too (``values``): reads and
snapshots never touch the disk, and the server's in-memory view only ever
contains committed writes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from . import MAX_BATCH, CommitCallback, FailureCallback, Write

__all__ = ["SQLiteBackend", "Synchronous"]

logger = logging.getLogger(__name__)

Synchronous = Literal["FULL", "NORMAL"]

_META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS registers (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL,
    local_revision INTEGER NOT NULL DEFAULT 0,
    device_id INTEGER NOT NULL DEFAULT 0
)
"""
# Databases made before snapshots named their writer lack the last two columns.
_WRITER_COLUMNS = (
    "ALTER TABLE registers ADD COLUMN local_revision INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE registers ADD COLUMN device_id INTEGER NOT NULL DEFAULT 0",
)
_UPSERT = """
INSERT INTO registers (key, value, revision, local_revision, device_id) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
    local_revision = excluded.local_revision, device_id = excluded.device_id
"""


_DEVICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY,
    secret_sha256 BLOB NOT NULL
)
"""


class SQLiteBackend:
    """The registers, their revisions, and the group-commit queue.

    ``on_commit`` runs on the event loop, once per transaction, with the
    committed writes in revision order. ``on_failure`` gets the writes of a
    transaction that could not be committed (their revisions are reused).
    """

    def __init__(
        self,
        path: Path,
        on_commit: CommitCallback,
        on_failure: FailureCallback,
        synchronous: Synchronous = "FULL",
    ) -> None:
        self.path = path
        self.revision = 0
        self.epoch = ""
        self.values: dict[str, Write] = {}
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncserver-db")
        self._db: sqlite3.Connection | None = None
        self._queue: list[Write] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._devices: dict[int, bytes] = {}

    # -- lifecycle ----------------------------------------------------------

    def describe(self) -> str:
        """The database file, for the startup line."""
        return f"db {self.path}"

    async def open(self) -> None:
        """Open (or create) the database and load every register into memory."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._open_sync)
        self._committer = asyncio.create_task(self._commit_loop(), name="syncserver-commit")

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(_SCHEMA)
        db.execute(_META_SCHEMA)
        db.execute(_DEVICES_SCHEMA)
        self._devices = {
            int(device): bytes(digest)
            for device, digest in db.execute("SELECT device_id, secret_sha256 FROM devices")
        }
        # The epoch is made once, with the database (or on the first open of
        # a database from before epochs); INSERT OR IGNORE keeps an existing one.
        db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)",
            (secrets.token_hex(16),),
        )
        (self.epoch,) = db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        columns = {row[1] for row in db.execute("PRAGMA table_info(registers)")}
        if "device_id" not in columns:
            for statement in _WRITER_COLUMNS:
                db.execute(statement)
        rows = db.execute("SELECT key, value, revision, local_revision, device_id FROM registers")
        for key, value, revision, local_revision, device_id in rows:
            self.values[key] = Write(key, value.encode(), revision, local_revision, device_id)
            self.revision = max(self.revision, revision)
        self._db = db

    async def close(self) -> None:
        """Commit whatever is queued, then close the database."""
        self._closing = True
        self._wakeup.set()
        if self._committer is not None:
            await self._committer
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writes -------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Writes waiting for a transaction."""
        return len(self._queue)

    def submit(self, write: Write) -> None:
        """Queue a write; ``on_commit`` reports it once it is durable."""
        if self._closing:
            raise RuntimeError("the store is closing")
        self._queue.append(write)
        self._wakeup.set()

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                first = self.revision + 1
                for offset, write in enumerate(batch):
                    write.revision = first + offset
                rows = [
                    (w.key, w.value.decode(), w.revision, w.local_revision, w.device_id)
                    for w in batch
                ]
                try:
                    await loop.run_in_executor(self._executor, self._commit_sync, rows)
                except Exception as exc:
                    self._on_failure(batch, exc)
                    continue
                self.revision = batch[-1].revision
                values = self.values
                for write in batch:
                    values[write.key] = write
                try:
                    self._on_commit(batch)
                except Exception:
                    logger.exception("on_commit failed after revision %d", self.revision)
            if self._closing:
                return

    def _commit_sync(self, rows: list[tuple[str, str, int, int, int]]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_UPSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- device credentials -------------------------------------------------

    def claim_device(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        """Record ``digest`` for a device that has none; ``done`` gets the
        recorded one at once (this process is the database's only writer)."""
        recorded = self._devices.setdefault(device_id, digest)
        if recorded is digest and not self._closing:
            asyncio.get_running_loop().run_in_executor(
                self._executor, self._record_device, device_id, digest
            ).add_done_callback(_log_failure)
        done(recorded)

    def _record_device(self, device_id: int, digest: bytes) -> None:
        db = self._db
        if db is not None:
            db.execute(
                "INSERT OR IGNORE INTO devices (device_id, secret_sha256) VALUES (?, ?)",
                (device_id, digest),
            )

    # -- reads --------------------------------------------------------------

    def changed_since(self, since: int) -> list[Write]:
        """Every register written after revision ``since``, oldest first."""
        return sorted(
            (write for write in self.values.values() if write.revision > since),
            key=_by_revision,
        )


def _by_revision(write: Write) -> int:
    return write.revision


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("could not record a device secret: %s", future.exception())
