"""Registers kept in memory, indexed by key and by revision.

The memory backend answers a ``hello since R`` from :class:`RevisionLog`:
every write is appended to a list in revision order, so the writes after
``R`` start at a binary search
and a resync costs O(log n + writes after R), not a scan and sort of every
register. A write that a newer write to the same key superseded stays in the
list until half the list is superseded, then the list is compacted (amortized
O(1) per write).

:class:`SpaceLogs` keeps one :class:`RevisionLog` per space and each space's
head, so a write touches only its own space and a catch-up reads only the
writes of the space it is for.

:class:`OneOrder` is what SQLite and memory share of the ``Backend``
interface: both report every space's writes in one order and read a
register at once. :func:`encode_entry` builds a snapshot entry (Redis too).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

import msgspec

from . import ChangePage, Write

__all__ = ["OneOrder", "RevisionLog", "SpaceLogs", "encode_entry"]


def encode_entry(write: Write) -> bytes:
    """A register as a snapshot entry's JSON (the same bytes SQLite builds)."""
    return b'{"key":%s,"value":%s,"server_revision":%d,"local_revision":%d,"device_id":%d}' % (
        _encode_key(write.key),
        write.value,
        write.revision,
        write.local_revision,
        write.device_id,
    )


_encode_key = msgspec.json.Encoder().encode


class _Ordered(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, space: str, key: str) -> Write | None: ...


class OneOrder:
    """The part of the ``Backend`` interface that is the same for every backend
    whose ``on_commit`` carries every space's writes in one revision order and
    can read a register at once (SQLite, memory): it follows every space already."""

    def lookup(
        self: _Ordered,
        space: str,
        key: str,
        done: Callable[[Write | None], None],
        failed: Callable[[], None],
    ) -> None:
        """``get``, answered at once."""
        done(self.get(space, key))

    def follow(self, space: str, done: Callable[[bool], None]) -> bool:
        """Every space's writes reach ``on_commit`` already."""
        return True

    def unfollow(self, space: str) -> None:
        """Nothing to stop: every space is followed."""

    def reported(self: _Ordered, space: str) -> int:
        """``revision``: writes reach ``on_commit`` in revision order, all spaces together."""
        return self.revision


class RevisionLog:
    """Key → newest write, plus the writes in revision order (see the module docstring)."""

    __slots__ = ("_log", "_superseded", "values")

    def __init__(self, writes: Iterable[Write] = ()) -> None:
        self.values: dict[str, Write] = {}
        self._log: list[Write] = []
        self._superseded = 0
        for write in sorted(writes, key=_revision):
            self.put(write)

    def put(self, write: Write) -> None:
        """Record ``write``, which is newer than every write recorded so far."""
        if self.values.get(write.key) is not None:
            self._superseded += 1
        self.values[write.key] = write
        self._log.append(write)
        if self._superseded > 1024 and self._superseded * 2 > len(self._log):
            values = self.values
            self._log = [w for w in self._log if values.get(w.key) is w]
            self._superseded = 0

    def after(self, since: int, upto: int | None = None) -> Iterator[Write]:
        """The current registers written after ``since`` (and at most ``upto``), oldest first."""
        log = self._log
        values = self.values
        for index in range(bisect.bisect_right(log, since, key=_revision), len(log)):
            write = log[index]
            if upto is not None and write.revision > upto:
                return
            if values.get(write.key) is write:
                yield write

    def newest(self) -> Iterator[Write]:
        """The current registers, newest first."""
        values = self.values
        for write in reversed(self._log):
            if values.get(write.key) is write:
                yield write

    def page(self, after: int, upto: int | None, budget: int, read_at: int) -> ChangePage:
        """Snapshot entries after ``after`` (at most ``upto``) within ``budget`` bytes."""
        entries: list[bytes] = []
        size = 0
        last = after
        for write in self.after(after, upto):
            entry = encode_entry(write)
            if entries and size + len(entry) + 1 > budget:
                return ChangePage(entries, last, False, read_at)
            entries.append(entry)
            size += len(entry) + 1
            last = write.revision
        return ChangePage(entries, last, True, read_at)


class SpaceLogs:
    """A :class:`RevisionLog` per space, and each space's head revision."""

    __slots__ = ("count", "heads", "logs")

    def __init__(self, writes: Iterable[Write] = ()) -> None:
        self.logs: dict[str, RevisionLog] = {}
        self.heads: dict[str, int] = {}
        """Space → the revision of its newest write."""
        self.count = 0
        """How many registers there are, in every space."""
        for write in sorted(writes, key=_revision):
            self.put(write)

    def head(self, space: str) -> int:
        """The newest revision in ``space`` (0: none)."""
        return self.heads.get(space, 0)

    def put(self, write: Write) -> None:
        """Record ``write``, newer than every write recorded so far (``prev`` is left as is)."""
        space = write.space
        log = self.logs.get(space)
        if log is None:
            log = self.logs[space] = RevisionLog()
        before = len(log.values)
        log.put(write)
        self.count += len(log.values) - before
        self.heads[space] = write.revision

    def get(self, space: str, key: str) -> Write | None:
        """One register of ``space``."""
        log = self.logs.get(space)
        return None if log is None else log.values.get(key)

    def values(self, space: str) -> Mapping[str, Write]:
        """Every register of ``space``: key → its newest write."""
        log = self.logs.get(space)
        return {} if log is None else log.values

    def every(self) -> Iterator[Write]:
        """Every register of every space (in no particular order)."""
        for log in self.logs.values():
            yield from log.values.values()

    def newest(self) -> Iterator[Write]:
        """Every space's registers, newest first."""
        logs = [log.newest() for log in self.logs.values()]
        if len(logs) == 1:
            return logs[0]
        return heapq.merge(*logs, key=_revision, reverse=True)

    def page(
        self, space: str, after: int, upto: int | None, budget: int, read_at: int
    ) -> ChangePage:
        """A page of ``space``'s registers (see :meth:`RevisionLog.page`)."""
        log = self.logs.get(space)
        if log is None:
            return ChangePage([], after, True, read_at)
        return log.page(after, upto, budget, read_at)


def _revision(write: Write) -> int:
    return write.revision
