"""The device link's protocol engine: frames and clock ticks in, frames and events out.

Theory of operation
-------------------
Like websockets' ``protocol.py`` under its ``asyncio/connection.py``, this
object does no I/O, starts no tasks and reads no clock: the shell
(:class:`app.link.SyncClient`) feeds it what the transport received
(:meth:`LinkEngine.receive`), the connection's life (:meth:`connected`,
:meth:`disconnected`) and the time (:meth:`tick`), then sends what
:meth:`data_to_send` returns and acts on what :meth:`events_received` returns.
A test or a simulator can drive it with plain frames.

On every connection the engine says ``hello since newest_seen`` in the epoch
it last saw. The answer is a ``snapshot``, maybe in several pages (every page
but the last says ``more``); the device is caught up, and the link online,
only after the last page. A snapshot from another epoch (the server's database
was replaced) means the old history is gone: :class:`SnapshotPage` says
``new_epoch`` on its first page, so the device forgets every revision it
knew, and :class:`CaughtUp` then lists every key the new history holds
(``keys_written``), so keys absent from it read as never written.

An engine follows one **space** (an account, a document, a room; the
protocol's ``"default"`` unless told otherwise): its hellos join that space,
its sets and gets name it, and replies, pushes and snapshot pages of any other
space are dropped, so a device never holds a key written only elsewhere.

Revisions are one global counter shared by every space, so the pushes of one
space skip the revisions other spaces took. Each push says ``prev``: the
revision of the newest earlier write in its space. ``newest_seen`` is how far
this device has everything of its space: a push whose ``prev`` is at most
``newest_seen`` continues that run (``newest_seen`` moves to its revision); a
push whose ``prev`` is above it means a write of this space was missed. That
push is still applied (the core's revision rules make that harmless) and the
engine asks ``hello since newest_seen`` again. A server older than spaces
sends no ``prev``; its pushes count up by one, and a push past
``newest_seen + 1`` is the gap. While a resync is pending, further pushes are
applied and remembered; the snapshot's last page moves ``newest_seen`` to the
server's revision, then on through the pushes above it that arrived meanwhile,
in revision order, as long as each continues the run (a server may send
pushes between pages). A lost *last* push has no successor to reveal it, so
an online engine also says hello every ``heartbeat`` seconds (:meth:`tick`).

A hello the server refuses for the space (``forbidden``, ``too_many_spaces``)
comes back as :class:`SpaceRefused`: without it the device would wait for a
snapshot that never comes. So does a catch-up answered for another space (a
server older than spaces ignores ``hello.space`` and serves ``"default"``),
with the code :data:`NOT_SERVED`.

A frame the engine cannot decode, or one of a type it does not know, is
logged and dropped: one bad frame never costs the connection.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from syncserver.protocol import (
    DEFAULT_SPACE,
    MAX_SPACE_LENGTH,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Get,
    Hello,
    Push,
    PushBatch,
    Set,
    Snapshot,
    Value,
    decode_server_message,
    encode,
)

__all__ = [
    "NOT_SERVED",
    "CaughtUp",
    "LinkEngine",
    "LinkEvent",
    "PushesReceived",
    "ReplyReceived",
    "SnapshotPage",
    "SpaceRefused",
    "check_space_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushesReceived:
    """Writes pushed by the server (one ``push`` frame, or a whole ``pushes`` batch)."""

    pushes: tuple[Push, ...]


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    """One page of a catch-up snapshot, to apply through the revision rules.

    ``new_epoch`` is set on the first page of a snapshot from another epoch:
    forget every known server revision before applying it.
    """

    snapshot: Snapshot
    new_epoch: bool


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The last page arrived: ``newest_seen`` is ``revision`` in ``epoch``.

    ``keys_written`` is set after a new epoch's snapshot: every key that
    history holds (pages and pushes between them); any other key was never
    written there. ``went_online`` is True for the first catch-up of a connection.
    """

    revision: int
    epoch: str | None
    keys_written: frozenset[str] | None
    went_online: bool


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """The answer to request ``request_id`` (an ack, a value or an error)."""

    request_id: int
    reply: Ack | Value | Error


