"""What a device remembers across restarts, in one SQLite file per device name and space.

Theory of operation
-------------------
The UI thread never waits on the disk. Changes are recorded in memory
(coalesced: only the latest value per key counts) and a writer thread commits
whatever piled up in one transaction, so a burst of taps costs one commit.
:meth:`DeviceStore.flush` waits for everything recorded so far.

A device in several spaces keeps one file per space (its id, secret,
``newest_seen``, epoch, values and intents all belong to that space's link);
the default space keeps the file name devices had before spaces, so their
state carries over.

Reading happens once, when the device opens. A file that cannot be read as
this store (not SQLite, damaged, wrong shape) is moved aside with a logged
warning and the device starts clean: losing local state is recoverable (the
server has the truth), crashing at start is not.

One device identity is used by one session at a time: the file is locked
(a ``.lock`` file beside it) from :meth:`DeviceStore.load` to
:meth:`DeviceStore.close`, and a second open, in this process or another,
fails with :class:`DeviceInUseError`.

:class:`StateStore` is what a session needs from a store; :class:`MemoryStore`
is one in memory for simulators, where a process kill keeps only what was
flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import filelock
import platformdirs

from syncserver.protocol import DEFAULT_SPACE

from .errors import DeviceInUseError

__all__ = [
    "DeviceStore",
    "Intent",
    "MemoryStore",
    "StateStore",
    "StoredIntent",
    "StoredState",
    "default_data_dir",
    "store_path",
]

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registers (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, server_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
    key TEXT PRIMARY KEY, value TEXT NOT NULL,
    local_revision INTEGER NOT NULL, base_revision INTEGER NOT NULL
);
"""


def default_data_dir() -> Path:
    """Where devices keep their state unless told otherwise."""
    return platformdirs.user_data_path("optisync", appauthor=False) / "devices"


def store_path(data_dir: Path, name: str, space: str = DEFAULT_SPACE) -> Path:
    """The file of device ``name`` in ``space``: readable slugs plus a hash so names
    never collide. The default space's file is named as before spaces existed."""
    slug = _slug(name, "device")
    if space == DEFAULT_SPACE:
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        return data_dir / f"{slug}-{digest}.sqlite3"
    # NUL separates the two: ("a", "b c") and ("a b", "c") never hash alike.
    digest = hashlib.sha256(f"{name}\0{space}".encode()).hexdigest()[:10]
    return data_dir / f"{slug}--{_slug(space, 'space')}-{digest}.sqlite3"


