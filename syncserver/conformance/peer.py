"""A raw protocol peer: one websocket, JSON objects in and out, nothing else.

The kit speaks to the server under test only through this class, built on
the ``websockets`` client and ``json``, so it assumes nothing about how the
server is written.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["MAX_FRAME_BYTES", "CheckFailed", "Message", "Peer", "expect"]

Message = dict[str, Any]

MAX_FRAME_BYTES = 1024 * 1024
"""No frame the server sends may be larger; bigger ones from a client close 1009."""


class CheckFailed(AssertionError):
    """The server did not do what PROTOCOL.md says."""


def expect(condition: object, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


class Peer:
    """One connection to the server under test.

    ``recv`` hands out every frame in order; ``recv_type`` waits for a given
    type and keeps the frames it passes over in ``skipped`` (read by later
    ``recv`` calls first), so a check can look for a reply without losing the
    pushes around it.
    """

    def __init__(self, ws: ClientConnection, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout
        self.skipped: list[Message] = []
        self._ids = itertools.count(1)
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, url: str, wait: float, *, max_queue: int = 16) -> Peer:
        """Open a connection (no compression; frames up to 1 MiB accepted)."""
        ws = await connect(
            url,
            open_timeout=wait,
            close_timeout=1.0,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            max_queue=max_queue,
        )
        return cls(ws, wait)

    @property
    def local_address(self) -> str:
        """``HOST:PORT`` of this end, as the server's observer feed names it."""
        host, port = self.ws.local_address[:2]
        return f"{host}:{port}"

    def next_id(self) -> int:
        return next(self._ids)

    async def close(self) -> None:
        await self.ws.close()

    # -- sending ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        await self.send_text(json.dumps(message, ensure_ascii=False))

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_raw(self, data: bytes, *, text: bool) -> None:
        """Send bytes as a text frame (unchecked UTF-8) or a binary frame."""
        await self.ws.send(data, text=text)

    # -- receiving -------------------------------------------------------------

    async def recv(self, wait: float | None = None) -> Message:
        """The next frame as a JSON object; fails the check on timeout or close."""
        if self.skipped:
            return self.skipped.pop(0)
        return await self._read(wait)

    async def _read(self, wait: float | None = None) -> Message:
        wait = self.timeout if wait is None else wait
        try:
            frame = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            raise CheckFailed(f"nothing arrived within {wait:g} s") from None
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
            raise CheckFailed(f"the server closed the connection ({self.close_code})") from None
        expect(isinstance(frame, str), "the server sent a binary frame; frames are JSON text")
        assert isinstance(frame, str)
        try:
            message = json.loads(frame)
        except ValueError:
            raise CheckFailed(f"the server sent a frame that is not JSON: {frame[:80]!r}") from None
        expect(
            isinstance(message, dict) and isinstance(message.get("type"), str),
            f"the server sent a frame that is not an object with a type: {frame[:80]!r}",
        )
        result: Message = message
        result["_bytes"] = len(frame.encode())  # kit-only: the frame's size on the wire
        return result

    async def recv_type(self, *types: str, wait: float | None = None) -> Message:
        """The next frame of one of ``types``; others are kept in ``skipped``."""
        for index, message in enumerate(self.skipped):
            if message["type"] in types:
                return self.skipped.pop(index)
        while True:
            message = await self._read(wait)
            if message["type"] in types:
                return message
            self.skipped.append(message)

    async def wait_closed(self) -> int:
        """Read until the server closes; the close code (1006 when it sent none)."""
        while True:
            try:
                await asyncio.wait_for(self.ws.recv(), self.timeout)
            except TimeoutError:
                raise CheckFailed(
                    f"the connection was still open after {self.timeout:g} s"
                ) from None
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
                return self.close_code

    # -- protocol shorthands ---------------------------------------------------

    async def hello(self, device_id: int, since: int = 0, **extra: Any) -> Message:
        """Send a hello and read every page of its snapshot; returns the first page's
        fields with ``values`` holding all pages' entries and ``pages`` the frames."""
        await self.send({"type": "hello", "device_id": device_id, "since": since, **extra})
        return await self.read_snapshot()

    async def read_snapshot(self) -> Message:
        """Every page of the next snapshot, merged (pushes between pages are kept)."""
        pages = [await self.recv_type("snapshot")]
        while pages[-1].get("more") is True:
            pages.append(await self.recv_type("snapshot"))
        merged = dict(pages[0])
        merged["values"] = [entry for page in pages for entry in page.get("values", [])]
        merged["pages"] = pages
        merged["more"] = False
        return merged

    async def request(self, message: Message, *reply_types: str) -> Message:
        """Send a request (with a fresh ``request_id`` unless it has one) and
        return its reply or error."""
        if "request_id" not in message:
            message = {**message, "request_id": self.next_id()}
        await self.send(message)
        return await self.reply_to(message["request_id"], *reply_types)

    async def reply_to(self, request_id: object, *reply_types: str) -> Message:
        """The reply (or error) naming ``request_id``; other frames are kept."""
        types = (*reply_types, "error")
        for index, message in enumerate(self.skipped):
            if message["type"] in types and message.get("request_id") == request_id:
                return self.skipped.pop(index)
        while True:
            message = await self._read()
            if message["type"] in types and message.get("request_id") == request_id:
                return message
            self.skipped.append(message)

    async def set(self, key: str, value: Any, local_revision: int = 1, **extra: Any) -> Message:
        return await self.request(
            {"type": "set", "key": key, "value": value, "local_revision": local_revision, **extra},
            "ack",
        )

    async def get(self, key: str) -> Message:
        return await self.request({"type": "get", "key": key}, "value")
