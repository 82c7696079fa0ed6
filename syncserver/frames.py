"""Frames the server builds from raw JSON pieces, capped at MAX_PAGE_BYTES.

Values are stored as their JSON encoding, so snapshot pages and ``pushes``
frames are assembled from already encoded entries instead of re-encoding
every value; each piece is encoded once however many connections get it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from .backends import Write
from .backends.ordered import encode_entry
from .protocol import DEFAULT_SPACE, MAX_PAGE_BYTES, Push, StateEntry, encode_bytes

__all__ = [
    "SnapshotPage",
    "batch_frame",
    "batch_frames",
    "push_payload",
    "snapshot_entry",
    "snapshot_pages",
]

_BATCH_HEAD: Final = b'{"type":"pushes","pushes":['
_BATCH_TAIL: Final = b"]}"
_encode_text = msgspec.json.Encoder().encode


def snapshot_entry(write: Write) -> StateEntry:
    """A register as the observer feed shows it (a snapshot entry and its space)."""
    return StateEntry(
        write.key,
        msgspec.Raw(write.value),
        write.revision,
        write.local_revision,
        write.device_id,
        write.space,
    )


def push_payload(write: Write) -> bytes:
    """The encoded ``push`` of one committed write."""
    return encode_bytes(
        Push(
            write.key,
            msgspec.Raw(write.value),
            write.revision,
            write.local_revision,
            write.device_id,
            write.space,
            write.prev,
        )
    )


def batch_frame(pushes: list[bytes]) -> bytes:
    """One ``pushes`` frame holding every encoded push given (no size check)."""
    return _BATCH_HEAD + b",".join(pushes) + _BATCH_TAIL


def _pages(items: list[bytes], budget: int) -> list[list[bytes]]:
    """``items`` in order, grouped so each group's joined size stays within ``budget``."""
    if sum(map(len, items)) + len(items) <= budget:
        return [items]
    pages: list[list[bytes]] = []
    page: list[bytes] = []
    size = 0
    for item in items:
        if page and size + len(item) + 1 > budget:
            pages.append(page)
            page, size = [], 0
        page.append(item)
        size += len(item) + 1
    pages.append(page)
    return pages


def batch_frames(pushes: list[bytes]) -> list[bytes]:
    """``pushes`` frames in revision order, each at most MAX_PAGE_BYTES."""
    budget = MAX_PAGE_BYTES - len(_BATCH_HEAD) - len(_BATCH_TAIL)
    return [batch_frame(page) for page in _pages(pushes, budget)]


class SnapshotPage:
    """The frame of every page of one snapshot, around its entries."""

    __slots__ = ("budget", "head", "tail")

    def __init__(
        self,
        revision: int,
        *,
        epoch: str,
        since: int,
        protocol: int,
        space: str = DEFAULT_SPACE,
    ) -> None:
        self.head = b'{"type":"snapshot","revision":%d,"values":[' % revision
        self.tail = b'],"protocol":%d,"epoch":%s,"since":%d,"space":%s,"more":' % (
            protocol,
            _encode_text(epoch),
            since,
            _encode_text(space),
        )
        self.budget = MAX_PAGE_BYTES - len(self.head) - len(self.tail) - len(b"false}")
        """How many bytes the comma-joined entries of one page may take."""

    def frame(self, entries: list[bytes], *, more: bool) -> bytes:
        """One page holding ``entries`` (already encoded snapshot entries)."""
        return self.head + b",".join(entries) + self.tail + (b"true}" if more else b"false}")


def snapshot_pages(
    revision: int,
    writes: Iterable[Write],
    *,
    epoch: str,
    since: int,
    protocol: int,
    space: str = DEFAULT_SPACE,
) -> list[bytes]:
    """The ``snapshot`` answering a hello, as pages of at most MAX_PAGE_BYTES;
    every page but the last says ``more``."""
    entries = [encode_entry(write) for write in writes]
    page = SnapshotPage(revision, epoch=epoch, since=since, protocol=protocol, space=space)
    pages = _pages(entries, page.budget)
    last = len(pages) - 1
    return [page.frame(entries, more=index != last) for index, entries in enumerate(pages)]
