"""Registers kept in memory only: for tests, the simulation harness and demos.

Nothing reaches a disk, so nothing survives the process. Writes submitted
during one event-loop iteration commit together on the next (``call_soon``),
like a group commit that costs nothing, and ``on_commit`` sees them in
revision order. Two switches make the failure modes of real backends
reproducible: :meth:`MemoryBackend.make_unavailable` fails every commit (the
writers get ``unavailable``) until it is lifted or a deadline passes, and
:meth:`MemoryBackend.reset_history` starts over with a new epoch and no
registers, as if the database had been replaced. Each space has its own
log of writes (``ordered.SpaceLogs``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping

from ..protocol import DEFAULT_SPACE
from . import MAX_BATCH, ChangePage, CommitCallback, FailureCallback, Write
from .ordered import OneOrder, SpaceLogs

__all__ = ["BackendUnavailableError", "MemoryBackend"]


class BackendUnavailableError(ConnectionError):
    """The backend was made unavailable on purpose."""


class MemoryBackend(OneOrder):
    """The :class:`~syncserver.backends.Backend` interface with no storage."""

    def __init__(
        self,
        on_commit: CommitCallback,
        on_failure: FailureCallback,
        *,
        epoch: str | None = None,
    ) -> None:
        self.epoch = epoch if epoch is not None else secrets.token_hex(16)
        self.revision = 0
        self._registers = SpaceLogs()
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._queue: list[Write] = []
        self._scheduled = False
        self._closing = False
        self._unavailable = False
        self._available_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.devices: dict[int, bytes] = {}
        """Device id → the SHA-256 of its secret."""

    def describe(self) -> str:
        """Where the registers are, for the startup line."""
        return "memory (not durable)"

    @property
    def values(self) -> Mapping[str, Write]:
        """Every register of the default space: key → its newest write."""
        return self._registers.values(DEFAULT_SPACE)

    @values.setter
    def values(self, registers: Mapping[str, Write]) -> None:
        """Start from these registers, each in its ``Write.space`` (a harness
        restoring a process' disk)."""
        self.registers = list(registers.values())

    @property
    def registers(self) -> list[Write]:
        """Every register of every space."""
        return list(self._registers.every())

    @registers.setter
    def registers(self, writes: Iterable[Write]) -> None:
        """Start from these registers, each in its ``Write.space``."""
        self._registers = SpaceLogs(writes)

    def space_values(self, space: str) -> Mapping[str, Write]:
        """Every register of ``space``: key → its newest write."""
        return self._registers.values(space)

    @property
    def count(self) -> int:
        """How many registers there are."""
        return self._registers.count

    @property
    def spaces(self) -> int:
        """How many spaces have registers."""
        return len(self._registers.logs)

    def head(self, space: str) -> int:
        """The newest revision in ``space`` (0: none)."""
        return self._registers.head(space)

    @property
    def queued(self) -> int:
        """Writes waiting for the next commit."""
        return len(self._queue)

    async def open(self) -> None:
        """Start accepting writes on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._closing = False

    async def close(self) -> None:
        """Commit (or fail) whatever is queued."""
        self._closing = True
        self._commit()

    # -- failure modes ------------------------------------------------------

    def make_unavailable(self, seconds: float | None = None) -> None:
        """Fail every commit from now on, for ``seconds`` or until :meth:`make_available`."""
        self._unavailable = True
        self._available_at = None if seconds is None else self._now() + seconds

    def make_available(self) -> None:
        """Commit normally again."""
        self._unavailable = False
        self._available_at = None

    @property
    def available(self) -> bool:
        """Whether commits go through right now."""
        if (
            self._unavailable
            and self._available_at is not None
            and self._now() >= self._available_at
        ):
            self.make_available()
        return not self._unavailable

    def reset_history(self) -> None:
        """Start over: a new epoch, no registers, revision 0 (queued writes stay
        queued and land in the new history). ``on_commit`` is called with no
        writes, so the server notices the new epoch at once."""
        self.epoch = secrets.token_hex(16)
        self.revision = 0
        self._registers = SpaceLogs()
        self._on_commit([])

    def _now(self) -> float:
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        return loop.time()

    # -- writes -------------------------------------------------------------

    def submit(self, write: Write) -> None:
        """Queue a write; it commits on the next loop iteration."""
        if self._closing:
            raise RuntimeError("the backend is closing")
        self._queue.append(write)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop if self._loop is not None else asyncio.get_running_loop()
            loop.call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        while self._queue:
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            if not self.available:
                self._on_failure(batch, BackendUnavailableError("the backend is unavailable"))
                continue
            first = self.revision + 1
            registers = self._registers
            for offset, write in enumerate(batch):
                write.revision = first + offset
                write.prev = registers.head(write.space)
                registers.put(write)
            self.revision = batch[-1].revision
            self._on_commit(batch)

    # -- device credentials -------------------------------------------------

    def claim_device(
        self, device_id: int, digest: bytes, done: Callable[[bytes | None], None]
    ) -> None:
        """Record ``digest`` for a device that has none; ``done`` gets the recorded one."""
        done(self.devices.setdefault(device_id, digest))

    # -- reads --------------------------------------------------------------

    def get(self, space: str, key: str) -> Write | None:
        """One register's newest write."""
        return self._registers.get(space, key)

    def newest(self) -> Iterator[Write]:
        """The registers, newest first."""
        return self._registers.newest()

    def changed_since(self, since: int, space: str = DEFAULT_SPACE) -> list[Write]:
        """Every register of ``space`` written after revision ``since``, oldest first."""
        log = self._registers.logs.get(space)
        return [] if log is None else list(log.after(since))

    def read_changes(
        self,
        space: str,
        after: int,
        upto: int | None,
        budget: int,
        done: Callable[[ChangePage | None], None],
    ) -> None:
        """A page of registers written after ``after``, at once (see ``Backend``)."""
        done(self._registers.page(space, after, upto, budget, self.revision))