@dataclass(frozen=True, slots=True)
class SpaceRefused:
    """The server will not serve ``space`` on this connection: it refused the hello
    (``code`` ``forbidden`` or ``too_many_spaces``), or answered it with a snapshot
    of another space (:data:`NOT_SERVED`: a server older than spaces)."""

    space: str
    code: str
    message: str


LinkEvent = PushesReceived | SnapshotPage | CaughtUp | ReplyReceived | SpaceRefused


class LinkEngine:
    """One device's link protocol in one space: request ids, catch-up, gap
    detection, heartbeat.

    ``space`` is the space it joins (the protocol's ``"default"`` unless given).
    ``since`` and ``epoch`` are what the device stored last time for that space
    (0 and None for a new device). ``drop_push`` may lose pushes on purpose, as
    a flaky network would (demos and tests). ``heartbeat`` is the idle resync
    period in seconds (None: never).
    """

    def __init__(
        self,
        device_id: int,
        *,
        since: int = 0,
        epoch: str | None = None,
        heartbeat: float | None = 15.0,
        drop_push: Callable[[Push], bool] | None = None,
        token: str | None = None,
        device_secret: str | None = None,
        space: str = DEFAULT_SPACE,
    ) -> None:
        if heartbeat is not None and heartbeat <= 0:
            raise ValueError("heartbeat must be positive (or None for none)")
        check_space_name(space)
        self.device_id = device_id
        self.space = space
        """The space this engine joins; frames of any other space are dropped."""
        self.token = token
        """The server's shared token, sent in every hello (None: none)."""
        self.device_secret = device_secret
        """Proves this device owns ``device_id`` (PROTOCOL.md, "Credentials")."""
        self.newest_seen = max(since, 0)
        """How far this device has applied every write of its space (a revision)."""
        self.epoch = epoch or None
        """The epoch of the server history ``newest_seen`` counts in (None: none yet)."""
        self.heartbeat = heartbeat
        self.drop_push = drop_push
        self.connected_now = False
        self.online = False
        """Connected and caught up (the last page of the first snapshot arrived)."""
        self.gaps_detected = 0
        self.snapshots_applied = 0
        self.frames_dropped = 0
        self.foreign_dropped = 0
        """Replies, pushes and snapshot pages of another space, dropped."""
        self.heartbeat_due: float | None = None
        """When :meth:`tick` next says hello (None while not online)."""
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self._resyncing = False
        self._run: _PageRun | None = None
        self._early: dict[int, int | None] = {}
        """Revision -> prev of the pushes that arrived while a snapshot was on its way."""
        self._outgoing: list[str] = []
        self._events: list[LinkEvent] = []

    # -- the connection's life -----------------------------------------------------

    def connected(self, now: float) -> None:
        """A transport is open: say hello."""
        self.connected_now = True
        self.online = False
        self._resyncing = False
        self._run = None
        self._early.clear()
        self._say_hello(now)

    def disconnected(self) -> frozenset[int]:
        """The transport closed; returns the ids of the requests it took with it."""
        self.connected_now = False
        self.online = False
        self._resyncing = False
        self._run = None
        self._early.clear()
        self.heartbeat_due = None
        self._outgoing.clear()
        lost, self._pending = frozenset(self._pending), set()
        return lost

    def tick(self, now: float) -> None:
        """Let time pass: say hello if the heartbeat is due."""
        due = self.heartbeat_due
        if self.online and due is not None and now >= due and self.heartbeat is not None:
            self.heartbeat_due = now + self.heartbeat  # also while a resync is still pending
            self._say_hello(now)

    def resync(self, now: float) -> None:
        """Ask for everything after ``newest_seen`` again (no-op unless connected)."""
        self._say_hello(now)

    # -- requests ------------------------------------------------------------------

    def send_set(self, key: str, value: Any, local_revision: int) -> int:
        """Queue a ``set``; returns its request id (answered by a :class:`ReplyReceived`)."""
        request_id = self._new_request()
        self._outgoing.append(
            encode(Set(request_id, key, value, local_revision, self.device_id, space=self.space))
        )
        return request_id

    def send_get(self, key: str) -> int:
        """Queue a ``get``; returns its request id."""
        request_id = self._new_request()
        self._outgoing.append(encode(Get(request_id, key, space=self.space)))
        return request_id

    def forget_request(self, request_id: int) -> None:
        """Stop waiting for a request's reply (it timed out); a late reply is dropped."""
        self._pending.discard(request_id)

    def _new_request(self) -> int:
        if not self.connected_now:
            raise RuntimeError("the link engine has no connection to send on")
        request_id = next(self._ids)
        self._pending.add(request_id)
        return request_id

    # -- output --------------------------------------------------------------------

    def data_to_send(self) -> list[str]:
        """The frames to send, in order; each is returned once."""
        frames, self._outgoing = self._outgoing, []
        return frames

    def events_received(self) -> list[LinkEvent]:
        """What the frames received so far meant, in order; each is returned once."""
        events, self._events = self._events, []
        return events

    # -- input ---------------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float) -> None:
        """Take one frame from the server."""
        try:
            message = decode_server_message(frame)
        except Exception as exc:  # ProtocolError, or anything a hostile frame provokes
            self.frames_dropped += 1
            log.warning("device %s: dropped a frame it cannot decode: %s", self.device_id, exc)
            return
        match message:
            case Push():
                self._on_pushes((message,))
            case PushBatch(pushes=pushes):
                self._on_pushes(pushes)
            case Snapshot():
                self._on_snapshot(message, now)
            case Ack() | Value() | Error():
                self._on_reply(message)
            case _:
                log.info("device %s: ignored a %s frame", self.device_id, type(message).__name__)

    def _on_reply(self, reply: Ack | Value | Error) -> None:
        space = reply.space
        if space is not None and space != self.space:
            self._drop_foreign(type(reply).__name__, space)
            return
        request_id = reply.request_id
        if isinstance(request_id, int) and request_id in self._pending:
            self._pending.discard(request_id)
            self._events.append(ReplyReceived(request_id, reply))
        elif isinstance(reply, Error):
            log.warning("device %s: server error %s: %s", self.device_id, reply.code, reply.message)
            if space is not None and request_id is None and reply.code in _HELLO_REFUSALS:
                self._events.append(SpaceRefused(space, reply.code, reply.message))
        # else: a late reply to a request that already timed out

    def _drop_foreign(self, what: str, space: str) -> None:
        self.foreign_dropped += 1
        log.warning(
            "device %s: dropped a %s of space %r (this link follows %r)",
            self.device_id,
            what,
            space,
            self.space,
        )

    def _on_pushes(self, pushes: Sequence[Push]) -> None:
        space = self.space
        if any(push.space != space for push in pushes):
            for push in pushes:
                if push.space != space:
                    self._drop_foreign("push", push.space)
            pushes = [push for push in pushes if push.space == space]
        if self.drop_push is not None:
            pushes = [push for push in pushes if not self.drop_push(push)]
        if not pushes:
            return
        self._events.append(PushesReceived(tuple(pushes)))
        run = self._run
        if run is not None and run.keys is not None:
            run.keys.update(push.key for push in pushes)
        if not self.online or self._resyncing:
            # A snapshot is on its way; what it does not cover, these continue.
            self._early.update((push.server_revision, push.prev) for push in pushes)
            return
        for push in pushes:
            newest = self.newest_seen
            if _continues(push.server_revision, push.prev, newest):
                self.newest_seen = max(newest, push.server_revision)
            else:
                self.gaps_detected += 1
                log.info(
                    "device %s: push %d (prev %s) after %d in space %r: missed some, resyncing",
                    self.device_id,
                    push.server_revision,
                    push.prev,
                    newest,
                    space,
                )
                self._say_hello(None)
                return

    def _on_snapshot(self, page: Snapshot, now: float) -> None:
        if page.space != self.space:
            self._drop_foreign("snapshot page", page.space)
            if not self.online and self._resyncing:
                # Our first hello was answered for another space: an older server.
                message = f"the server answered with a snapshot of space {page.space!r}"
                self._events.append(SpaceRefused(self.space, NOT_SERVED, message))
            return
        run = self._run
        if run is None or (run.revision, run.epoch) != (page.revision, page.epoch):
            new_epoch = bool(page.epoch) and self.epoch is not None and page.epoch != self.epoch
            run = self._run = _PageRun(page.revision, page.epoch, set() if new_epoch else None)
            self._events.append(SnapshotPage(page, new_epoch))
        else:
            self._events.append(SnapshotPage(page, False))
        if run.keys is not None:
            run.keys.update(entry.key for entry in page.values)
        if page.more:
            return
        self._run = None
        self._resyncing = False
        self.snapshots_applied += 1
        if run.keys is not None:
            self.newest_seen = page.revision  # a new history: its counter starts afresh
        else:
            self.newest_seen = max(self.newest_seen, page.revision)
        early, self._early = self._early, {}
        for revision in sorted(early):  # count on through the pushes that continue the run
            if revision <= self.newest_seen:
                continue  # the snapshot covers it
            if not _continues(revision, early[revision], self.newest_seen):
                break
            self.newest_seen = revision
        if page.epoch:
            self.epoch = page.epoch
        went_online = not self.online
        self.online = True
        if self.heartbeat is not None:
            self.heartbeat_due = now + self.heartbeat
        keys = None if run.keys is None else frozenset(run.keys)
        self._events.append(CaughtUp(self.newest_seen, self.epoch, keys, went_online))

    def _say_hello(self, now: float | None) -> None:
        if not self.connected_now or self._resyncing:
            return
        self._resyncing = True
        if now is not None and self.heartbeat is not None and self.online:
            self.heartbeat_due = now + self.heartbeat
        # Batched pushes: one frame per server commit instead of one per write.
        self._outgoing.append(
            encode(
                Hello(
                    self.device_id,
                    self.newest_seen,
                    batch_pushes=True,
                    protocol=PROTOCOL_VERSION,
                    epoch=self.epoch,
                    token=self.token,
                    device_secret=self.device_secret,
                    space=self.space,
                )
            )
        )


def check_space_name(space: str) -> str:
    """Return ``space`` if the protocol accepts it as a space name, else raise ValueError."""
    if not isinstance(space, str) or not 1 <= len(space) <= MAX_SPACE_LENGTH:
        raise ValueError(f"a space name has 1 to {MAX_SPACE_LENGTH} characters, not {space!r}")
    return space


NOT_SERVED = "not_served"
""":attr:`SpaceRefused.code` when the server answered a hello with another space."""

_HELLO_REFUSALS = frozenset({"forbidden", "too_many_spaces"})
"""Error codes that refuse a hello's space (request_id null, ``space`` set)."""


def _continues(revision: int, prev: int | None, newest_seen: int) -> bool:
    """Whether a push of ``revision`` leaves no write of its space unseen after
    ``newest_seen``. ``prev`` is the space's previous write (PROTOCOL.md, "Spaces");
    None (a server older than spaces): revisions count up by one, so the push must
    be the next revision, or one already seen."""
    if prev is None:
        return revision <= newest_seen + 1
    return prev <= newest_seen


@dataclass(slots=True)
class _PageRun:
    """The snapshot whose pages are arriving; ``keys`` collects a new epoch's keys."""

    revision: int
    epoch: str
    keys: set[str] | None
