"""Registers kept in memory, indexed by key and by revision.

The in-memory backends (memory, and Redis' copy of the registers) answer a
``hello since R`` from :class:`RevisionLog`: every write is appended to a
list in revision order, so the writes after ``R`` start at a binary search
and a resync costs O(log n + writes after R), not a scan and sort of every
register. A write that a newer write to the same key superseded stays in the
list until half the list is superseded, then the list is compacted (amortized
O(1) per write).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import msgspec

from . import ChangePage, Write

__all__ = ["RevisionLog", "encode_entry"]


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


def _revision(write: Write) -> int:
    return write.revision
