"""Where the registers live and how writes reach every server process.

Theory of operation
-------------------
A backend owns three things the server needs and nothing else: the global
revision counter, the durable registers (last value and revision per key),
and the ordered stream of committed writes that the server fans out.

* :meth:`Backend.submit` queues a write. The backend groups queued writes
  into one durable step (an SQLite transaction, one Redis script call).
* ``on_commit`` (given to the constructor) is the subscription to the global
  write stream: the backend calls it on the event loop with committed writes
  in revision order, every revision exactly once, with no gaps except where a
  backend documents them (Redis' snapshot fallback). A write reaches
  ``on_commit`` only once it is durable, so the server can ack it there.
  With several server processes on one shared backend (Redis), ``on_commit``
  also carries the other processes' writes, as plain :class:`Write` objects;
  this process' own writes come back as the objects that were submitted, so
  the server can tell whom to ack.
* ``on_failure`` gets this process' writes that could not be made durable.
* Spaces: every write belongs to one space (``Write.space``). Revisions
  are one counter across every space; when the backend assigns a write's
  ``revision`` it also sets ``prev``, the revision of the newest earlier
  write in the same space (0: none), in the same atomic step, so a device
  sees gaps per space. :meth:`Backend.head` is a space's newest revision.
* :attr:`Backend.epoch` names the database's history: a random id made with
  the database, kept with it, and new whenever the registers start over.
* Reads: :attr:`Backend.revision` is the newest write that went through
  ``on_commit``. :meth:`Backend.read_changes` reads one space's registers
  written after a revision, oldest first, one page at a time, through an
  index on (space, revision) (a catch-up costs what was written in that
  space since, not the whole database); each page says which revision it was read at (``read_at``),
  so the server can check that no push it already sent is newer than what
  the page read (``core.py`` explains the rule). :meth:`Backend.get` and
  :meth:`Backend.newest` serve ``get`` and the observer feed.

Two backends: :class:`~syncserver.backends.sqlite.SQLiteBackend` (the
default, embedded, one process) and
:class:`~syncserver.backends.redis.RedisBackend` (several processes on one
Redis). ``syncserver/BACKENDS.md`` documents their durability and costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from ..protocol import DEFAULT_SPACE

__all__ = [
    "MAX_BATCH",
    "Backend",
    "ChangePage",
    "CommitCallback",
    "FailureCallback",
    "Write",
    "create_backend",
    "is_redis_url",
]

MAX_BATCH: Final = 2000
"""Most writes made durable in one step (a transaction or a script call)."""


@dataclass(slots=True)
class Write:
    """One write; ``revision`` is set once the backend has ordered it."""

    key: str
    value: bytes
    """The value's JSON encoding, stored and sent as is."""
    revision: int = 0
    local_revision: int = 0
    device_id: int = 0
    space: str = DEFAULT_SPACE
    prev: int = 0
    """The revision of the newest earlier write in ``space`` (0: none), set with ``revision``."""


@dataclass(slots=True)
class ChangePage:
    """One page of registers read for a snapshot, oldest first."""

    entries: list[bytes]
    """Each register as a snapshot entry's JSON, in revision order."""
    last: int
    """The revision of the last entry (the ``after`` it was read from if none)."""
    complete: bool
    """No register after ``last`` is left in the range asked for."""
    read_at: int
    """Every write up to this revision was in the registers when the page was read."""


CommitCallback = Callable[[Sequence[Write]], None]
FailureCallback = Callable[[Sequence[Write], BaseException], None]


