"""Snapshot page reads waiting for the backend, served fairly and one at a time.

A backend reads pages beside (SQLite: between) its commits. Were every
connection's next page handed to the backend at once, a few addresses
pipelining ``hello since 0`` would queue hundreds of page reads ahead of a
well-behaved device's commit. :class:`ReadQueue` hands the backend one read at
a time, so a commit waits behind one page at most, and takes the next read
round robin between owners (client addresses), so no address's catch-ups
delay another's by more than a page each. Each connection has at most one
read waiting (its pages are read one after another), so the queue is bounded
by the number of connections: a newer read for a connection (a pipelined
``hello`` started another snapshot) replaces the one it has waiting.
``core.py`` drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

__all__ = ["ReadQueue", "StartRead"]

StartRead = Callable[[Callable[[], None]], None]
"""Starts one read; calls the given ``finish`` exactly once when it is over."""


class ReadQueue:
    """Reads waiting for their turn, round robin between owners; one runs at a time."""

    __slots__ = ("_pumping", "_running", "_waiting", "closed")

    def __init__(self) -> None:
        self._waiting: dict[Hashable, dict[Hashable, StartRead]] = {}
        """Owner → its reads by reader, oldest first; the owner served next comes first."""
        self._running = False
        self._pumping = False
        self.closed = False

    def __len__(self) -> int:
        return sum(len(reads) for reads in self._waiting.values())

    def add(self, owner: Hashable, reader: Hashable, start: StartRead) -> None:
        """Run ``start`` once the reads ahead of it, taken fairly, are over; it
        replaces (in its place in the queue) a read ``reader`` has waiting."""
        if self.closed:
            return
        self._waiting.setdefault(owner, {})[reader] = start
        self._pump()

    def close(self) -> None:
        """Drop every waiting read (the server is shutting down) and take no more."""
        self.closed = True
        self._waiting.clear()

    def _pump(self) -> None:
        # A backend may finish a read at once, inside ``start``: the loop here
        # starts the next one instead of recursing.
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._running and self._waiting and not self.closed:
                owner = next(iter(self._waiting))
                reads = self._waiting.pop(owner)
                start = reads.pop(next(iter(reads)))
                if reads:
                    self._waiting[owner] = reads  # its next read waits for every other owner
                self._running = True
                try:
                    start(self._finisher(owner))
                except BaseException:
                    self._running = False
                    raise
        finally:
            self._pumping = False

    def _finisher(self, owner: Hashable) -> Callable[[], None]:
        finished = False

        def finish() -> None:
            nonlocal finished
            if finished:
                return
            finished = True
            self._running = False
            reads = self._waiting.pop(owner, None)
            if reads is not None:
                self._waiting[owner] = reads  # queued while it ran: every other owner first
            self._pump()

        return finish