def _slug(text: str, fallback: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or fallback


@dataclass(frozen=True, slots=True)
class Intent:
    """A choice of this device's user that the server has not confirmed yet.

    It is kept (and persisted) until a sync of it finishes or a newer server
    write supersedes it; ``base_revision`` records the server revision known
    when it was made, kept in the state file to diagnose a lost or late change.
    """

    value: Any
    local_revision: int
    base_revision: int


StoredIntent = Intent
"""The name the state file's rows had before intents became one type."""


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything read back at open. ``epoch`` is the server history that
    ``newest_seen`` and ``revisions`` count in (None: none seen yet)."""

    device_id: int | None = None
    newest_seen: int = 0
    values: Mapping[str, Any] = field(default_factory=dict)
    revisions: Mapping[str, int] = field(default_factory=dict)
    intents: Mapping[str, Intent] = field(default_factory=dict)
    epoch: str | None = None
    device_secret: str | None = None
    """Proves the device owns its id to the server (PROTOCOL.md, "Credentials")."""


class StateStore(Protocol):
    """What a :class:`~app.link.DeviceSession` needs from its store.

    ``load`` claims the device (raising :class:`DeviceInUseError` if it is
    open elsewhere) and returns what was stored; puts never block; ``flush``
    waits until every put so far would survive a crash; ``close`` flushes and
    releases the device.
    """

    async def load(self) -> StoredState: ...

    def put_device_id(self, device_id: int) -> None: ...

    def put_device_secret(self, secret: str) -> None: ...

    def put_newest_seen(self, revision: int) -> None: ...

    def put_epoch(self, epoch: str | None) -> None: ...

    def put_value(self, key: str, value: Any, server_revision: int) -> None: ...

    def put_intent(self, key: str, intent: Intent | None) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


_DELETE = object()


class DeviceStore:
    """One device's state file for one space. Open it with :meth:`open` (or
    :meth:`load`); all puts are non-blocking."""

    def __init__(self, path: Path, name: str, space: str = DEFAULT_SPACE) -> None:
        self.path = path
        self.name = name
        self.space = space
        self._file_lock = filelock.FileLock(path.with_name(f"{path.name}.lock"), thread_local=False)
        self._lock = threading.Condition()
        self._meta: dict[str, str] = {}
        self._registers: dict[str, tuple[str, int]] = {}
        self._intents: dict[str, object] = {}
        self._recorded = 0  # generation of the newest change recorded
        self._written = 0  # generation of the newest change committed (or given up on)
        self._stopping = False
        self._thread: threading.Thread | None = None

    @classmethod
    def for_device(
        cls, data_dir: Path | str | None, name: str, space: str = DEFAULT_SPACE
    ) -> DeviceStore:
        """The store of device ``name`` in ``space`` under ``data_dir`` (default: the
        user data folder)."""
        folder = default_data_dir() if data_dir is None else Path(data_dir)
        return cls(store_path(folder, name, space), name, space)

    @classmethod
    async def open(
        cls, data_dir: Path | None, name: str, space: str = DEFAULT_SPACE
    ) -> tuple[DeviceStore, StoredState]:
        """Open (or create) the file of device ``name`` in ``space`` and read it back."""
        store = cls.for_device(data_dir, name, space)
        return store, await store.load()

    async def load(self) -> StoredState:
        """Lock the file (or raise :class:`DeviceInUseError`), read it back and
        start the writer thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file_lock.acquire(timeout=0)
        except filelock.Timeout:
            raise DeviceInUseError(self.name, self.path) from None
        try:
            stored = await asyncio.to_thread(self._load)
        except BaseException:
            self._file_lock.release()
            raise
        self._thread = threading.Thread(
            target=self._write_loop, name=f"optisync store {self.name}", daemon=True
        )
        self._thread.start()
        return stored

    @classmethod
    def peek(cls, data_dir: Path | None, name: str, space: str = DEFAULT_SPACE) -> StoredState:
        """Read device ``name``'s file for ``space`` without opening it for writing
        (tools, tests)."""
        path = store_path(default_data_dir() if data_dir is None else data_dir, name, space)
        return cls(path, name, space)._read()

    # -- recording changes (any thread, never blocks on the disk) -----------------

    def put_device_id(self, device_id: int) -> None:
        self._put_meta("device_id", str(device_id))

    def put_device_secret(self, secret: str) -> None:
        self._put_meta("device_secret", secret)

    def put_newest_seen(self, revision: int) -> None:
        self._put_meta("newest_seen", str(revision))

    def put_epoch(self, epoch: str | None) -> None:
        self._put_meta("epoch", epoch or "")

    def put_value(self, key: str, value: Any, server_revision: int) -> None:
        encoded = json.dumps(value)
        with self._lock:
            self._registers[key] = (encoded, server_revision)
            self._changed()

    def put_intent(self, key: str, intent: Intent | None) -> None:
        with self._lock:
            self._intents[key] = _DELETE if intent is None else intent
            self._changed()

    def _put_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._meta[name] = value
            self._changed()

    def _changed(self) -> None:
        self._recorded += 1
        self._lock.notify_all()

    # -- waiting for the disk -------------------------------------------------------

    async def flush(self) -> None:
        """Wait until every change recorded so far is committed."""
        await asyncio.to_thread(self._wait_written)

    async def close(self) -> None:
        """Commit what is left and stop the writer thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._file_lock.is_locked:
            self._file_lock.release()

    def _wait_written(self) -> None:
        with self._lock:
            target = self._recorded
            while self._written < target and self._thread is not None:
                self._lock.wait()

    # -- reading at open -----------------------------------------------------------

    def _load(self) -> StoredState:
        try:
            return self._read()
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            self._move_aside(exc)
        return self._read()

    def _read(self) -> StoredState:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as db:
            meta = dict(db.execute("SELECT name, value FROM meta"))
            values: dict[str, Any] = {}
            revisions: dict[str, int] = {}
            for key, value, revision in db.execute(
                "SELECT key, value, server_revision FROM registers"
            ):
                values[str(key)] = json.loads(value)
                revisions[str(key)] = _as_int(revision)
            intents = {
                str(key): Intent(json.loads(value), _as_int(local), _as_int(base))
                for key, value, local, base in db.execute(
                    "SELECT key, value, local_revision, base_revision FROM intents"
                )
            }
        device_id = meta.get("device_id")
        return StoredState(
            device_id=None if device_id is None else int(device_id),
            newest_seen=max(int(meta.get("newest_seen", 0)), 0),
            values=values,
            revisions=revisions,
            intents=intents,
            epoch=meta.get("epoch") or None,
            device_secret=meta.get("device_secret") or None,
        )

    def _move_aside(self, exc: BaseException) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning(
            "device %r: state file %s is unreadable (%s); moved it to %s and starting clean",
            self.name,
            self.path,
            exc,
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            with contextlib.suppress(FileNotFoundError):
                source.replace(Path(f"{aside}{suffix}"))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # app state: a crash may lose the last commit
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    # -- the writer thread -----------------------------------------------------------

    def _write_loop(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = self._connect()
            db.executemany(
                "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                [("device_name", self.name), ("space", self.space)],
            )
        except sqlite3.Error:
            log.exception("device %r: cannot write state to %s", self.name, self.path)
        try:
            while True:
                with self._lock:
                    while self._written == self._recorded and not self._stopping:
                        self._lock.wait()
                    if self._written == self._recorded and self._stopping:
                        return
                    generation = self._recorded
                    meta, self._meta = self._meta, {}
                    registers, self._registers = self._registers, {}
                    intents, self._intents = self._intents, {}
                if db is not None:
                    self._commit(db, meta, registers, intents)
                with self._lock:
                    self._written = generation
                    self._lock.notify_all()
        finally:
            if db is not None:
                db.close()
            with self._lock:
                self._written = self._recorded
                self._thread = None
                self._lock.notify_all()

    def _commit(
        self,
        db: sqlite3.Connection,
        meta: dict[str, str],
        registers: dict[str, tuple[str, int]],
        intents: dict[str, object],
    ) -> None:
        try:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta.items())
            db.executemany(
                "INSERT OR REPLACE INTO registers (key, value, server_revision) VALUES (?, ?, ?)",
                [(key, value, revision) for key, (value, revision) in registers.items()],
            )
            for key, intent in intents.items():
                if isinstance(intent, Intent):
                    db.execute(
                        "INSERT OR REPLACE INTO intents"
                        " (key, value, local_revision, base_revision) VALUES (?, ?, ?, ?)",
                        (
                            key,
                            json.dumps(intent.value),
                            intent.local_revision,
                            intent.base_revision,
                        ),
                    )
                else:
                    db.execute("DELETE FROM intents WHERE key = ?", (key,))
            db.execute("COMMIT")
        except sqlite3.Error:
            # Never crash the app over its cache: the server still holds the truth.
            log.exception("device %r: could not save state to %s", self.name, self.path)
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer in the state file, found {value!r}")
    return value


class MemoryStore:
    """A :class:`StateStore` in memory, for simulators and tests: one device's
    state in one space.

    ``durable`` is what a disk would hold: puts reach it on :meth:`flush` (or
    :meth:`close`), so a process kill (:meth:`crash`) loses only unflushed puts.
    Reopening the same object (``load`` again) is restarting the device.
    """

    def __init__(
        self,
        name: str = "device",
        durable: StoredState | None = None,
        *,
        space: str = DEFAULT_SPACE,
    ) -> None:
        self.name = name
        self.space = space
        self.durable = durable if durable is not None else StoredState()
        self.in_use = False
        self._meta: dict[str, Any] = {}
        self._values: dict[str, tuple[Any, int]] = {}
        self._intents: dict[str, Intent | None] = {}

    async def load(self) -> StoredState:
        if self.in_use:
            raise DeviceInUseError(self.name, "memory")
        self.in_use = True
        self._drop_unflushed()
        return self.durable

    def put_device_id(self, device_id: int) -> None:
        self._meta["device_id"] = device_id

    def put_device_secret(self, secret: str) -> None:
        self._meta["device_secret"] = secret

    def put_newest_seen(self, revision: int) -> None:
        self._meta["newest_seen"] = revision

    def put_epoch(self, epoch: str | None) -> None:
        self._meta["epoch"] = epoch or None

    def put_value(self, key: str, value: Any, server_revision: int) -> None:
        self._values[key] = (value, server_revision)

    def put_intent(self, key: str, intent: Intent | None) -> None:
        self._intents[key] = intent

    async def flush(self) -> None:
        durable = self.durable
        values = dict(durable.values)
        revisions = dict(durable.revisions)
        for key, (value, revision) in self._values.items():
            values[key] = value
            revisions[key] = revision
        intents = dict(durable.intents)
        for key, intent in self._intents.items():
            if intent is None:
                intents.pop(key, None)
            else:
                intents[key] = intent
        self.durable = StoredState(
            device_id=self._meta.get("device_id", durable.device_id),
            newest_seen=self._meta.get("newest_seen", durable.newest_seen),
            values=values,
            revisions=revisions,
            intents=intents,
            epoch=self._meta.get("epoch", durable.epoch),
            device_secret=self._meta.get("device_secret", durable.device_secret),
        )
        self._drop_unflushed()

    async def close(self) -> None:
        await self.flush()
        self.in_use = False

    def crash(self) -> None:
        """The process died: unflushed puts are gone and the device can be opened again."""
        self._drop_unflushed()
        self.in_use = False

    def _drop_unflushed(self) -> None:
        self._meta = {}
        self._values = {}
        self._intents = {}
