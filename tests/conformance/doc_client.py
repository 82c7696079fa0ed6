"""A device written from syncserver/PROTOCOL.md's client algorithm alone.

It uses only the websockets client, json and the standard library (no app.*
and no syncserver.*), so it shows the document is enough to write a device
that converges with the project's own. Section numbers refer to the
document's "Client algorithm".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["DocDevice"]

RETRYABLE = {"unavailable", "rate_limited"}


@dataclass
class _Intent:
    value: Any
    local_revision: int


@dataclass
class _InFlight:
    request_id: int
    value: Any
    local_revision: int


class DocDevice:
    """One device in one space: its state (kept in memory here), one connection,
    reconnects."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: float = 15.0,
        device_id: int | None = None,
        space: str = "default",
    ) -> None:
        self.url = url
        self.heartbeat = heartbeat
        self.space = space  # "Spaces": every frame names it; others' frames are ignored
        # §1: chosen once, 1 … 2**53 - 1, from a secure generator.
        self.device_id = device_id if device_id is not None else secrets.randbits(53) or 1
        self.device_secret = secrets.token_urlsafe(32)  # made with the id, kept with it
        # The state a device keeps.
        self.epoch: str | None = None
        self.newest_seen = 0
        self.values: dict[str, Any] = {}
        self.known: dict[str, int] = {}  # K per key; absent means -1 (unknown)
        self.local_revision = 0
        self.newest_change: dict[str, int] = {}  # local revision of the newest change per key
        self.intents: dict[str, _Intent] = {}
        # The connection's state.
        self.online = False
        self.listeners: list[Callable[[], None]] = []
        """Called on every change of what the device shows or knows (tests wait on it)."""
        self._outbox: asyncio.Queue[str] | None = None
        self._in_flight: dict[str, _InFlight] = {}
        self._held: dict[str, dict[str, Any]] = {}  # §4: pushes held while a set flies
        self._requests: dict[int, str] = {}
        self._reloads: dict[int, tuple[str, int]] = {}  # get request id -> key, refused local rev
        self._early: dict[int, int | None] = {}  # §7: revision -> prev, pushed during a catch-up
        self.gaps = 0
        self._ids = itertools.count(1)
        self.sets_sent = 0
        self._resyncing = False
        self._page_run: tuple[int, str] | None = None
        self._new_epoch_keys: set[str] | None = None
        self._retry_attempts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the app's side ----------------------------------------------------------

    def start(self) -> None:
        self._stop = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Go offline (the state stays, as a device's state file would)."""
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()

    def change(self, key: str, value: Any) -> None:
        """§2, §5: the user's change: shown at once, an intent, a set if none in flight."""
        self.local_revision += 1
        self.values[key] = value
        self.newest_change[key] = self.local_revision
        self.intents[key] = _Intent(value, self.local_revision)
        self._held.pop(key, None)  # §4: the user's newer change drops a held push
        self._notify()
        if self.online and key not in self._in_flight:
            self._send_set(key)

    @property
    def settled(self) -> bool:
        """Online, nothing pending, nothing in flight."""
        return self.online and not self.intents and not self._in_flight

    # -- §3, §9: connecting, catching up, reconnecting --------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._stop:
            try:
                async with connect(self.url, max_size=2**20, compression=None) as ws:
                    self._outbox = asyncio.Queue()
                    attempt = 0
                    loop = asyncio.get_running_loop()
                    helpers = [loop.create_task(self._beat()), loop.create_task(self._write(ws))]
                    try:
                        self._hello()
                        async for frame in ws:
                            self._receive(frame)
                    finally:
                        for helper in helpers:
                            helper.cancel()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            finally:
                self._disconnected()
            attempt += 1
            await asyncio.sleep(_backoff(attempt))

    async def _write(self, ws: ClientConnection) -> None:
        """Send the outbox in order (one writer, so frames never overtake each other)."""
        assert self._outbox is not None
        while True:
            frame = await self._outbox.get()
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)

    def _disconnected(self) -> None:
        self._outbox = None
        self.online = False
        self._resyncing = False
        self._page_run = None
        self._in_flight.clear()  # outcome unknown: the intents stay (§8)
        self._held.clear()
        self._requests.clear()
        self._reloads.clear()  # a reload cut short: its intent stays pending (§8)
        self._early.clear()
        self._notify()

    def _hello(self) -> None:
        if self._resyncing:
            return  # §7: one resync at a time
        self._resyncing = True
        hello: dict[str, Any] = {
            "type": "hello",
            "device_id": self.device_id,
            "space": self.space,
            "since": self.newest_seen,
            "protocol": 1,
            "batch_pushes": True,
            "device_secret": self.device_secret,
        }
        if self.epoch is not None:
            hello["epoch"] = self.epoch
        self._send(hello)

    async def _beat(self) -> None:
        """§7: the heartbeat, a hello every ``heartbeat`` seconds while online."""
        while True:
            await asyncio.sleep(self.heartbeat)
            if self.online:
                self._hello()

    # -- frames in -----------------------------------------------------------------

    def _receive(self, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            return  # a frame we cannot read is dropped, never the connection
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        space = message.get("space", "default")  # absent: a server older than spaces
        if kind != "pushes" and space is not None and space != self.space:
            return  # "Spaces": never apply or count another space's frame
        if kind == "snapshot":
            self._on_page(message)
        elif kind == "push":
            self._on_pushes([message])
        elif kind == "pushes":  # may mix the connection's spaces
            pushes = message.get("pushes", [])
            self._on_pushes([p for p in pushes if p.get("space", "default") == self.space])
        elif kind == "ack":
            self._on_ack(message)
        elif kind == "value":
            self._on_value(message)
        elif kind == "error":
            self._on_error(message)
        # Any other type: ignored (compatibility policy).

    def _on_page(self, page: dict[str, Any]) -> None:
        run = (page["revision"], page["epoch"])
        if self._page_run != run:  # the first page of a snapshot
            self._page_run = run
            if self.epoch is not None and page["epoch"] != self.epoch:
                # §6: a reset server: forget every known revision.
                self.known = {key: -1 for key in self.known}
                self._new_epoch_keys = set()
            else:
                self._new_epoch_keys = None
        for entry in page["values"]:
            self._apply(entry)
            if self._new_epoch_keys is not None:
                self._new_epoch_keys.add(entry["key"])
        if page.get("more", False):
            return
        self._page_run = None
        if self._new_epoch_keys is not None:
            for key in set(self.values) - self._new_epoch_keys:
                if key not in self.intents:
                    self.values[key] = None  # never written in the new history
                self.known[key] = 0
            self.newest_seen = page["revision"]
            self._new_epoch_keys = None
        else:
            self.newest_seen = max(self.newest_seen, page["revision"])
        early, self._early = self._early, {}
        for revision in sorted(early):  # §7: count on through the pushes meanwhile
            if revision <= self.newest_seen:
                continue
            if not _continues(revision, early[revision], self.newest_seen):
                break  # stop at the first that does not fit
            self.newest_seen = revision
        self.epoch = page["epoch"]
        self._resyncing = False
        if not self.online:
            self.online = True
            for key in sorted(self.intents, key=lambda k: self.intents[k].local_revision):
                if key not in self._in_flight:
                    self._send_set(key)
        self._notify()

    def _on_pushes(self, pushes: list[dict[str, Any]]) -> None:
        for push in pushes:
            self._apply(push)
            if self._new_epoch_keys is not None:
                self._new_epoch_keys.add(push["key"])
            revision, prev = push["server_revision"], push.get("prev")
            if not self.online or self._resyncing:
                self._early[revision] = prev  # a snapshot is on its way
                continue
            if _continues(revision, prev, self.newest_seen):
                self.newest_seen = max(self.newest_seen, revision)
            else:
                self.gaps += 1
                self._hello()  # §7: a gap
        self._notify()

    def _apply(self, push: dict[str, Any]) -> None:
        """§4: the push rule, for a push or a snapshot entry."""
        key = push["key"]
        revision = push["server_revision"]
        if revision <= self.known.get(key, -1):
            return  # stale
        self.known[key] = revision
        mine = push["device_id"] == self.device_id
        if not mine and key in self._in_flight:
            self._held[key] = push  # hold: the ack tells whose write is newer
            return
        self._held.pop(key, None)  # a later push makes a held one obsolete
        if mine and push["local_revision"] < self.newest_change.get(key, 0):
            return  # self-echo: record the revision only
        self.values[key] = push["value"]
        if mine and push["local_revision"] == self.newest_change.get(key, 0):
            if key not in self._in_flight:
                self.intents.pop(key, None)  # confirmed
        else:
            self.intents.pop(key, None)  # superseded by a newer server write

    def _on_ack(self, ack: dict[str, Any]) -> None:
        key = self._requests.pop(ack["request_id"], None)
        if key is None:
            return
        sent = self._in_flight.pop(key)
        self._retry_attempts.pop(key, None)
        revision = ack["server_revision"]
        held = self._held.pop(key, None)
        if held is not None and held["server_revision"] > revision:
            self.values[key] = held["value"]  # another device wrote after us: it wins
            self.intents.pop(key, None)
            self._notify()
            return
        known = self.known.get(key, -1)
        intent = self.intents.get(key)
        if (
            intent is not None
            and intent.local_revision > sent.local_revision
            and (intent.value != sent.value or known > revision)
        ):
            self.known[key] = max(known, revision)
            self._send_set(key)  # §5: one follow-up with the newest value
            return
        if revision >= known:
            self.values[key] = ack["value"]
            self.known[key] = revision
        if intent is not None:
            self.intents.pop(key)
        self._notify()

    def _on_value(self, reply: dict[str, Any]) -> None:
        """§8: a reload's answer: drop the refused intent, show the value unless older."""
        reload = self._reloads.pop(reply.get("request_id"), None)  # type: ignore[arg-type]
        if reload is None:
            return
        key, refused = reload
        if key in self._in_flight:
            return  # sent again after a reconnect: its ack decides
        intent = self.intents.get(key)
        if intent is not None and intent.local_revision == refused:
            self.intents.pop(key)
        if key not in self.intents and reply["server_revision"] >= self.known.get(key, -1):
            self.values[key] = reply["value"]
            self.known[key] = reply["server_revision"]
        self._notify()

    def _on_error(self, error: dict[str, Any]) -> None:
        request_id = error.get("request_id")
        reload = self._reloads.pop(request_id, None)  # type: ignore[arg-type]
        if reload is not None:  # §8: a refused reload is asked again later
            self._later(_backoff(1), lambda: self._reload(*reload))
            return
        key = self._requests.pop(request_id, None)  # type: ignore[arg-type]
        if key is None:
            return
        if error.get("code") in RETRYABLE:
            # §8: still in flight (a push stays held); the same set again, later.
            sent = self._in_flight[key]
            attempt = self._retry_attempts.get(key, 0) + 1
            self._retry_attempts[key] = attempt
            self._later(_backoff(attempt), lambda: self._resend(key, sent))
            return
        sent = self._in_flight.pop(key)
        self._held.pop(key, None)  # §5: forgotten with the failed set
        self._reload(key, sent.local_revision)  # refused for good: never resent
        self._notify()

    def _reload(self, key: str, refused: int) -> None:
        if self._outbox is None or key in self._in_flight:
            return  # offline, or resent since: the intent's own set decides
        request_id = next(self._ids)
        self._reloads[request_id] = (key, refused)
        self._send({"type": "get", "request_id": request_id, "space": self.space, "key": key})

    # -- frames out ----------------------------------------------------------------

    def _send_set(self, key: str) -> None:
        intent = self.intents[key]
        self._in_flight[key] = _InFlight(0, intent.value, intent.local_revision)
        self._resend(key, self._in_flight[key])

    def _resend(self, key: str, sent: _InFlight) -> None:
        """Send ``sent`` (again, after ``unavailable``) with a fresh request id."""
        if self._in_flight.get(key) is not sent:
            return  # the connection dropped meanwhile: the intent is resent after catch-up
        sent.request_id = next(self._ids)
        self._requests[sent.request_id] = key
        self.sets_sent += 1
        self._send(
            {
                "type": "set",
                "request_id": sent.request_id,
                "space": self.space,
                "key": key,
                "value": sent.value,
                "local_revision": sent.local_revision,
            }
        )

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        async def resend() -> None:
            await asyncio.sleep(delay)
            action()

        task = asyncio.get_running_loop().create_task(resend())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send(self, message: dict[str, Any]) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(json.dumps(message))

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()


def _continues(revision: int, prev: int | None, newest_seen: int) -> bool:
    """§7: a push leaves nothing of its space missed: its prev is seen, or (no prev:
    a server older than spaces) it is at most the next revision."""
    if prev is None:
        return revision <= newest_seen + 1
    return prev <= newest_seen


def _backoff(attempt: int) -> float:
    """§8: from 0.25 s doubling to 10 s, up to half taken off at random (tests go faster)."""
    base: float = min(10.0, 0.02 * 2.0 ** min(attempt - 1, 16))
    return base * (1 - 0.5 * random.random())
