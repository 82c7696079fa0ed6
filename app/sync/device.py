"""One device's sync bookkeeping, shared by every cubit built on it.

The reference keeps one device id and one revision map per process; here each
:class:`DeviceContext` is a device of its own, so one process can host several
(the demo opens several windows, each its own device).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .completion import SyncCompletion
from .events import SyncEvent
from .rules import PushMetadata

__all__ = ["DEVICE_ID_BITS", "DeviceContext", "EventListener", "new_device_id"]

log = logging.getLogger(__name__)

EventListener = Callable[[SyncEvent], None]

DEVICE_ID_BITS = 53
"""Device ids we make fit in 53 bits: JSON numbers are exact up to 2**53 - 1 in
every language (JavaScript's included), so any client's self-echo rule works."""


def new_device_id(randbits: Callable[[int], int] = secrets.randbits) -> int:
    """A random device id in 1 ... 2**53 - 1 (0 is reserved)."""
    while True:
        device_id = randbits(DEVICE_ID_BITS)
        if device_id:
            return device_id


def _check_device_id(device_id: object) -> None:
    if isinstance(device_id, bool) or not isinstance(device_id, int):
        raise TypeError(f"device_id must be an int, not {type(device_id).__name__}")


@dataclass(frozen=True, slots=True)
class HeldPush:
    """Another device's push that arrived while our request was in flight."""

    push: PushMetadata
    apply: Callable[[Any, int], Any]
    """``apply_server_push_to_state``, called if the push turns out newer than our write."""


@dataclass(slots=True)
class KeyBook:
    """What a device knows of one key."""

    local_revision: int = 0
    local_value: Any = None
    """The value of the latest local change: what a follow-up carries."""
    server_revision: int = -1
    latest_change_from_push: bool = False
    held_push: HeldPush | None = None
    """A push held back while a request is in flight (see :mod:`app.sync.rules`)."""
    loop: SyncCompletion | None = None
    """The key's running sync loop while a request is in flight."""


class DeviceContext:
    """Per-device local revisions, known server revisions, push marks and in-flight keys.

    It is the one owner of a key's server revision on a device: state, statuses
    and storage read it here (:meth:`server_revision`) rather than keep copies.
    """

    def __init__(self, device_id: int | None = None) -> None:
        if device_id is not None:
            _check_device_id(device_id)
        self._device_id = new_device_id() if device_id is None else device_id
        self._books: dict[Hashable, KeyBook] = {}
        self._listeners: list[EventListener] = []
        self.observed = False
        """Whether anyone listens; lets hot paths skip building events nobody reads."""

    def __repr__(self) -> str:
        return f"DeviceContext(device_id={self._device_id}, keys={len(self._books)})"

    @property
    def device_id(self) -> int:
        return self._device_id

    def change_device_id(self, device_id: int) -> None:
        """Go on as ``device_id`` (the old id was taken by someone else on the server).

        From now on only pushes of the new id are this device's echoes; the
        old id's writes are another device's. Revisions and in-flight keys stay.
        """
        _check_device_id(device_id)
        self._device_id = device_id

    # -- read-only views -------------------------------------------------------

    def in_flight(self, key: Hashable) -> bool:
        """Whether a request for ``key`` is on its way to the server."""
        book = self._books.get(key)
        return book is not None and book.loop is not None

    def in_flight_keys(self) -> frozenset[Hashable]:
        return frozenset(key for key, book in self._books.items() if book.loop is not None)

    def local_revision(self, key: Hashable) -> int:
        """How many local changes ``key`` has seen (0 if never changed here)."""
        book = self._books.get(key)
        return 0 if book is None else book.local_revision

    def server_revision(self, key: Hashable) -> int:
        """The newest server revision this device recorded for ``key`` (-1 if unknown)."""
        book = self._books.get(key)
        return -1 if book is None else book.server_revision

    def local_value(self, key: Hashable) -> Any:
        """The value of the latest local change to ``key`` (None if never changed here)."""
        book = self._books.get(key)
        return None if book is None else book.local_value

    def latest_change_from_push(self, key: Hashable) -> bool:
        """Whether the newest change to ``key`` came from the server rather than the user."""
        book = self._books.get(key)
        return book is not None and book.latest_change_from_push

    def keys(self) -> frozenset[Hashable]:
        return frozenset(self._books)

    # -- restoring after a restart ----------------------------------------------

    def restore(self, key: Hashable, *, local_revision: int = 0, server_revision: int = -1) -> None:
        """Seed a key's revisions from persisted state (never lowers what is known)."""
        book = self.book(key)
        book.local_revision = max(book.local_revision, local_revision)
        book.server_revision = max(book.server_revision, server_revision)

    # -- events ------------------------------------------------------------------

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with every :class:`SyncEvent`; returns an unsubscribe function."""
        self._listeners.append(listener)
        self.observed = True

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            self.observed = bool(self._listeners)

        return unsubscribe

    def publish(self, event: SyncEvent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                # An observer must never break the sync loop it observes.
                log.exception("sync event listener %r failed on %r", listener, event)

    # -- bookkeeping used by the cubit -------------------------------------------

    def book(self, key: Hashable) -> KeyBook:
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = KeyBook()
        return book

    def known_server_revision(self, key: Hashable, from_state: int) -> int:
        """The newest revision known for ``key``: recorded, or persisted in state."""
        return self.learn_server_revision(key, from_state)

    def learn_server_revision(self, key: Hashable, revision: int) -> int:
        """Record that the server holds ``revision`` of ``key`` (never lowers what is
        known, e.g. after a reload); returns the newest revision known."""
        book = self.book(key)
        if revision > book.server_revision:
            book.server_revision = revision
        return book.server_revision

    def forget_server_revisions(self) -> None:
        """The server's history was replaced (a new epoch): every key's server
        revision goes back to unknown and no change counts as pushed any more.
        Local revisions keep rising, and sync loops in flight keep their course."""
        for book in self._books.values():
            book.server_revision = -1
            book.latest_change_from_push = False
            book.held_push = None  # a write of the replaced history

    def claim(self, key: Hashable, loop: SyncCompletion) -> None:
        self.book(key).loop = loop

    def release(self, key: Hashable) -> None:
        self.book(key).loop = None
