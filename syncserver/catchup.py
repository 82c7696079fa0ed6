"""One connection's snapshot on its way, page by page.

A ``hello since R`` is answered with the registers written after ``R``,
read from the backend one page (at most MAX_PAGE_BYTES) at a time; the
server sends a page, gives the event loop a turn, and reads the next one,
so a full snapshot of a big database never holds the loop for long.

The snapshot's ``revision`` is the revision its first page was read at;
from that page on the connection receives every push above it. Later pages
read only registers at or below it: a register written since then is left
out, and its push (already sent, or on its way) carries the newer value. A
page read before a push the server has already sent is read again, so no
page shows a value older than a push the connection got before it.
``core.py`` drives this; ``PROTOCOL.md`` states what a client sees.
"""

from __future__ import annotations

from typing import Final

from .frames import SnapshotPage
from .protocol import DEFAULT_SPACE

__all__ = ["BUFFER_BEFORE_NEXT_PAGE", "PAGE_WAIT", "CatchUp"]

BUFFER_BEFORE_NEXT_PAGE: Final = 512 * 1024
"""The next page is read only once the connection's unread bytes fall to this."""

PAGE_WAIT: Final = 0.005
"""Seconds between two looks at a slow reader's send buffer."""

_WIDEST_REVISION: Final = 2**63 - 1


class CatchUp:
    """Where one connection's snapshot of one space stands."""

    __slots__ = ("after", "budget", "epoch", "page", "protocol", "revision", "since", "space")

    def __init__(
        self, since: int, *, epoch: str, protocol: int, space: str = DEFAULT_SPACE
    ) -> None:
        self.space = space
        self.since = since
        self.epoch = epoch
        self.protocol = protocol
        self.after = since
        """The revision of the last entry sent (pages are read after it)."""
        self.revision: int | None = None
        """The snapshot's revision, set by the first page."""
        self.page: SnapshotPage | None = None
        # Every page, the first included, fits the frame of the widest revision.
        self.budget = SnapshotPage(
            _WIDEST_REVISION, epoch=epoch, since=since, protocol=protocol, space=space
        ).budget

    def start(self, revision: int) -> SnapshotPage:
        """The first page was read at ``revision``: the snapshot is at it."""
        self.revision = revision
        self.page = SnapshotPage(
            revision, epoch=self.epoch, since=self.since, protocol=self.protocol, space=self.space
        )
        return self.page
