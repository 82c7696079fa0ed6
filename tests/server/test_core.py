"""ServerCore without sockets: frames in, frames out, over a MemoryBackend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from syncserver.backends.memory import MemoryBackend
from syncserver.config import ServerConfig
from syncserver.core import ServerCore, Shared
from tests.timeouts import TIMEOUT


class RecordingPeer:
    """A connection that keeps what the core sends it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.arrived = asyncio.Event()

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        payloads = [*frames, *(shared.payloads if shared is not None else ())]
        self.received += [json.loads(payload) for payload in payloads]
        self.arrived.set()
        return 0

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def abort(self) -> None:
        self.closed_with = -1

    async def next_of(self, kind: str) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                for index, message in enumerate(self.received):
                    if message["type"] == kind:
                        return self.received.pop(index)
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(wait(), TIMEOUT)


def frame(**message: Any) -> str:
    return json.dumps(message)


async def test_the_core_serves_a_device_without_any_socket() -> None:
    """hello, set and the push through ServerCore and MemoryBackend alone."""
    core = ServerCore(MemoryBackend, asyncio.get_running_loop(), ServerConfig())
    await core.backend.open()
    peer = RecordingPeer()
    conn = core.connect(peer, "memory:1")
    core.receive(conn, frame(type="hello", device_id=5))
    snapshot = await peer.next_of("snapshot")
    assert (snapshot["revision"], snapshot["epoch"]) == (0, core.backend.epoch)
    core.receive(conn, frame(type="set", request_id=1, key="k", value=[1], local_revision=1))
    assert (await peer.next_of("ack"))["server_revision"] == 1
    assert (await peer.next_of("push"))["device_id"] == 5
    await core.backend.close()


async def test_an_unavailable_memory_backend_answers_unavailable() -> None:
    """MemoryBackend.make_unavailable: the set is refused as unavailable, then works again."""
    core = ServerCore(MemoryBackend, asyncio.get_running_loop())
    backend = core.backend
    assert isinstance(backend, MemoryBackend)
    await backend.open()
    peer = RecordingPeer()
    conn = core.connect(peer)
    core.receive(conn, frame(type="hello", device_id=5))
    backend.make_unavailable()
    core.receive(conn, frame(type="set", request_id=1, key="k", value=1, local_revision=1))
    error = await peer.next_of("error")
    assert (error["code"], error["request_id"]) == ("unavailable", 1)
    assert core.requests_in_flight == 0
    backend.make_available()
    core.receive(conn, frame(type="set", request_id=2, key="k", value=1, local_revision=1))
    assert (await peer.next_of("ack"))["server_revision"] == 1
    await backend.close()
