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

Spaces: registers are keyed by ``(space, key)``; every write also gets
``prev``, its space's head before it, assigned with its revision (every
space's head is kept in memory: one int per space, read at start-up with
one index seek per space). A database from before spaces is moved into the
space ``default`` at open, in one transaction.

Nothing per register is kept in memory: start-up reads the newest revision
and the number of registers (through the index on ``revision``), whatever the
size of the database. A catch-up (``hello since R``) reads the registers of
its space written after ``R`` through the index on ``(space, revision)``, one
page at a time, in the same worker
thread as the commits (so a page never sees half a transaction, and its
``read_at`` is exactly the revisions committed before it: no page is read
again because a push overtook it); each page's JSON is built by SQLite, so
the event loop only sends bytes. Commits go first: a page read stops after
the fetch (``_FETCH`` rows) during which a write was queued, and sends a
shorter page, so a commit waits for at most one fetch, however many
catch-ups are under way. The core hands the backend one page read at a time,
taken in turn by client address (``syncserver/reads.py``), so the worker's
queue holds at most one read. ``get`` and the
observer feed read on the event loop from a second, read-only connection
(point lookups and a short scan of the newest rows). Such a read can see a
transaction that committed a moment before ``on_commit`` reports it; the
core then holds that ``get``'s answer until the write's push has gone out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Literal

from ..protocol import DEFAULT_SPACE
from . import MAX_BATCH, ChangePage, CommitCallback, FailureCallback, Write
from .ordered import OneOrder

__all__ = ["SQLiteBackend", "Synchronous"]

logger = logging.getLogger(__name__)

Synchronous = Literal["FULL", "NORMAL"]

_META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS registers (
    space TEXT NOT NULL DEFAULT 'default',
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    revision INTEGER NOT NULL,
    local_revision INTEGER NOT NULL DEFAULT 0,
    device_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (space, key)
)
"""
# MAX(revision) at start-up and the observer feed's newest rows use it.
_INDEX = "CREATE INDEX IF NOT EXISTS registers_by_revision ON registers (revision)"
# A catch-up reads one space's registers in revision order; heads at start-up too.
_SPACE_INDEX = "CREATE INDEX IF NOT EXISTS registers_by_space ON registers (space, revision)"
# Databases made before snapshots named their writer lack the last two columns.
_WRITER_COLUMNS = (
    "ALTER TABLE registers ADD COLUMN local_revision INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE registers ADD COLUMN device_id INTEGER NOT NULL DEFAULT 0",
)
# Databases made before spaces key registers by key alone: every register
# moves to the default space, in one transaction (the epoch stays: revisions
# do not change).
_SPACES_MIGRATION = (
    _SCHEMA.replace("registers", "registers_with_spaces"),
    "INSERT INTO registers_with_spaces (space, key, value, revision, local_revision, device_id)"
    " SELECT 'default', key, value, revision, local_revision, device_id FROM registers",
    "DROP TABLE registers",
    "ALTER TABLE registers_with_spaces RENAME TO registers",
)
_UPSERT = """
INSERT INTO registers (space, key, value, revision, local_revision, device_id)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, revision = excluded.revision,
    local_revision = excluded.local_revision, device_id = excluded.device_id
"""
# A snapshot entry's JSON, built by SQLite: the value is stored as JSON already.
_READ_CHANGES = """
SELECT revision, CAST('{"key":' || json_quote(key) || ',"value":' || value
    || ',"server_revision":' || revision || ',"local_revision":' || local_revision
    || ',"device_id":' || device_id || '}' AS BLOB)
FROM registers WHERE space = ? AND revision > ? AND revision <= ? ORDER BY revision
"""
_FETCH: Final = 256
"""Rows fetched from SQLite at a time."""
_KEYS_PER_QUERY: Final = 500
"""Keys per ``IN (...)`` when counting a batch's new keys."""


_DEVICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY,
    secret_sha256 BLOB NOT NULL
)
"""


class SQLiteBackend(OneOrder):
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
        self.count = 0
        """How many registers there are."""
        self._heads: dict[str, int] = {}
        """Space → its newest revision that went through ``on_commit``."""
        self._durable = 0
        """The newest committed revision (read and written in the worker thread)."""
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="syncserver-db")
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        """Read-only, used on the event loop for ``get`` and the observer feed."""
        self._queue: list[Write] = []
        self._commit_wanted = False
        """Writes wait for a transaction: a page read in progress stops early for them."""
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._devices: dict[int, bytes] = {}

    # -- lifecycle ----------------------------------------------------------

    def describe(self) -> str:
        """The database file, for the startup line."""
        return f"db {self.path}"

    async def open(self) -> None:
        """Open (or create) the database; read its revision, not its registers."""
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
        if "space" not in columns:
            logger.info("moving the registers of %s into the default space", self.path)
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SPACES_MIGRATION:
                    db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        indexes = (("registers_by_revision", _INDEX), ("registers_by_space", _SPACE_INDEX))
        for name, statement in indexes:
            indexed = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).fetchone()
            if indexed is None:
                if db.execute("SELECT 1 FROM registers LIMIT 1").fetchone() is not None:
                    logger.info("indexing %s (%s, once per database)", self.path, name)
                db.execute(statement)
        self._heads = _read_heads(db)
        (newest,) = db.execute("SELECT MAX(revision) FROM registers").fetchone()
        self.revision = self._durable = newest or 0
        (self.count,) = db.execute("SELECT COUNT(*) FROM registers").fetchone()
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=1")
        self._db, self._reader = db, reader

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
        for db in (self._db, self._reader):
            if db is not None:
                db.close()
        self._db = self._reader = None

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
        self._commit_wanted = True
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
                heads = self._heads
                assigned: dict[str, int] = {}
                for offset, write in enumerate(batch):
                    revision = write.revision = first + offset
                    space = write.space
                    write.prev = assigned.get(space) or heads.get(space, 0)
                    assigned[space] = revision
                rows = [
                    (w.space, w.key, w.value.decode(), w.revision, w.local_revision, w.device_id)
                    for w in batch
                ]
                try:
                    added = await loop.run_in_executor(self._executor, self._commit_sync, rows)
                except Exception as exc:
                    self._on_failure(batch, exc)
                    continue
                self.revision = batch[-1].revision
                heads.update(assigned)
                self.count += added
                try:
                    self._on_commit(batch)
                except Exception:
                    logger.exception("on_commit failed after revision %d", self.revision)
            if self._closing:
                return

    def _commit_sync(self, rows: list[tuple[str, str, str, int, int, int]]) -> int:
        """Commit ``rows``; returns how many of their (space, key)s are new."""
        db = self._db
        assert db is not None
        # Writes queued from here on want the next transaction.
        self._commit_wanted = False
        by_space: dict[str, dict[str, None]] = {}
        for row in rows:
            by_space.setdefault(row[0], {})[row[1]] = None
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = 0
            new = 0
            for space, space_keys in by_space.items():
                keys = list(space_keys)
                new += len(keys)
                for start in range(0, len(keys), _KEYS_PER_QUERY):
                    chunk = keys[start : start + _KEYS_PER_QUERY]
                    marks = ",".join("?" * len(chunk))
                    (found,) = db.execute(
                        f"SELECT COUNT(*) FROM registers WHERE space = ? AND key IN ({marks})",
                        (space, *chunk),
                    ).fetchone()
                    existing += found
            db.executemany(_UPSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._durable = rows[-1][3]
        return new - existing

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

    @property
    def spaces(self) -> int:
        """How many spaces have registers."""
        return len(self._heads)

    def head(self, space: str) -> int:
        """The newest revision in ``space`` that went through ``on_commit`` (0: none)."""
        return self._heads.get(space, 0)

    def get(self, space: str, key: str) -> Write | None:
        """One register, read on the event loop (a primary-key lookup)."""
        with self._reading() as reader:
            row = reader.execute(
                "SELECT value, revision, local_revision, device_id FROM registers"
                " WHERE space = ? AND key = ?",
                (space, key),
            ).fetchone()
        if row is None:
            return None
        value, revision, local_revision, device_id = row
        return Write(key, value.encode(), revision, local_revision, device_id, space)

    def newest(self) -> Iterator[Write]:
        """The registers up to :attr:`revision`, newest first, read lazily on the loop."""
        with self._reading() as reader:
            cursor = reader.execute(
                "SELECT key, value, revision, local_revision, device_id, space FROM registers"
                " WHERE revision <= ? ORDER BY revision DESC",
                (self.revision,),
            )
            try:
                while rows := cursor.fetchmany(_FETCH):
                    for key, value, revision, local_revision, device_id, space in rows:
                        yield Write(key, value.encode(), revision, local_revision, device_id, space)
            finally:
                cursor.close()

    def changed_since(self, since: int, space: str = DEFAULT_SPACE) -> list[Write]:
        """Every register of ``space`` written after revision ``since``, oldest first
        (for tests and tools: it reads them all at once, on the calling thread)."""
        with self._reading() as reader:
            rows = reader.execute(
                "SELECT key, value, revision, local_revision, device_id FROM registers"
                " WHERE space = ? AND revision > ? AND revision <= ? ORDER BY revision",
                (space, since, self.revision),
            ).fetchall()
        return [Write(k, v.encode(), r, lr, d, space) for k, v, r, lr, d in rows]

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The read-only connection; before :meth:`open` or after :meth:`close`
        (a closed server's state is still asked for) one for this read alone."""
        if self._reader is not None:
            yield self._reader
            return
        if self.path.exists():
            reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        else:  # never opened: no registers
            reader = sqlite3.connect(":memory:")
            reader.execute(_SCHEMA)
        try:
            yield reader
        finally:
            reader.close()

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """Read a page in the worker thread, between commits; ``done`` gets it on the loop."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                self._executor, self._read_sync, space, after, upto, budget
            )
        except RuntimeError:  # the worker is gone: the backend is closing
            done(None)
            return

        def deliver(future: asyncio.Future[ChangePage]) -> None:
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:
                logger.error("could not read registers after revision %d: %s", after, error)
                done(None)
                return
            done(future.result())

        future.add_done_callback(deliver)

    def _read_sync(self, space: str, after: int, upto: int | None, budget: int) -> ChangePage:
        db = self._db
        if db is None:
            raise RuntimeError("the database is closed")
        read_at = self._durable
        cursor = db.execute(_READ_CHANGES, (space, after, read_at if upto is None else upto))
        entries: list[bytes] = []
        size = 0
        last = after
        try:
            while rows := cursor.fetchmany(_FETCH):
                for revision, entry in rows:
                    if entries and size + len(entry) + 1 > budget:
                        return ChangePage(entries, last, False, read_at)
                    entries.append(entry)
                    size += len(entry) + 1
                    last = revision
                if self._commit_wanted:
                    # A write waits for this thread: it goes first, the rest of
                    # the page comes in the next one (a commit waits for one
                    # fetch of a page read, never for a whole page).
                    return ChangePage(entries, last, False, read_at)
        finally:
            cursor.close()
        return ChangePage(entries, last, True, read_at)


def _read_heads(db: sqlite3.Connection) -> dict[str, int]:
    """Every space's newest revision, one index seek per space (never a scan)."""
    heads: dict[str, int] = {}
    row = db.execute("SELECT MIN(space) FROM registers").fetchone()
    space = row[0] if row is not None else None
    while space is not None:
        (heads[space],) = db.execute(
            "SELECT MAX(revision) FROM registers WHERE space = ?", (space,)
        ).fetchone()
        (space,) = db.execute(
            "SELECT MIN(space) FROM registers WHERE space > ?", (space,)
        ).fetchone()
    return heads


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("could not record a device secret: %s", future.exception())