class Backend(Protocol):
    """What the server needs from a place to keep registers; see the module docstring."""

    @property
    def revision(self) -> int:
        """The newest revision that went through ``on_commit``."""
        ...

    @property
    def epoch(self) -> str:
        """The database's epoch: a random id made when it was created, so a
        revision from another database (or a wiped one) is never taken for ours."""
        ...

    @property
    def count(self) -> int:
        """How many registers there are."""
        ...

    @property
    def spaces(self) -> int:
        """How many spaces have registers."""
        ...

    def head(self, space: str) -> int:
        """The newest revision in ``space`` that went through ``on_commit`` (0: none)."""
        ...

    @property
    def queued(self) -> int:
        """Writes submitted and not yet committed or failed."""
        ...

    def describe(self) -> str:
        """Where the registers are, for the startup line (no secrets)."""
        ...

    async def open(self) -> None:
        """Connect, load the registers, start committing and following writes."""
        ...

    async def close(self) -> None:
        """Commit (or fail) whatever is queued, then disconnect."""
        ...

    def submit(self, write: Write) -> None:
        """Queue a write; ``on_commit`` reports it once durable. Raises
        ``RuntimeError`` once the backend is closing."""
        ...

    def lookup(
        self,
        space: str,
        key: str,
        done: Callable[[Write | None], None],
        failed: Callable[[], None],
    ) -> None:
        """Call ``done`` with one register's newest committed write (None if
        never written), at once or later on the event loop; ``failed`` if the
        database could not be read."""
        ...

    def follow(self, space: str, done: Callable[[bool], None]) -> bool:
        """Start following ``space`` for one more user (a connection that joined
        it): its writes reach ``on_commit`` and :meth:`head` and :meth:`reported`
        know it. True if that holds already (``done`` is not called); else
        ``done`` is called on the event loop once it does (True) or could not be
        arranged (False: the database is down; the user is not counted then)."""
        ...

    def unfollow(self, space: str) -> None:
        """One user of ``space`` is gone (also while its :meth:`follow` is under way)."""
        ...

    def reported(self, space: str) -> int:
        """A revision R such that every write of ``space`` at or below R went
        through ``on_commit`` and none above it did: a snapshot of the space
        needs no push at or below R. :attr:`revision` where every space's
        writes come in one order; the space's :meth:`head` where each space
        has its own (Redis)."""
        ...

    def newest(self) -> Iterator[Write]:
        """Every space's registers, newest first, up to :attr:`revision` (read lazily)."""
        ...

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """Read the registers of ``space`` written after revision ``after`` (and at most
        ``upto``; None: up to :attr:`ChangePage.read_at`), oldest first, as
        snapshot entries whose comma-joined size is at most ``budget`` (one
        entry at least); call ``done`` with the page on the event loop, at
        once or later, or with None if the registers could not be read (the
        database failed, or the backend is closing). Costs O(entries read),
        never a scan of every register or of other spaces' writes."""
        ...

    def claim_device(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        """Record ``digest`` (a device secret's SHA-256) for ``device_id`` unless
        one is recorded already, atomically; then call ``done`` with the recorded
        digest (None if it could not be checked: the backend is down), at once or
        later on the event loop. Records are never replaced."""
        ...


def is_redis_url(spec: str) -> bool:
    """Whether a ``--backend`` value names a Redis server."""
    return spec.startswith(("redis://", "rediss://", "unix://"))


def create_backend(
    spec: str | None,
    db_path: Path,
    on_commit: CommitCallback,
    on_failure: FailureCallback,
    *,
    synchronous: str = "FULL",
) -> Backend:
    """The backend a ``--backend`` value names: ``None``/``"sqlite"`` for the
    SQLite file at ``db_path``, ``"memory"`` for registers kept in this process
    only, or a ``redis://HOST:PORT/DB`` URL."""
    if spec is None or spec == "sqlite":
        from .sqlite import SQLiteBackend, Synchronous

        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        mode: Synchronous = "FULL" if synchronous == "FULL" else "NORMAL"
        return SQLiteBackend(db_path, on_commit, on_failure, synchronous=mode)
    if spec == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(on_commit, on_failure)
    if is_redis_url(spec):
        from .redis import RedisBackend

        return RedisBackend(spec, on_commit, on_failure)
    raise ValueError(
        f"unknown backend {spec!r}: use 'sqlite', 'memory' or a redis://HOST:PORT/DB URL"
    )
