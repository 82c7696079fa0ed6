"""The benchmark's ceiling and load do what the sync server and a reader would."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from syncserver.protocol import Ack, Hello, Push, PushBatch, Set, decode_server_message, encode
from tests.perf._bare import relay_running, text_frame
from tests.perf._load import ACK, PUSH, Counter, Load
from tests.perf.curve import Writer, server_on, set_frame, write_at_rate
from tests.perf.profile import category_of
from tests.perf.server import relay_server
from tests.timeouts import TIMEOUT


async def _hello(url: str, device: int, batched: bool) -> ClientConnection:
    ws = await connect(url, compression=None)
    await ws.send(encode(Hello(device, 0, batch_pushes=batched)))
    async with asyncio.timeout(TIMEOUT):
        assert b'"type":"snapshot"' in await ws.recv(decode=False)
    return ws


async def test_relay_acks_the_writer_then_pushes_to_every_connection() -> None:
    """A set comes back as a protocol Ack to its writer and a Push to everyone."""
    async with relay_running("NORMAL") as url:
        writer, reader = await _hello(url, 1, False), await _hello(url, 2, False)
        await writer.send(encode(Set(7, "like/tea", True, 3, 1)))
        async with asyncio.timeout(TIMEOUT):
            ack = decode_server_message(await writer.recv())
            own = decode_server_message(await writer.recv())
            other = decode_server_message(await reader.recv())
        assert ack == Ack(7, "like/tea", True, 1)
        assert own == other == Push("like/tea", True, 1, 3, 1)
        await writer.close()
        await reader.close()


async def test_relay_sends_one_pushes_frame_per_batch_to_connections_that_ask() -> None:
    """A connection whose hello said batch_pushes gets a batch's pushes in one frame."""
    async with relay_running("FULL", write_delay=0.05) as url:
        writer, batched = await _hello(url, 1, False), await _hello(url, 2, True)
        for n in range(1, 4):
            await writer.send(encode(Set(n, f"like/item-{n}", True, n, 1)))
        async with asyncio.timeout(TIMEOUT):
            got: list[Push] = []
            while len(got) < 3:
                message = decode_server_message(await batched.recv())
                assert isinstance(message, PushBatch)
                got.extend(message.pushes)
        assert [push.server_revision for push in got] == [1, 2, 3]
        await writer.close()
        await batched.close()


def test_counter_counts_markers_split_between_reads() -> None:
    """Every ack and push counts once, wherever the stream is cut between two reads."""
    stream = (b'{"type":"ack","request_id":1}' + b'{"type":"push","key":"k"}') * 3
    for cut in range(1, len(stream)):
        left, right = socket.socketpair()
        try:
            counter = Counter(left, 1, b"")
            counter.count(stream[:cut])
            counter.count(stream[cut:])
            assert (counter.acks, counter.pushes) == (3, 3), cut
        finally:
            left.close()
            right.close()
    assert stream.count(ACK) == stream.count(PUSH) == 3


def test_counter_answers_pings_wherever_the_stream_is_cut() -> None:
    """A ping between pushes is answered with one pong, however the reads split the frames."""
    push = text_frame(b'{"type":"pushes","pushes":[{"type":"push","space":"a"}]}')
    big = text_frame(b'{"type":"push","space":"a","value":"' + b"x" * 70_000 + b'"}')
    stream = push + b"\x89\x04ping" + big + push
    for cut in (*range(1, 80), len(stream) - 40, len(stream) - 5):
        left, right = socket.socketpair()
        try:
            right.settimeout(TIMEOUT)
            counter = Counter(left, 1, b"", space="a")
            for part in (stream[:cut], stream[cut:]):
                counter.count(part)
                counter.count_mine(part)
                counter.walk(part)
            assert right.recv(64) == b"\x8a\x84\0\0\0\0ping", cut
            assert (counter.pushes, counter.mine, counter.frames) == (3, 3, 3), cut
            assert (counter.skip, counter.partial) == (0, b""), cut
        finally:
            left.close()
            right.close()


def test_a_profile_sample_goes_to_its_innermost_named_frame() -> None:
    """A sample counts for the innermost frame that names a category, not for its caller."""
    handler = [
        "Runner.run (asyncio/runners.py:118)",
        "serve.<locals>.protocol_handler (websockets/asyncio/server.py:762)",
        "SyncServer._handle (syncserver/server.py:302)",
    ]
    assert category_of([*handler, "_decode (syncserver/protocol.py:428)"]) == (
        "decoding and validating sets (msgspec)"
    )
    assert category_of([*handler, "write_frames (syncserver/wire.py:45)"]) == (
        "socket writes (transport.write)"
    )
    assert category_of(handler) == "optisync core, limits, stats"
    assert category_of(handler[:2]) == "reading and parsing frames (websockets)"


async def test_the_load_counts_each_devices_pushes_by_space(tmp_path: Path) -> None:
    """A write reaches its space's devices and no other; the probe reports exact CPU time."""
    async with Load(None, processes=1) as load, server_on(tmp_path / "db.sqlite3") as started:
        server, _, start_cpu = started
        writer = Writer()
        await writer.open(server.url, 0, ["a", "b"])
        try:
            await load.connect(
                server.url, 4, batched=True, space_of=lambda d: "a" if d <= 2 else "b"
            )
            await load.arm_listen({"a": 2})
            await write_at_rate([(writer, set_frame(n, f"k/{n}", "a")) for n in (1, 2)], 100)
            listened = await asyncio.wait_for(load.listened(), TIMEOUT)
        finally:
            writer.close()
            await load.close_connections()
        assert (listened.connections, listened.result.ops, listened.wrong) == (4, 4, [])
        assert 0 < start_cpu < server.cpu_seconds()
        assert round(server.cpu_seconds() * 100) != server.cpu_seconds() * 100  # not in ticks


async def test_the_load_flags_pushes_that_do_not_name_the_devices_space() -> None:
    """A device in space "a" whose pushes name no space (the relay's) counts as wrong."""
    async with Load(None, processes=1) as load, relay_server(pin=False) as relay:
        writer = Writer()
        await writer.open(relay.url, 0)
        try:
            await load.connect(relay.url, 1, batched=True, space_of=lambda d: "a")
            await load.arm_listen({"a": 1})
            await write_at_rate([(writer, set_frame(1, "k/1"))], 100)
            listened = await asyncio.wait_for(load.listened(), TIMEOUT)
        finally:
            writer.close()
            await load.close_connections()
        assert listened.wrong == [1]
