"""Limits that protect the whole server: catch-up and message budgets per
address, a cap on all send buffers together, connections per address."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from syncserver import serve
from syncserver.backends.memory import MemoryBackend
from syncserver.config import ServerConfig
from syncserver.core import ServerCore, Shared
from tests.commits import committed
from tests.timeouts import TIMEOUT


class ManualClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[tuple[float, Callable[[], object], list[bool]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> Any:
        cancelled = [False]
        self.timers.append((self.now + delay, callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [timer for timer in self.timers if timer[0] <= self.now]
        self.timers = [timer for timer in self.timers if timer[0] > self.now]
        for _, callback, cancelled in due:
            if not cancelled[0]:
                callback()


class Peer:
    """A connection that records what it is sent and reports ``queued`` bytes unread."""

    def __init__(self, reads: bool = True) -> None:
        self.messages: list[dict[str, Any]] = []
        self.reads = reads
        self.queued = 0
        self.aborted = False

    def send(self, frames: Sequence[bytes], shared: Shared | None = None) -> int:
        payloads = [*frames, *(shared.payloads if shared is not None else ())]
        self.messages += [json.loads(payload) for payload in payloads]
        if not self.reads:
            self.queued += sum(map(len, payloads))
        return self.queued

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def count(self, kind: str) -> int:
        return sum(message["type"] == kind for message in self.messages)


def hello(device_id: int = 1, since: int = 0) -> str:
    return json.dumps({"type": "hello", "device_id": device_id, "since": since})


async def _core(clock: ManualClock, **options: Any) -> ServerCore:
    core = ServerCore(MemoryBackend, clock, ServerConfig(**options))
    await core.backend.open()
    return core


async def test_pipelined_hellos_wait_for_the_address_catchup_budget_and_coalesce():
    """hello since 0 x50 from one address: one snapshot now, one more when the budget refills."""
    clock = ManualClock()
    core = await _core(clock, catchup_rate=1000.0, catchup_burst=100)
    writer = core.connect(Peer(), "w")
    core.receive(writer, hello(device_id=9))
    for n in range(20):
        core.receive(
            writer,
            json.dumps(
                {
                    "type": "set",
                    "request_id": n,
                    "key": f"k{n}",
                    "value": "x" * 100,
                    "local_revision": 1,
                }
            ),
        )
    await committed(core, 20)
    assert core.revision == 20
    peer = Peer()
    conn = core.connect(peer, "10.0.0.7:1", address="10.0.0.7")
    for _ in range(50):
        core.receive(conn, hello())
    assert peer.count("snapshot") == 1  # the snapshot (~3 kB) put the address in debt
    clock.advance(0.1)
    assert peer.count("snapshot") == 1
    clock.advance(10)
    assert peer.count("snapshot") == 2  # the 49 waiting hellos were answered once
    clock.advance(100)
    assert peer.count("snapshot") == 2
    await core.backend.close()


async def _write_one(core: ServerCore) -> None:
    """One register, so that a hello since 0 is a real catch-up (not an empty page)."""
    writer = core.connect(Peer(), "w")
    core.receive(writer, hello(device_id=9))
    core.receive(
        writer,
        json.dumps({"type": "set", "request_id": 1, "key": "k", "value": 1, "local_revision": 1}),
    )
    await committed(core, 1)
    assert core.revision == 1


async def test_loopback_clients_have_no_address_budget_unless_asked():
    """Local tools are not throttled by default; limit_loopback applies the budgets."""
    clock = ManualClock()
    core = await _core(clock, catchup_rate=1.0, catchup_burst=1)
    await _write_one(core)
    free = Peer()
    conn = core.connect(free, "127.0.0.1:1", address="127.0.0.1")
    for _ in range(3):
        core.receive(conn, hello())
    assert free.count("snapshot") == 3
    limited_core = await _core(clock, catchup_rate=1.0, catchup_burst=1, limit_loopback=True)
    await _write_one(limited_core)
    limited = Peer()
    conn = limited_core.connect(limited, "127.0.0.1:2", address="127.0.0.1")
    for _ in range(3):
        limited_core.receive(conn, hello())
    assert limited.count("snapshot") == 1
    await core.backend.close()
    await limited_core.backend.close()


async def test_an_address_over_its_message_budget_is_read_slower():
    """Past the address' burst, read_pause says how long to wait; the frames are still served."""
    clock = ManualClock()
    core = await _core(clock, address_rate_limit=100.0, address_rate_burst=10)
    first = core.connect(Peer(), "a", address="10.0.0.7")
    second = core.connect(Peer(), "b", address="10.0.0.7")
    other = core.connect(Peer(), "c", address="10.0.0.8")
    for _ in range(5):
        core.receive(first, hello())
        core.receive(second, hello(device_id=2))
    assert core.read_pause(first) == 0.0
    core.receive(second, hello(device_id=2))
    assert core.read_pause(first) == pytest.approx(0.01)  # one message over, at 100/s
    assert core.read_pause(other) == 0.0
    clock.advance(0.011)
    assert core.read_pause(second) == 0.0
    await core.backend.close()


async def test_the_total_send_buffer_cap_drops_the_biggest_readers_first():
    """Non-readers may each stay under max_send_buffer; together they may not pass the cap."""
    clock = ManualClock()
    core = await _core(clock, max_send_buffer=10_000_000, max_total_send_buffer=200_000)
    reader, writer = Peer(), Peer()
    stalled = [Peer(reads=False) for _ in range(10)]
    conns = [core.connect(peer) for peer in (reader, writer, *stalled)]
    for n, conn in enumerate(conns):
        core.receive(conn, hello(device_id=n + 1))
    value = "x" * 30_000
    for n in range(10):
        core.receive(
            conns[1],
            json.dumps(
                {"type": "set", "request_id": n, "key": "k", "value": value, "local_revision": n}
            ),
        )
        await committed(core, n + 1)
    assert core.revision == 10
    assert core.total_queued <= 200_000
    assert sum(peer.aborted for peer in stalled) >= 5
    assert not reader.aborted
    assert not writer.aborted
    assert reader.count("push") == 10
    await core.backend.close()


async def test_a_connection_past_the_address_limit_is_refused_with_429():
    """max_connections_per_address: the next handshake from that address gets HTTP 429."""
    async with (
        serve(backend="memory", limit_loopback=True, max_connections_per_address=2) as server,
        connect(server.url),
        connect(server.url),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await asyncio.wait_for(connect(server.url), TIMEOUT)
        assert refused.value.response.status_code == 429


async def test_a_trusted_proxys_forwarded_address_is_the_one_limited():
    """Behind a trusted proxy, X-Forwarded-For names the client the limits count."""
    async with serve(
        backend="memory", forwarded_allow=("127.0.0.1",), max_connections_per_address=1
    ) as server:

        def via_proxy(client: str) -> Any:
            return connect(server.url, additional_headers={"X-Forwarded-For": client})

        async with via_proxy("10.0.0.7"), via_proxy("10.0.0.8"):
            with pytest.raises(InvalidStatus) as refused:
                await asyncio.wait_for(via_proxy("10.0.0.7"), TIMEOUT)
            assert refused.value.response.status_code == 429
